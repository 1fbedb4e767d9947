"""Loading valid manifests: image expansion, captions, order, files and folders, the example, the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.load import (
    DatasetSpec,
    GenerationSpec,
    LoraModelSpec,
    ManifestSet,
    document_schema,
    load_manifests,
)
from reconciler.load.imagefiles import any_case_extension
from reconciler.load.schema import lora_file_problem

from .manifest_helpers import DATASET, GENERATION, MODEL, image_bytes, project, write

REPO = Path(__file__).resolve().parent.parent


def _dataset(images: str) -> str:
    return DATASET.replace("    - ../img/*.jpg\n", images)


def _load(root: Path, files: dict[str, str | bytes | None], *paths: str) -> ManifestSet:
    project(root, files)
    return load_manifests([Path(p) for p in paths or ("m",)], root)


def _shown(manifests: ManifestSet, name: str = "ds") -> list[tuple[str, str | None]]:
    return [(image.display, image.caption) for image in manifests.datasets[name].images]


def test_glob_folder_file_and_order(tmp_path: Path) -> None:
    files: dict[str, str | bytes | None] = {
        "img/d.PNG": image_bytes("PNG", 4),
        "img/e.webp": image_bytes("WEBP", 5),
        "img/notes.txt": "not an image",
        "other/z.jpeg": image_bytes(seed=6),
        "other/y.bin": image_bytes(seed=7),  # an explicit file is taken whatever its extension
        "m/ds.yaml": _dataset("    - ../other/y.bin\n    - ../img\n    - ../other/*.jp*g\n"),
    }
    manifests = _load(tmp_path, files)
    assert _shown(manifests) == [
        ("other/y.bin", None),
        ("img/a.jpg", None),
        ("img/b.jpg", None),
        ("img/c.jpg", None),
        ("img/d.PNG", None),
        ("img/e.webp", None),
        ("other/z.jpeg", None),
    ]
    formats = [image.format for image in manifests.datasets["ds"].images]
    assert formats == ["jpeg", "jpeg", "jpeg", "jpeg", "png", "webp", "jpeg"]
    assert all(image.path.is_absolute() and image.path.exists() for image in manifests.datasets["ds"].images)


def test_recursive_glob_and_question_mark(tmp_path: Path) -> None:
    files: dict[str, str | bytes | None] = {
        "img/deep/er/x1.jpg": image_bytes(seed=8),
        "img/deep/x2.jpg": image_bytes(seed=9),
        "m/ds.yaml": _dataset("    - ../img/**/x?.jpg\n"),
    }
    assert _shown(_load(tmp_path, files)) == [("img/deep/er/x1.jpg", None), ("img/deep/x2.jpg", None)]


def test_glob_extension_matches_in_any_case(tmp_path: Path) -> None:
    """`photos/*.jpg` takes IMG_0001.JPG too: a phone's upper-case files are never skipped silently."""
    files: dict[str, str | bytes | None] = {
        "photos/IMG_0001.JPG": image_bytes(seed=11),
        "photos/IMG_0002.Jpg": image_bytes(seed=12),
        "photos/img_0003.jpg": image_bytes(seed=13),
        "photos/IMG_0004.JPEG": image_bytes(seed=14),  # another extension: not what `*.jpg` asks for
        "m/ds.yaml": _dataset("    - ../photos/*.jpg\n"),
    }
    assert _shown(_load(tmp_path, files)) == [
        ("photos/IMG_0001.JPG", None),
        ("photos/IMG_0002.Jpg", None),
        ("photos/img_0003.jpg", None),
    ]


def test_any_case_extension() -> None:
    assert any_case_extension("photos/*.jpg") == "photos/*.[jJ][pP][gG]"
    assert any_case_extension("photos/*.WebP") == "photos/*.[wW][eE][bB][pP]"
    assert any_case_extension("photos/*") == "photos/*"
    assert any_case_extension("photos/*.txt") == "photos/*.txt"
    assert any_case_extension("photos/**/x?.jp*g") == "photos/**/x?.jp*g"


