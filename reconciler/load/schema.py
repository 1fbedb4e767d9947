"""Pure: the three manifest kinds as pydantic documents, with Novita's enums and ranges, and their JSON Schema."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from reconciler.load.matrix import SWEEPABLE
from reconciler.load.words import describe, dotted, suggest
from reconciler.status import OnUnanswered as Choice

KINDS = ("Dataset", "LoraModel", "Generation")
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
MAX_TRAINING_IMAGES = 50

BaseModelName = Literal[
    "stable-diffusion-xl-base-1.0",
    "dreamshaperXL09Alpha_alpha2Xl10_91562",
    "protovisionXLHighFidelity3D_release0630Bakedvae_154359",
    "v1-5-pruned-emaonly",
    "epicrealism_naturalSin_121250",
    "chilloutmix_NiPrunedFp32Fix",
    "abyssorangemix3AOM3_aom3a3_10864",
    "dreamshaper_8_93211",
    "WFChild_v1.0",
    "majichenmixrealistic_v10",
    "realisticVisionV51_v51VAE_94301",
    "sdxlUnstableDiffusers_v11_216694",
    "realisticVisionV40_v40VAE_81510",
    "epicrealismXL_v10_247189",
    "somboy_v10_172675",
    "yesmixXL_v10_283329",
    "animagineXLV31_v31_325600",
]
# The family of each base model, for `reconciler models` and for suggesting one of the right family
# (SD 1.5 checkpoints train at 512×512, SDXL ones at 1024×1024). Every BaseModelName has one.
SD15, SDXL = "SD 1.5", "SDXL"
FAMILIES = (SD15, SDXL)
FAMILY_BASE = {SD15: "v1-5-pruned-emaonly", SDXL: "stable-diffusion-xl-base-1.0"}  # each family's reference model
BASE_MODEL_FAMILY: dict[str, str] = {
    "stable-diffusion-xl-base-1.0": SDXL,
    "dreamshaperXL09Alpha_alpha2Xl10_91562": SDXL,
    "protovisionXLHighFidelity3D_release0630Bakedvae_154359": SDXL,
    "v1-5-pruned-emaonly": SD15,
    "epicrealism_naturalSin_121250": SD15,
    "chilloutmix_NiPrunedFp32Fix": SD15,
    "abyssorangemix3AOM3_aom3a3_10864": SD15,
    "dreamshaper_8_93211": SD15,
    "WFChild_v1.0": SD15,
    "majichenmixrealistic_v10": SD15,
    "realisticVisionV51_v51VAE_94301": SD15,
    "sdxlUnstableDiffusers_v11_216694": SDXL,
    "realisticVisionV40_v40VAE_81510": SD15,
    "epicrealismXL_v10_247189": SDXL,
    "somboy_v10_172675": SD15,
    "yesmixXL_v10_283329": SDXL,
    "animagineXLV31_v31_325600": SDXL,
}
BASE_MODELS: tuple[str, ...] = get_args(BaseModelName)
if set(BASE_MODEL_FAMILY) != set(BASE_MODELS):  # pragma: no cover - a table edited on one side only
    raise AssertionError("BASE_MODEL_FAMILY must name every BaseModelName exactly once")


def base_models_of(family: str) -> list[str]:
    """The base models of one family, its reference model first, then in Novita's order."""
    names = [name for name in BASE_MODELS if BASE_MODEL_FAMILY[name] == family]
    return sorted(names, key=lambda name: name != FAMILY_BASE[family])


SamplerName = Literal[
    "Euler a",
    "Euler",
    "LMS",
    "Heun",
    "DPM2",
    "DPM2 a",
    "DPM++ 2S a",
    "DPM++ 2M",
    "DPM++ SDE",
    "DPM fast",
    "DPM adaptive",
    "LMS Karras",
    "DPM2 Karras",
    "DPM2 a Karras",
    "DPM++ 2S a Karras",
    "DPM++ 2M Karras",
    "DPM++ SDE Karras",
    "DDIM",
    "PLMS",
    "UniPC",
]
LrScheduler = Literal["constant", "linear", "cosine", "cosine_with_restarts", "polynomial", "constant_with_warmup"]
SAMPLERS: tuple[str, ...] = get_args(SamplerName)
ComponentName = Literal["face_crop_region", "resize", "face_restore"]
Upscaler = Literal["RealESRGAN_x4plus_anime_6B", "RealESRNet_x4plus", "Latent"]

# A matrix: a sweepable path → the values to sweep (reconciler/matrix.py says which paths and expands it)
MatrixValue = str | int | float | bool
Matrix = dict[str, Annotated[list[MatrixValue], Field(min_length=1)]]
_MATRIX_HELP = "Sweep: one member per combination of these values, e.g. {{{example}}} (see the README)."


