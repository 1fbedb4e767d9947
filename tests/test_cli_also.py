# ruff: noqa: E501  (the expected lines are the exact text users see)
"""What a new user met around the cost work: validate checks reconciler.yaml, init's .gitignore, output of a
matrix, the indentation hint, skipped HEIC files, `its 1 image stays`; each through the real CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.test_cli_ux import empty, example, run

__all__ = ["empty", "example"]  # fixtures

GRID = """---
apiVersion: reconciler/v1
kind: Generation
metadata: {name: grid}
spec:
  model_name: realisticVisionV51_v51VAE_94301.safetensors
  prompt: a lighthouse
  width: 256
  height: 256
  output: ../outputs/grid
  matrix:
    seed: [1, 2]
    steps: [10, 20]
"""


def test_validate_checks_reconciler_yaml_with_the_manifests(example: Path) -> None:
    assert run("validate") == (0, "4 resources valid\n", "")
    (example / "reconciler.yaml").write_text("apply:\n  paralelism: 4\n")
    code, out, err = run("validate")
    assert (code, out) == (1, "")
    assert err == (
        "Error: 1 error in reconciler.yaml:\n"
        "reconciler.yaml:2:3: apply.paralelism: unknown field; did you mean `parallelism`?\n"
    )
    (example / "manifests/bad.yaml").write_text("apiVersion: reconciler/v1\nkind: Dataset\n")
    code, _, err = run("validate")
    assert code == 1
    assert err.startswith(
        "Error: 2 errors in the manifests:\nmanifests/bad.yaml:1:1: metadata: required field missing\n"
    )
    assert err.endswith(
        "\n1 error in reconciler.yaml:\nreconciler.yaml:2:3: apply.paralelism: unknown field; did you mean `parallelism`?\n"
    )
    (example / "manifests/bad.yaml").unlink()
    (example / "reconciler.yaml").write_text("apply:\n  parallelism: 4\n")
    assert run("validate") == (0, "4 resources valid; reconciler.yaml valid\n", "")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_init_gitignore_ignores_the_gallery_and_says_how_outputs_are_kept(empty: Path) -> None:
    assert run("init")[0] == 0
    subprocess.run(["git", "init", "-q"], cwd=empty, check=True)
    text = (empty / ".gitignore").read_text()
    assert "outputs remote (outputs.remote in reconciler.yaml)" in text and "`reconciler pull`" in text

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=empty).returncode == 0

    assert ignored("gallery/index.html") and not ignored("outputs/example-portraits/example-portraits-1.png")


def test_output_of_a_matrix_lists_its_members_with_their_axes(example: Path) -> None:
    (example / "manifests/grid.yaml").write_text(GRID)
    code, _, err = run("apply", "--sim", "--auto-approve", "--poll-interval", "0.02", "--ipm-txt2img", "0")
    assert code == 0, err
    code, out, err = run("output", "--sim", "grid")
    assert code == 0, err
    lines = [line.split("\t") for line in out.splitlines()]
    assert [line[0] for line in lines] == [f"Generation/grid[seed={a},steps={b}]" for a in (1, 2) for b in (10, 20)]
    assert all(path.startswith("outputs/grid/") and digest.startswith("sha256:") for _, path, digest in lines)
    assert len(out.splitlines()) == 4
    code, out, err = run("output", "--sim", "--json", "Generation/grid")
    members = json.loads(out)
    assert sorted((m["axes"]["seed"], m["axes"]["steps"]) for m in members.values()) == [
        (1, 10),
        (1, 20),
        (2, 10),
        (2, 20),
    ]
    assert {m["matrix"] for m in members.values()} == {"grid"}
    every = json.loads(run("output", "--sim", "--json")[1])
    assert every["Generation/grid[seed=1,steps=10]"]["axes"] == {"seed": 1, "steps": 10}
    assert "axes" not in every["Generation/alice-portraits"]


def test_a_key_indented_one_level_too_deep_gets_an_indentation_hint(example: Path) -> None:
    path = example / "manifests/generations.yaml"
    path.write_text(path.read_text().replace("  image_num: 2\n", "    image_num: 2\n", 1))
    code, _, err = run("validate")
    assert code == 1
    assert (
        "`image_num:` is indented deeper than `height:` above it, which already has a value; indent it like `height:`"
        in err
    )
    assert "quote" not in err


def test_a_folder_of_heic_photos_says_they_are_skipped_and_why(example: Path) -> None:
    photos = example / "manifests/photos/alice"
    (photos / "IMG_0001.HEIC").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    path = example / "manifests/alice.yaml"
    text = path.read_text()
    assert "photos/alice/*.jpg" in text
    path.write_text(text.replace("photos/alice/*.jpg", "photos/alice"))
    code, out, err = run("validate")
    assert (code, out) == (0, "4 resources valid\n")
    assert err.startswith("Note: manifests/alice.yaml:")
    assert err.endswith(
        "Dataset/alice-photos: skipped 1 file in folder `photos/alice` (IMG_0001.HEIC): HEIC/HEIF/AVIF images are "
        "not accepted by Novita; convert them to JPEG or PNG to train on them\n"
    )


def test_forgetting_one_image_says_it_stays(example: Path) -> None:
    path = example / "manifests/generations.yaml"
    assert (
        run("apply", "--sim", "--auto-approve", "--poll-interval", "0.02", "--ipm-txt2img", "0", "--ipm-img2img", "0")[
            0
        ]
        == 0
    )
    text = path.read_text()
    path.write_text(text[: text.index("\n---", text.index("alice-portraits"))] + "\n")  # alice-restyle (1 image) gone
    code, out, err = run("plan", "--sim")
    assert code == 0, err
    assert "Generation/alice-restyle" in out
    assert "forget (its 1 image stays on disk; --prune removes it)" in out