def test_sidecar_captions_explicit_wins_and_dedupe(tmp_path: Path) -> None:
    files: dict[str, str | bytes | None] = {
        "img/a.txt": "  a from the sidecar \n",
        "img/b.txt": "\n",  # empty: no caption
        "img/c.txt": "c from the sidecar",
        "m/ds.yaml": _dataset(
            "    - ../img/*.jpg\n"
            "    - {path: ../img/c.jpg, caption: c explicit}\n"  # a repeat: keeps its place, takes the caption
            "    - ../img/a.jpg\n"  # a plain repeat: dropped
            "    - {path: ../img/c.jpg, caption: c explicit}\n"  # the same caption again is fine
        ),
    }
    assert _shown(_load(tmp_path, files)) == [
        ("img/a.jpg", "a from the sidecar"),
        ("img/b.jpg", None),
        ("img/c.jpg", "c explicit"),
    ]


def test_multi_document_files_nested_folders_and_sources(tmp_path: Path) -> None:
    files: dict[str, str | bytes | None] = {
        "m/ds.yaml": None,
        "m/lm.yaml": None,
        "m/gen.yaml": None,
        "m/all.yaml": "# leading comment\n---\n" + DATASET + "---\n# only a comment\n---\n" + MODEL,
        "m/sub/deeper/gen.yml": GENERATION,
        "m/.hidden/ignored.yaml": "not: [valid",
        "m/readme.md": "ignored",
    }
    manifests = _load(tmp_path, files)
    assert sorted(manifests.datasets) == ["ds"] and sorted(manifests.models) == ["lm"]
    assert manifests.datasets["ds"].source.file == "m/all.yaml"
    assert manifests.datasets["ds"].source.line == 3
    assert manifests.models["lm"].source.line == 13
    generation = manifests.generations["gen"]
    assert generation.source.file == "m/sub/deeper/gen.yml"
    assert generation.output_dir == tmp_path / "m" / "sub" / "out" / "gen"  # relative to its own file
    assert [p.relative_to(tmp_path).as_posix() for p in manifests.files] == ["m/all.yaml", "m/sub/deeper/gen.yml"]


def test_file_and_folder_arguments(tmp_path: Path) -> None:
    project(tmp_path, {"extra/more.yaml": GENERATION.replace("name: gen", "name: more")})
    both = load_manifests([Path("m"), Path("extra/more.yaml"), Path("m/gen.yaml")], tmp_path)
    assert sorted(both.generations) == ["gen", "more"]
    assert len(both.files) == 4  # m/gen.yaml read once
    only = load_manifests([tmp_path / "m" / "ds.yaml"], tmp_path)
    assert list(only.datasets) == ["ds"] and not only.models


def test_digest_changes_with_any_byte(tmp_path: Path) -> None:
    first = _load(tmp_path, {}).digest
    assert load_manifests([Path("m")], tmp_path).digest == first
    write(tmp_path, {"m/gen.yaml": GENERATION + "# a comment\n"})
    assert load_manifests([Path("m")], tmp_path).digest != first


def test_defaults(tmp_path: Path) -> None:
    manifests = _load(tmp_path, {})
    model = manifests.models["lm"].spec
    assert (model.type, model.width, model.height, model.components) == ("subject", 512, 512, [])
    assert model.expert_setting.max_train_steps is None
    generation = manifests.generations["gen"].spec
    assert (generation.type, generation.width, generation.image_num, generation.steps) == ("txt2img", 512, 1, 20)
    assert (generation.seed, generation.guidance_scale, generation.sampler_name) == (-1, 7.5, "Euler a")
    assert generation.response_image_type == "png" and generation.strength is None
    assert manifests.generations["gen"].init_image is None


