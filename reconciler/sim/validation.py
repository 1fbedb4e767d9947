"""Pure request validation for the simulated endpoints: JSON in, normalised dict out, or BadRequest naming the field."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
from typing import Any

from PIL import Image

BASE_MODELS = (
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
)
LR_SCHEDULERS = ("constant", "linear", "cosine", "cosine_with_restarts", "polynomial", "constant_with_warmup")
COMPONENT_NAMES = ("face_crop_region", "resize", "face_restore")
CLASS_PROMPTS = ("person",)
FILE_EXTENSIONS = ("png", "webp", "jpeg")
SAMPLERS = (
    "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE", "DPM fast",
    "DPM adaptive", "LMS Karras", "DPM2 Karras", "DPM2 a Karras", "DPM++ 2S a Karras", "DPM++ 2M Karras",
    "DPM++ SDE Karras", "DDIM", "PLMS", "UniPC",
)  # fmt: skip
UPSCALERS = ("RealESRGAN_x4plus_anime_6B", "RealESRNet_x4plus", "Latent")
PREPROCESSORS = (
    "scribble_hed", "softedge_hed", "scribble_hedsafe", "softedge_hedsafe", "depth_midas", "mlsd", "openpose",
    "openpose_face", "openpose_faceonly", "openpose_full", "openpose_hand", "dwpose", "scribble_pidinet",
    "softedge_pidinet", "scribble_pidsafe", "softedge_pidsafe", "normal_bae", "lineart_coarse",
    "lineart_realistic", "lineart_anime", "lineart", "depth_zoe", "shuffle", "mediapipe_face", "canny", "depth",
    "depth_leres", "depth_leres++",
)  # fmt: skip
IP_ADAPTERS = ("ip-adapter_sd15.bin", "ip-adapter_sdxl.bin")
MAX_DATASET_ITEMS = 50
MAX_INPUT_IMAGE_BYTES = 10 * 1024 * 1024
MAX_INPUT_IMAGE_PIXELS = 16 * 1024 * 1024
IMG2IMG_DEFAULT_STEPS = 20


class BadRequest(Exception):
    """A 400 with Novita's reason (INVALID_REQUEST_BODY unless said otherwise) and a message naming the field."""

    def __init__(self, message: str, reason: str = "INVALID_REQUEST_BODY") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


def _show(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 60 else f'"{value[:57]}..." ({len(value)} chars)'
    return repr(value) if not isinstance(value, bool) else str(value).lower()


class _Obj:
    """Typed reads from one JSON object at a dotted path; null and absent are the same."""

    def __init__(self, data: object, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise BadRequest(f"{path or 'body'}: must be an object, got {_show(data)}")
        self.data: dict[str, Any] = data
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, required: bool = False) -> Any:
        value = self.data.get(key)
        if value is None and required:
            raise BadRequest(f"{self.at(key)}: required")
        return value

    def string(self, key: str, required: bool = False, lengths: tuple[int, int] | None = None) -> str | None:
        value = self.raw(key)
        if value is None or value == "":
            if required:
                raise BadRequest(f"{self.at(key)}: required")
            return None
        if not isinstance(value, str):
            raise BadRequest(f"{self.at(key)}: must be a string, got {_show(value)}")
        if lengths and not lengths[0] <= len(value) <= lengths[1]:
            raise BadRequest(f"{self.at(key)}: length must be in [{lengths[0]}, {lengths[1]}], got {len(value)}")
        return value

    def enum(self, key: str, choices: tuple[str, ...], required: bool = False) -> str | None:
        value = self.string(key, required)
        if value is not None and value not in choices:
            raise BadRequest(f"{self.at(key)}: must be one of {list(choices)}, got {_show(value)}")
        return value

    def integer(self, key: str, required: bool = False, low: int | None = None, high: int | None = None) -> int | None:
        value = self.raw(key, required)
        if value is None:
            return None
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):  # protojson accepts integers as strings
            try:
                number = int(value.strip())
            except ValueError:
                number = None
        if number is None:
            raise BadRequest(f"{self.at(key)}: must be an integer, got {_show(value)}")
        _check_range(self.at(key), number, low, high)
        return number

    def number(
        self, key: str, required: bool = False, low: float | None = None, high: float | None = None
    ) -> float | None:
        value = self.raw(key, required)
        if value is None:
            return None
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            raise BadRequest(f"{self.at(key)}: must be a number, got {_show(value)}")
        _check_range(self.at(key), number, low, high)
        return number

    def boolean(self, key: str) -> bool | None:
        value = self.raw(key)
        if value is not None and not isinstance(value, bool):
            raise BadRequest(f"{self.at(key)}: must be a boolean, got {_show(value)}")
        return value

    def objects(self, key: str, required: bool = False, most: int | None = None) -> list[_Obj]:
        value = self.raw(key, required)
        if value is None:
            return []
        if not isinstance(value, list):
            raise BadRequest(f"{self.at(key)}: must be an array, got {_show(value)}")
        if most is not None and len(value) > most:
            raise BadRequest(f"{self.at(key)}: at most {most} items, got {len(value)}")
        return [_Obj(item, f"{self.at(key)}[{i}]") for i, item in enumerate(value)]

    def obj(self, key: str, required: bool = False) -> _Obj:
        return _Obj(self.raw(key, required), self.at(key))


