"""Matrices: expansion into members, their addresses, folders and task names, and every error located."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.desired.hashing import HashCache
from reconciler.desired.resources import build_desired
from reconciler.errors import ManifestError
from reconciler.load import load_manifests
from reconciler.load.matrix import (
    format_value,
    labels,
    member_folder,
    normalise_address,
    parse_path,
    split_label,
)
from tests.manifest_helpers import project

GRID = """\
apiVersion: reconciler/v1
kind: Generation
metadata:
  name: grid
spec:
  model_name: m.safetensors
  prompt: hello
  loras: [{model: lm, strength: 0.8}]
  output: ../out/grid
  matrix:
{axes}
"""

SWEPT = """\
apiVersion: reconciler/v1
kind: LoraModel
metadata:
  name: lm
spec:
  dataset: ds
  base_model: v1-5-pruned-emaonly
  expert_setting:
    instance_prompt: a photo of ohwx man
    class_prompt: person
  matrix:
    expert_setting.max_train_steps: [400, 800]
    expert_setting.learning_rate: ["1e-4", 2e-4]
"""


def grid(axes: str) -> str:
    return GRID.replace("{axes}", "\n".join("    " + line for line in axes.strip().splitlines()))


def problems(root: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifests([Path("m")], root)
    return [str(problem) for problem in caught.value.problems]


def test_a_generation_matrix_makes_one_member_per_combination(tmp_path: Path) -> None:
    project(tmp_path, {"m/grid.yaml": grid("seed: [1, 2, 3]\nloras[0].strength: [0.6, 0.8, 1.0]")})
    loaded = load_manifests([Path("m")], tmp_path)
    members = sorted(name for name in loaded.generations if name.startswith("grid"))
    assert members == [f"grid[seed={s},strength={v}]" for s in (1, 2, 3) for v in ("0.6", "0.8", "1")]
    one = loaded.generations["grid[seed=2,strength=0.6]"]
    assert (one.spec.seed, one.spec.loras[0].strength, one.spec.matrix) == (2, 0.6, None)
    assert one.output_dir == tmp_path / "out/grid/seed=2,strength=0.6"
    assert (one.matrix, one.axes) == ("grid", (("seed", 2), ("strength", 0.6)))
    assert loaded.generations["gen"].matrix is None  # a plain generation is untouched


def test_member_files_identities_and_request(tmp_path: Path) -> None:
    project(tmp_path, {"m/grid.yaml": grid("seed: [1, 2]")})
    desired = build_desired(load_manifests([Path("m")], tmp_path), HashCache(None), tmp_path)
    one, two = desired.generations["grid[seed=1]"], desired.generations["grid[seed=2]"]
    assert (one.stem, one.output_display) == ("grid", "out/grid/seed=1")
    assert one.request["seed"] == 1 and "matrix" not in one.request
    names = {"lm": "model_1.safetensors"}
    assert one.identity(names) != two.identity(names)
    assert desired.matrices() == {"Generation/grid": ["Generation/grid[seed=1]", "Generation/grid[seed=2]"]}
    assert desired.expand(["Generation/grid"]) == ["Generation/grid[seed=1]", "Generation/grid[seed=2]"]


USES_LM = """\
apiVersion: reconciler/v1
kind: Generation
metadata:
  name: gen
spec:
  model_name: m.safetensors
  prompt: hello
  loras: [{model: lm, strength: 0.7}]
  output: ../out/gen