def test_the_example_project() -> None:
    manifests = load_manifests([Path("manifests")], REPO)
    assert (len(manifests.datasets), len(manifests.models), len(manifests.generations)) == (1, 1, 2)
    images = manifests.datasets["alice-photos"].images
    assert len(images) >= 10
    assert {image.format for image in images} == {"jpeg", "png"}
    captioned = [image.display for image in images if image.caption]
    assert "manifests/photos/alice/alice-01.jpg" in captioned  # a sidecar
    assert images[-1].display == "manifests/photos/alice-extra.png" and images[-1].caption  # explicit
    model = manifests.models["alice-v1"].spec
    assert model.expert_setting.learning_rate == 1e-4  # written 1e-4: a string in YAML 1.1
    assert [c.name for c in model.components] == ["face_crop_region", "resize", "face_restore"]
    restyle = manifests.generations["alice-restyle"]
    assert restyle.init_image is not None and restyle.init_image.format == "jpeg"
    assert manifests.generations["alice-portraits"].output_dir == REPO / "outputs" / "alice-portraits"
    assert sum(image.path.stat().st_size for image in images) < 200_000


@pytest.mark.parametrize(
    ("spec_type", "name"),
    [(DatasetSpec, "alice-photos"), (LoraModelSpec, "alice-v1"), (GenerationSpec, "alice-restyle")],
)
def test_specs_round_trip(spec_type: type[DatasetSpec | LoraModelSpec | GenerationSpec], name: str) -> None:
    manifests = load_manifests([Path("manifests")], REPO)
    spec = {**manifests.datasets, **manifests.models, **manifests.generations}[name].spec
    assert isinstance(spec, spec_type)
    assert spec_type.model_validate(spec.model_dump()) == spec
    assert spec_type.model_validate(json.loads(spec.model_dump_json())) == spec


def test_schema_is_a_discriminated_union_of_the_kinds() -> None:
    schema = document_schema()
    json.dumps(schema)  # serialisable
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["discriminator"]["propertyName"] == "kind"
    assert len(schema["oneOf"]) == 3
    defs = schema["$defs"]
    for kind in ("Dataset", "LoraModel", "Generation"):
        document = defs[f"{kind}Document"]
        assert document["additionalProperties"] is False
        assert document["properties"]["kind"]["const"] == kind
        assert set(document["required"]) == {"apiVersion", "kind", "metadata", "spec"}
    generation = defs["GenerationSpec"]["properties"]
    assert generation["width"]["minimum"] == 128 and generation["width"]["maximum"] == 2048
    assert len(generation["sampler_name"]["enum"]) == 20
    assert len(defs["LoraModelSpec"]["properties"]["base_model"]["enum"]) == 17
    assert defs["Metadata"]["properties"]["name"]["pattern"] == "^[a-z0-9][a-z0-9-]{0,62}$"


def test_schema_of_one_kind() -> None:
    schema = document_schema("LoraModel")
    assert schema["properties"]["kind"]["const"] == "LoraModel"
    assert "oneOf" not in schema


@pytest.mark.parametrize(
    "name",
    [
        "add_detail_44319.safetensors",
        "more_details_59655.safetensors",
        "Ghibli-Style-v1.SafeTensors",
        "epiCRealismHelper (1).safetensors",
        "old_lora.ckpt",
        "some_lora.pt",
        "model_1698904832_F2BB461625",
        "model_1698904832_F2BB461625.safetensors",
        "model_1_ABC",
    ],
)
def test_real_novita_lora_names_are_accepted(name: str) -> None:
    assert lora_file_problem(name) is None


@pytest.mark.parametrize(
    "name", ["me-v1", "alice-v1", "add_detail_44319", "model_abc", ".safetensors", "LoraModel/me-v1", "a/b.pt", " x.pt"]
)
def test_implausible_lora_names_are_refused(name: str) -> None:
    assert lora_file_problem(name) is not None