def _check_range(path: str, number: float, low: float | None, high: float | None) -> None:
    shown = int(number) if float(number).is_integer() else number
    if low is not None and high is not None and not low <= number <= high:
        raise BadRequest(f"{path}: must be in [{low:g}, {high:g}], got {shown}")
    if low is not None and number < low:
        raise BadRequest(f"{path}: must be >= {low:g}, got {shown}")
    if high is not None and number > high:
        raise BadRequest(f"{path}: must be <= {high:g}, got {shown}")


def parse_asset_request(body: object) -> str:
    """POST /v3/assets/training_dataset -> the file extension."""
    ext = _Obj(body, "").enum("file_extension", FILE_EXTENSIONS, required=True)
    assert ext is not None
    return ext


def parse_training(body: object, kind: str) -> dict[str, Any]:
    """POST /v3/training/subject|style -> {name, base_model, width, height, assets_ids, captions, ...}.

    Unknown fields are ignored, null is absent. `learning_rate` is lenient: any positive number or numeric
    string (the docs' enum is not enforced, Novita's playground sends 3e-4). Whether the assets exist is the
    account's business, not this function's.
    """
    top = _Obj(body, "")
    name = top.string("name", required=True)
    base_model = top.enum("base_model", BASE_MODELS, required=True)
    width = top.integer("width", required=True, low=1)
    height = top.integer("height", required=True, low=1)
    items = top.objects("image_dataset_items", required=True, most=MAX_DATASET_ITEMS)
    if not items:
        raise BadRequest("image_dataset_items: must hold at least 1 item, got 0")
    assets_ids: list[str] = []
    captions: list[str | None] = []
    for item in items:
        raw_id = item.raw("assets_id", required=True)
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
            raise BadRequest(f"{item.at('assets_id')}: must be a string, got {_show(raw_id)}")
        if str(raw_id) == "":
            raise BadRequest(f"{item.at('assets_id')}: required")
        assets_ids.append(str(raw_id))
        captions.append(item.string("caption", required=(kind == "style"), lengths=(1, 1024)))
    expert = top.obj("expert_setting")
    if kind == "subject":
        expert.string("instance_prompt", required=True)
        expert.enum("class_prompt", CLASS_PROMPTS, required=True)
    expert.integer("train_batch_size", low=1, high=4)
    learning_rate = expert.number("learning_rate")
    if learning_rate is not None and learning_rate <= 0:
        raise BadRequest(f"{expert.at('learning_rate')}: must be > 0, got {learning_rate:g}")
    max_train_steps = expert.integer("max_train_steps", low=1)
    expert.integer("seed", low=1)
    expert.enum("lr_scheduler", LR_SCHEDULERS)
    expert.integer("lr_warmup_steps", low=0)
    expert.boolean("with_prior_preservation")
    expert.number("prior_loss_weight")
    expert.boolean("train_text_encoder")
    for key in ("lora_r", "lora_alpha", "lora_text_encoder_r", "lora_text_encoder_alpha"):
        expert.integer(key, low=4, high=128)
    components = []
    for component in top.objects("components"):
        component_name = component.enum("name", COMPONENT_NAMES, required=True)
        args = []
        for arg in component.objects("args"):
            args.append((arg.string("name", required=True), arg.string("value")))
        components.append({"name": component_name, "args": args})
    return {
        "name": name,
        "base_model": base_model,
        "width": width,
        "height": height,
        "assets_ids": assets_ids,
        "captions": captions,
        "max_train_steps": max_train_steps,
        "components": components,
    }