"""


def test_a_swept_model_trains_per_member_and_its_generations_run_per_member(tmp_path: Path) -> None:
    project(tmp_path, {"m/lm.yaml": SWEPT, "m/gen.yaml": USES_LM})
    desired = build_desired(load_manifests([Path("m")], tmp_path), HashCache(None), tmp_path)
    assert sorted(desired.models) == [
        "lm[learning_rate=0.0001,max_train_steps=400]",
        "lm[learning_rate=0.0001,max_train_steps=800]",
        "lm[learning_rate=0.0002,max_train_steps=400]",
        "lm[learning_rate=0.0002,max_train_steps=800]",
    ]
    tasks = [m.task_name for m in desired.models.values()]
    assert len(set(tasks)) == 4
    assert all(re.fullmatch(r"lm-[0-9a-f]{8}", t) for t in tasks)  # a valid, deterministic Novita task name
    member = desired.models["lm[learning_rate=0.0002,max_train_steps=800]"]
    assert member.settings["expert_setting"]["learning_rate"] == 0.0002
    assert member.settings["expert_setting"]["max_train_steps"] == 800
    gens = sorted(desired.generations)
    assert gens == [
        "gen[lm.learning_rate=0.0001,lm.max_train_steps=400]",
        "gen[lm.learning_rate=0.0001,lm.max_train_steps=800]",
        "gen[lm.learning_rate=0.0002,lm.max_train_steps=400]",
        "gen[lm.learning_rate=0.0002,lm.max_train_steps=800]",
    ]
    gen = desired.generations[gens[3]]
    assert gen.lora_models == ("lm[learning_rate=0.0002,max_train_steps=800]",)
    assert desired.dependencies(gen.address) == ["LoraModel/lm[learning_rate=0.0002,max_train_steps=800]"]


def test_the_same_definition_keeps_the_same_task_name_as_a_plain_model(tmp_path: Path) -> None:
    """Turning a plain model into a matrix adopts the training that already has the member's definition."""
    plain = SWEPT.split("  matrix:")[0] + "    max_train_steps: 400\n    learning_rate: 0.0001\n"
    project(tmp_path, {"m/lm.yaml": plain})
    before = build_desired(load_manifests([Path("m")], tmp_path), HashCache(None), tmp_path).models["lm"]
    project(tmp_path, {"m/lm.yaml": SWEPT})
    after = build_desired(load_manifests([Path("m")], tmp_path), HashCache(None), tmp_path)
    assert after.models["lm[learning_rate=0.0001,max_train_steps=400]"].task_name == before.task_name