def _sweepable(kind: str) -> dict[str, Any]:
    """The JSON Schema of a matrix's keys (so editors complete and check them); the loader checks the same."""
    keys = [re.escape(key).replace(r"\[N\]", r"\[[0-4]\]") for key in SWEEPABLE[kind]]
    return {"propertyNames": {"pattern": "^(" + "|".join(keys) + ")$"}}


# A rule broken inside a model: (path below the model, message, locate at "key" or "value" of that path).
Rule = tuple[tuple[str | int, ...], str, Literal["key", "value"]]
RULES = "reconciler_rules"  # the pydantic error type carrying them (messages.py locates each rule)


def _rules_error(rules: list[Rule]) -> PydanticCustomError:
    summary = "; ".join(f"{dotted(path) or 'value'}: {message}" for path, message, _ in rules)
    return PydanticCustomError(RULES, "{summary}", {"summary": summary, "rules": rules})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# -- Dataset ---------------------------------------------------------------------------------------


class ImageItem(_Model):
    """One image (or glob, or folder) with an explicit caption."""

    path: str = Field(min_length=1, description="A file, folder or glob, relative to the manifest file.")
    caption: str | None = Field(
        None, min_length=1, max_length=1024, description="Caption; wins over a sidecar <stem>.txt."
    )


def _image_entry_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "_str"
    if isinstance(value, dict | ImageItem):  # a mapping when validating, an ImageItem when serialising
        return "_item"
    return None


ImageEntry = Annotated[
    Annotated[str, Tag("_str")] | Annotated[ImageItem, Tag("_item")],
    Discriminator(
        _image_entry_tag,
        custom_error_type="image_entry",
        custom_error_message="expected a path (file, folder or glob) or a mapping {path, caption}",
    ),
]


class DatasetSpec(_Model):
    images: list[ImageEntry] = Field(
        min_length=1, description="Globs, files or folders (their png/jpeg/webp files), relative to the file."
    )


# -- LoraModel -------------------------------------------------------------------------------------

_SUBJECT_ONLY = ("instance_prompt", "class_prompt", "with_prior_preservation", "prior_loss_weight")


class ExpertSetting(_Model):
    """Novita's expert_setting; a field left out (None) is not sent."""

    instance_prompt: str | None = Field(None, min_length=1, description="Subject only, required there.")
    class_prompt: Literal["person"] | None = Field(None, description="Subject only, required there.")
    max_train_steps: int | None = Field(None, ge=1)
    learning_rate: float | None = Field(
        None, gt=0, le=1, description="A number or numeric string, e.g. 1e-4 (docs list 1e-4, 1e-5, ...)."
    )
    seed: int | None = Field(None, ge=1)
    lr_scheduler: LrScheduler | None = None
    lr_warmup_steps: int | None = Field(None, ge=0)
    train_batch_size: int | None = Field(None, ge=1, le=4)
    train_text_encoder: bool | None = None
    with_prior_preservation: bool | None = Field(None, description="Subject only.")
    prior_loss_weight: float | None = Field(None, gt=0, description="Subject only.")
    lora_r: int | None = Field(None, ge=4, le=128)
    lora_alpha: int | None = Field(None, ge=4, le=128)
    lora_text_encoder_r: int | None = Field(None, ge=4, le=128)
    lora_text_encoder_alpha: int | None = Field(None, ge=4, le=128)

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _numeric_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise _rules_error([((), f"expected a number like 1e-4; got {describe(value)}", "value")]) from None
        return value


# known args per component: name → (description, check)
_COMPONENT_ARGS: dict[str, dict[str, str]] = {
    "face_crop_region": {"ratio": "number>0"},
    "resize": {"width": "int>=1", "height": "int>=1"},
    "face_restore": {"method": "str", "upscale": "number>0"},
}


def _check_arg(kind: str, value: Any) -> str | None:
    if kind == "str":
        return None if isinstance(value, str) and value else f"expected a non-empty string; got {describe(value)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        wanted = "an integer" if kind == "int>=1" else "a number"
        return f"expected {wanted}; got {describe(value)}"
    if kind == "int>=1":
        if not isinstance(value, int):
            return f"expected an integer; got {describe(value)}"
        return None if value >= 1 else f"must be ≥ 1; got {value}"
    return None if value > 0 else f"must be > 0; got {value}"