def parse_generation(body: object, kind: str) -> dict[str, Any]:
    """POST /v3/async/txt2img|img2img -> the normalised request the account stores and the images are drawn from.

    img2img: `steps: null` defaults to 20 (SDK 0.7.1 sends it); `image_base64` must decode to a png/jpeg/webp
    image of at most 10 MB and 16 megapixels (reasons IMAGE_FILE_EXCEEDS_MAX_SIZE, INVALID_IMAGE_FORMAT,
    IMAGE_EXCEEDS_MAX_RESOLUTION).
    """
    top = _Obj(body, "")
    extra = top.obj("extra")
    image_type = extra.enum("response_image_type", FILE_EXTENSIONS) or "png"
    extra.boolean("enable_nsfw_detection")
    extra.integer("nsfw_detection_level", low=0, high=2)
    request = top.obj("request", required=True)
    model_name = request.string("model_name", required=True)
    prompt = request.string("prompt", required=True, lengths=(1, 1024))
    request.string("negative_prompt", lengths=(1, 1024))
    width = request.integer("width", required=True, low=128, high=2048)
    height = request.integer("height", required=True, low=128, high=2048)
    image_num = request.integer("image_num", required=True, low=1, high=8)
    steps = request.integer("steps", required=(kind == "txt2img"), low=1, high=100)
    request.number("guidance_scale", required=True, low=1, high=30)
    request.enum("sampler_name", SAMPLERS, required=True)
    request.string("sd_vae")
    seed = request.integer("seed", low=-1)
    request.integer("clip_skip", low=1, high=12)
    loras = []
    for lora in request.objects("loras", most=5):
        lora_name = lora.string("model_name", required=True)
        strength = lora.number("strength", required=True, low=0, high=1)
        loras.append({"model_name": lora_name, "strength": strength})
    for embedding in request.objects("embeddings", most=5):
        embedding.string("model_name", required=True)
    out: dict[str, Any] = {
        "kind": kind,
        "model_name": model_name,
        "prompt": prompt,
        "negative_prompt": request.data.get("negative_prompt") or "",
        "width": width,
        "height": height,
        "image_num": image_num,
        "steps": steps if steps is not None else IMG2IMG_DEFAULT_STEPS,
        "seed": -1 if seed is None else seed,
        "loras": loras,
        "image_type": image_type,
        "enable_nsfw_detection": bool(extra.data.get("enable_nsfw_detection")),
    }
    if kind == "txt2img":
        if request.raw("hires_fix") is not None:
            hires = request.obj("hires_fix")
            hires.integer("target_width", required=True, low=128, high=4096)
            hires.integer("target_height", required=True, low=128, high=4096)
            hires.number("strength", required=True, low=0, high=1)
            hires.enum("upscaler", UPSCALERS)
        if request.raw("refiner") is not None:
            request.obj("refiner").number("switch_at", required=True, low=0, high=1)
    else:
        image = request.string("image_base64", required=True)
        assert image is not None
        out["input_sha_prefix"] = _check_image(image, request.at("image_base64"))
        request.number("strength", low=0, high=1)
        if request.raw("controlnet") is not None:
            for unit in request.obj("controlnet").objects("units"):
                unit.string("model_name", required=True)
                unit_image = unit.string("image_base64", required=True)
                assert unit_image is not None
                _check_image(unit_image, unit.at("image_base64"))
                unit.number("strength", required=True, low=0, high=1)
                unit.enum("preprocessor", PREPROCESSORS)
                unit.number("guidance_start", low=0, high=1)
                unit.number("guidance_end", low=0, high=1)
        for adapter in request.objects("ip_adapters", most=1):
            adapter.enum("model_name", IP_ADAPTERS, required=True)
            adapter.string("image_base64", required=True)
            adapter.number("strength", low=0, high=1)
    return out


def _check_image(text: str, path: str) -> str:
    """Decode and check an input image; return a short fingerprint of its bytes."""
    if len(text) > (MAX_INPUT_IMAGE_BYTES * 4) // 3 + 8:
        raise BadRequest(f"{path}: image exceeds 10 MB", reason="IMAGE_FILE_EXCEEDS_MAX_SIZE")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{path}: not valid base64", reason="INVALID_IMAGE_FORMAT") from None
    if len(data) > MAX_INPUT_IMAGE_BYTES:
        raise BadRequest(f"{path}: image exceeds 10 MB ({len(data)} bytes)", reason="IMAGE_FILE_EXCEEDS_MAX_SIZE")
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, (w, h) = image.format, image.size
    except Exception:
        raise BadRequest(f"{path}: not a png, jpeg or webp image", reason="INVALID_IMAGE_FORMAT") from None
    if fmt not in ("PNG", "JPEG", "WEBP"):
        raise BadRequest(f"{path}: image format {fmt} is not png, jpeg or webp", reason="INVALID_IMAGE_FORMAT")
    if w * h > MAX_INPUT_IMAGE_PIXELS:
        raise BadRequest(f"{path}: image of {w}x{h} exceeds 16 megapixels", reason="IMAGE_EXCEEDS_MAX_RESOLUTION")
    return hashlib.sha256(data).hexdigest()[:12]