@settings(max_examples=25, deadline=None)
@given(st.permutations(["seed: [1, 2]", "steps: [20, 30]", "loras[0].strength: [0.5, 1.0]", "width: [512, 768]"]))
def test_member_addresses_do_not_depend_on_the_order_of_the_axes(order: list[str]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        project(root, {"m/grid.yaml": grid("\n".join(order))})
        loaded = load_manifests([Path("m")], root)
        members = sorted(n for n in loaded.generations if n.startswith("grid["))
        assert len(members) == 16
        assert members[0] == "grid[seed=1,steps=20,strength=0.5,width=512]"
        assert {g.output_dir.name for n, g in loaded.generations.items() if n.startswith("grid[")} == {
            m[len("grid[") : -1] for m in members
        }


@pytest.mark.parametrize(
    ("axes", "expected"),
    [
        (
            "seed: [1, 1]",
            [
                "m/grid.yaml:11:15: Generation/grid: spec.matrix.seed[1]: duplicate value 1 (the same as [0]); "
                "give it once"
            ],
        ),
        ("seed: [-2]", ["m/grid.yaml:11:12: Generation/grid: spec.matrix.seed[0]: must be ≥ -1; got -2"]),
        ("seed: []", ["m/grid.yaml:11:5: Generation/grid: spec.matrix.seed: needs at least 1 item; got none"]),
        (
            "loras[0].strength: [0.5, 1.5]",
            ["m/grid.yaml:11:30: Generation/grid: spec.matrix.loras[0].strength[1]: must be between 0 and 1; got 1.5"],
        ),
        (
            "loras[2].strength: [0.5]",
            ["m/grid.yaml:11:5: Generation/grid: spec.matrix.loras[2].strength: spec.loras has no item [2] (it has 1)"],
        ),
        (
            "sampler_name: [Euler a, Eular]",
            [
                'm/grid.yaml:11:29: Generation/grid: spec.matrix.sampler_name[1]: "Eular" is not one of the 20 '
                "allowed values; nearest: `Euler`, `Euler a` (all: `reconciler models`)"
            ],
        ),
        (
            "sed: [1]",
            ["m/grid.yaml:11:5: Generation/grid: spec.matrix.sed: unknown field; did you mean `seed`?"],
        ),
        (
            "type: [txt2img, img2img]",
            [
                "m/grid.yaml:11:5: Generation/grid: spec.matrix.type: `type` cannot be swept; a Generation matrix "
                "sweeps prompt, negative_prompt, model_name, width, height, image_num, steps, seed, guidance_scale, "
                "sampler_name, clip_skip, sd_vae, strength, loras[N].strength"
            ],
        ),
        (
            "loras..strength: [1]",
            [
                "m/grid.yaml:11:5: Generation/grid: spec.matrix.loras..strength: not a field path; write it like "
                "`prompt` or `loras[N].strength`"
            ],
        ),
        (
            "seed: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nsteps: "
            + str(list(range(1, 11)))
            + "\nwidth: "
            + str(list(range(128, 139)))
            + "\n",
            [
                "m/grid.yaml:10:3: Generation/grid: spec.matrix: this matrix makes 1100 members (10 × 10 × 11); "
                "at most 1000 per Generation"
            ],
        ),
        (
            "{}",
            [
                "m/grid.yaml:10:3: Generation/grid: spec.matrix: a matrix needs at least one axis, "
                "e.g. `seed: [1, 2, 3]`"
            ],
        ),
    ],
    ids=[
        "duplicate",
        "out-of-range",
        "empty",
        "lora-strength-range",
        "lora-index",
        "enum",
        "unknown",
        "not-sweepable",
        "not-a-path",
        "too-many",
        "no-axis",
    ],
)
def test_matrix_errors(tmp_path: Path, axes: str, expected: list[str]) -> None:
    text = grid(axes) if axes != "{}" else GRID.replace("  matrix:\n{axes}\n", "  matrix: {}\n")
    project(tmp_path, {"m/grid.yaml": text})
    assert problems(tmp_path) == expected


def test_a_model_matrix_counts_against_its_generations(tmp_path: Path) -> None:
    many = SWEPT.replace("[400, 800]", str(list(range(100, 150)))).replace('["1e-4", 2e-4]', "[0.0001, 0.0002]")
    project(tmp_path, {"m/lm.yaml": many, "m/grid.yaml": grid("seed: " + str(list(range(1, 12))))})
    assert problems(tmp_path) == [
        "m/grid.yaml:8:3: Generation/grid: spec.loras: runs once per member of LoraModel/lm: 1100 members in all; "
        "at most 1000 per Generation",
    ]  # 100 model members are allowed; 11 seeds on each of them are too many


def test_address_helpers() -> None:
    assert parse_path("loras[0].strength") == ("loras", 0, "strength")
    assert parse_path("expert_setting.max_train_steps") == ("expert_setting", "max_train_steps")
    assert [parse_path(bad) for bad in ("", ".seed", "seed.", "[0]", "a b", "loras[x]")] == [None] * 6
    assert labels([("seed",), ("loras", 0, "strength"), ("loras", 1, "strength")]) == [
        "seed",
        "loras[0].strength",
        "loras[1].strength",
    ]
    assert [format_value(v) for v in (1, 0.6, 1.0, 1e-4, 1e-05, True, "DDIM", "Euler a")] == [
        "1",
        "0.6",
        "1",
        "0.0001",
        "1e-05",
        "true",
        "DDIM",
        '"Euler a"',
    ]
    assert member_folder((("sampler_name", "Euler a"), ("seed", 1))).startswith("sampler_name=euler-a-")
    assert "/" not in member_folder((("prompt", "a/b, c"),))
    assert split_label('prompt="a, b",seed=1') == ['prompt="a, b"', "seed=1"]
    assert normalise_address("Generation/g[strength=1,seed=3]") == "Generation/g[seed=3,strength=1]"
    assert normalise_address("Generation/g") == "Generation/g"