class Component(_Model):
    """A preprocessing step; args are sent as [{name, value: "<string>"}]."""

    name: ComponentName
    args: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("args", mode="before")
    @classmethod
    def _scalar_args(cls, value: Any) -> Any:
        if isinstance(value, dict):
            bad: list[Rule] = [
                ((key,), f"expected a string, number or boolean; got {describe(item)}", "value")
                for key, item in value.items()
                if not isinstance(item, str | int | float | bool)
            ]
            if bad:
                raise _rules_error(bad)
        return value

    @model_validator(mode="after")
    def _known_args(self) -> Component:
        known = _COMPONENT_ARGS[self.name]
        rules: list[Rule] = []
        for key, value in self.args.items():
            if key not in known:
                rules.append((("args", key), f"unknown arg of {self.name}{suggest(key, known)}", "key"))
            elif problem := _check_arg(known[key], value):
                rules.append((("args", key), problem, "value"))
        if rules:
            raise _rules_error(rules)
        return self


class LoraModelSpec(_Model):
    type: Literal["subject", "style"] = "subject"
    dataset: str = Field(min_length=1, description="The name of a Dataset in these manifests.")
    base_model: BaseModelName
    width: int = Field(512, ge=1)
    height: int = Field(512, ge=1)
    expert_setting: ExpertSetting = Field(default_factory=lambda: ExpertSetting.model_validate({}))
    components: list[Component] = Field(default_factory=list)
    matrix: Matrix | None = Field(
        None,
        description=_MATRIX_HELP.format(example="expert_setting.max_train_steps: [400, 800]"),
        json_schema_extra=_sweepable("LoraModel"),
    )

    @model_validator(mode="after")
    def _by_type(self) -> LoraModelSpec:
        rules: list[Rule] = []
        setting = self.expert_setting
        if self.type == "subject":
            for key in ("instance_prompt", "class_prompt"):
                if getattr(setting, key) is None:
                    rules.append((("expert_setting", key), "required for subject training", "key"))
        else:
            for key in _SUBJECT_ONLY:
                if getattr(setting, key) is not None:
                    rules.append((("expert_setting", key), "only for subject training (this model is style)", "key"))
        if rules:
            raise _rules_error(rules)
        return self


# -- Generation ------------------------------------------------------------------------------------


# A Novita LoRA's file name, as Novita lists it: a public one is `<name>.safetensors` (rarely .ckpt or .pt), a
# trained one `model_<digits>_<id>`, with or without `.safetensors` (Novita's docs use both). Anything else (above
# all one of our own LoraModel names, all lowercase and dashes) is a mistake that would quietly generate without
# the LoRA, so it is refused.
LORA_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt")
TRAINED_LORA_NAME = r"model_[0-9]+_[A-Za-z0-9]+"


def _any_case(suffix: str) -> str:
    """`.pt` → `\\.[Pp][Tt]`: a case-insensitive suffix that JSON Schema's regular expressions accept too."""
    return "\\." + "".join(f"[{c.upper()}{c.lower()}]" for c in suffix.lstrip("."))


LORA_FILE_PATTERN = rf"^(?:.*\S(?:{'|'.join(_any_case(s) for s in LORA_FILE_SUFFIXES)})|{TRAINED_LORA_NAME})$"
LORA_FILE_RULE = "<name>.safetensors as Novita lists it, or a trained model_<digits>_<id>"


def lora_file_problem(name: str) -> str | None:
    """Why `name` cannot be a Novita LoRA file name, or None when it can."""
    if "/" in name:
        kind, _, rest = name.partition("/")
        if kind == "LoraModel" and rest:
            return f"{describe(name)} is an address, not a file name; did you mean `model: {rest}`?"
        return f"{describe(name)} is a path; Novita names a LoRA by its file name alone"
    if name != name.strip():
        return f"{describe(name)} has spaces around it; remove them"
    if re.fullmatch(LORA_FILE_PATTERN, name):
        return None
    return (
        f"{describe(name)} is not a Novita LoRA file name ({LORA_FILE_RULE}); "
        "a LoraModel of these manifests goes under `model:`"
    )


class LoraRef(_Model):
    """A LoRA: `model` names a LoraModel of these manifests, `model_name` any Novita LoRA."""

    model: str | None = Field(None, min_length=1, description="A LoraModel of these manifests (resolved at apply).")
    model_name: str | None = Field(
        None,
        min_length=1,
        pattern=LORA_FILE_PATTERN,
        description="A Novita LoRA file name: <name>.safetensors, or a trained model_<digits>_<id>.",
    )
    strength: float = Field(1.0, ge=0, le=1)

    @field_validator("model_name", mode="before")
    @classmethod
    def _file_name(cls, value: Any) -> Any:
        if isinstance(value, str) and value and (problem := lora_file_problem(value)):
            raise _rules_error([((), problem, "value")])
        return value

    @model_validator(mode="after")
    def _one_of(self) -> LoraRef:
        if self.model is None and self.model_name is None:
            raise _rules_error(
                [((), "give `model` (a LoraModel of these manifests) or `model_name` (a Novita LoRA)", "key")]
            )
        if self.model is not None and self.model_name is not None:
            raise _rules_error([(("model_name",), "give either `model` or `model_name`, not both", "key")])
        return self


class Embedding(_Model):
    model_name: str = Field(min_length=1)


class HiresFix(_Model):
    target_width: int = Field(ge=128, le=4096)
    target_height: int = Field(ge=128, le=4096)
    strength: float = Field(0.5, ge=0, le=1)
    upscaler: Upscaler = "Latent"


class Refiner(_Model):
    switch_at: float = Field(ge=0, le=1)


class GenerationSpec(_Model):
    type: Literal["txt2img", "img2img"] = "txt2img"
    model_name: str = Field(min_length=1, description="A checkpoint sd_name.")
    prompt: str = Field(min_length=1, max_length=1024)
    negative_prompt: str | None = Field(None, min_length=1, max_length=1024)
    loras: list[LoraRef] = Field(default_factory=list, max_length=5)
    width: int = Field(512, ge=128, le=2048)
    height: int = Field(512, ge=128, le=2048)
    image_num: int = Field(1, ge=1, le=8)
    steps: int = Field(20, ge=1, le=100)
    seed: int = Field(-1, ge=-1)
    guidance_scale: float = Field(7.5, ge=1, le=30)
    sampler_name: SamplerName = "Euler a"
    clip_skip: int | None = Field(None, ge=1, le=12)
    sd_vae: str | None = Field(None, min_length=1)
    embeddings: list[Embedding] = Field(default_factory=list, max_length=5)
    hires_fix: HiresFix | None = Field(None, description="txt2img only.")
    refiner: Refiner | None = Field(None, description="txt2img only.")
    response_image_type: Literal["png", "webp", "jpeg"] = "png"
    init_image: str | None = Field(None, min_length=1, description="img2img: required; png/jpeg/webp ≤ 10 MB.")
    strength: float | None = Field(None, ge=0, le=1, description="img2img only; unset means Novita's 0.5.")
    output: str = Field(min_length=1, description="Folder for the images, relative to the manifest file.")
    matrix: Matrix | None = Field(
        None, description=_MATRIX_HELP.format(example="seed: [1, 2, 3]"), json_schema_extra=_sweepable("Generation")
    )
    on_unanswered_submit: Choice | None = Field(
        None,
        description="A submit that got no answer: submit it again (may pay twice) or hold it for a person. "
        "Not sent, not part of the identity. Default: apply.on_unanswered_submit in reconciler.yaml, else resubmit.",
    )

    @model_validator(mode="after")
    def _by_type(self) -> GenerationSpec:
        rules: list[Rule] = []
        if self.type == "img2img":
            if self.init_image is None:
                rules.append((("type",), "img2img needs `init_image` (a png, jpeg or webp file)", "value"))
            for key in ("hires_fix", "refiner"):
                if getattr(self, key) is not None:
                    rules.append(((key,), "only for txt2img (this generation is img2img)", "key"))
        else:
            for key in ("init_image", "strength"):
                if getattr(self, key) is not None:
                    rules.append(((key,), "only for img2img (this generation is txt2img)", "key"))
        if rules:
            raise _rules_error(rules)
        return self


# -- Documents -------------------------------------------------------------------------------------


class Metadata(_Model):
    name: str = Field(pattern=NAME_PATTERN, description="Unique per kind: [a-z0-9][a-z0-9-]{0,62}.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form; not part of identity.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Free-form; not part of identity.")


class DatasetDocument(_Model):
    apiVersion: Literal["reconciler/v1"]
    kind: Literal["Dataset"]
    metadata: Metadata
    spec: DatasetSpec


class LoraModelDocument(_Model):
    apiVersion: Literal["reconciler/v1"]
    kind: Literal["LoraModel"]
    metadata: Metadata
    spec: LoraModelSpec


class GenerationDocument(_Model):
    apiVersion: Literal["reconciler/v1"]
    kind: Literal["Generation"]
    metadata: Metadata
    spec: GenerationSpec


# kind → its document model (the loader validates each document with the model of its kind)
DOCUMENTS: dict[str, type[_Model]] = {
    "Dataset": DatasetDocument,
    "LoraModel": LoraModelDocument,
    "Generation": GenerationDocument,
}


def document_schema(kind: str | None = None) -> dict[str, Any]:
    """JSON Schema of one manifest document: a union discriminated on `kind`, or only that kind's."""
    if kind is not None:
        schema = DOCUMENTS[kind].model_json_schema()
    else:
        union = Annotated[DatasetDocument | LoraModelDocument | GenerationDocument, Field(discriminator="kind")]
        schema = TypeAdapter(union).json_schema()
        schema["title"] = "reconciler manifest document"
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
