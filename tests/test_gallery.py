"""The gallery: its data from the state (pure), its HTML (pure), and the build with its thumbnail cache."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from PIL import Image

from reconciler.desired.hashing import HashCache, sha256_file
from reconciler.present.gallery import build_gallery
from reconciler.present.gallery.html import render
from reconciler.present.gallery.model import build, page_of
from reconciler.state import FileRecord, GenerationEntry, HistoryRecord, State
from reconciler.status import Status

ATTRS = {
    "type": "txt2img",
    "prompt": "a photo of ohwx woman",
    "negative_prompt": "blurry",
    "model_name": "realisticVisionV51_v51VAE_94301.safetensors",
    "loras": [{"model": "alice", "model_name": "model_1.safetensors", "strength": 0.8}],
    "width": 512,
    "height": 384,
    "steps": 20,
    "seed": 1,
    "guidance_scale": 7.5,
    "sampler_name": "Euler a",
}


def member(name: str, axes: list[tuple[str, Any]], files: int = 1, **attrs: Any) -> GenerationEntry:
    label = ",".join(f"{k}={v}" for k, v in axes)
    full = f"{name}[{label}]"
    return GenerationEntry(
        name=full,
        identity="0" * 64,
        status=Status.SUCCEEDED,
        attributes={**ATTRS, **attrs},
        output=f"out/{name}/{label}",
        files=[
            FileRecord(path=f"out/{name}/{label}/{name}-{i + 1}.png", sha256=f"{hash(full + str(i)) & 0xFFFF:064x}")
            for i in range(files)
        ],
        matrix=name,
        axes=axes,
    )


def present_all(state: State) -> dict[str, str]:
    return {f.path: f.sha256 for e in state.generations() for f in e.files}


def test_a_two_axis_matrix_is_one_grid_with_rows_and_columns_in_value_order() -> None:
    s = State()
    for seed in (2, 1):
        for strength in (1.0, 0.6):
            s.put(member("grid", [("seed", seed), ("strength", strength)], seed=seed))
    s.resources.pop("Generation/grid[seed=2,strength=0.6]")  # one member not generated (not in the state)
    gallery = build(s, present_all(s), "demo")
    [matrix] = gallery.matrices
    [grid] = matrix.grids
    assert (grid.row_axis, grid.rows, grid.col_axis, grid.cols) == ("seed", ("1", "2"), "strength", ("0.6", "1"))
    assert [[c.name if c else None for c in row] for row in grid.cells] == [
        ["grid[seed=1,strength=0.6]", "grid[seed=1,strength=1.0]"],
        [None, "grid[seed=2,strength=1.0]"],
    ]
    assert ("Prompt", "a photo of ohwx woman") in matrix.common
    assert not any(k == "Seed" for k, _ in matrix.common)  # it differs between members


def test_a_third_axis_stacks_one_grid_per_value_and_one_axis_is_one_row() -> None:
    s = State()
    for cfg in (5, 9):
        for seed in (1, 2):
            for steps in (20, 30):
                s.put(member("cube", [("guidance_scale", cfg), ("seed", seed), ("steps", steps)]))
    s.put(member("line", [("seed", 3)]))
    s.put(member("line", [("seed", 1)]))
    gallery = build(s, present_all(s), "demo")
    cube, line = gallery.matrices
    assert [g.title for g in cube.grids] == ["guidance_scale=5", "guidance_scale=9"]
    assert all(len(g.cells) == 2 and len(g.cells[0]) == 2 for g in cube.grids)
    [row] = line.grids
    assert (row.row_axis, row.cols, len(row.cells)) == (None, ("1", "3"), 1)


def test_pictures_say_what_made_them_and_what_is_wrong_with_them() -> None:
    s = State()
    entry = member("grid", [("seed", 1)], files=3)
    s.put(entry)
    present = {entry.files[0].path: entry.files[0].sha256, entry.files[1].path: "f" * 64}  # the third is gone
    gallery = build(s, present, "demo")
    pictures = gallery.matrices[0].members[0].pictures
    assert [p.condition for p in pictures] == ["ok", "changed", "missing"]
    assert pictures[0].alt == (
        "grid[seed=1] image 1 of 3: “a photo of ohwx woman”, seed 1, 20 steps, "
        "LoRA alice (model_1.safetensors) × 0.8, realisticVisionV51_v51VAE_94301.safetensors, 512×384"
    )
    assert pictures[1].thumb is not None and pictures[1].thumb.startswith("f" * 24)  # by content, as it is now
    assert pictures[2].thumb is None


def test_pages_are_static_escaped_and_link_nothing_outside() -> None:
    s = State()
    hostile = member("grid", [("seed", 1)], prompt='<script>alert("x")</script> & more')
    hostile.history.append(
        HistoryRecord(
            identity="a" * 64,
            folder="out/grid/seed=1/history/aaaaaaaaaaaa",
            files=[FileRecord(path="out/grid/seed=1/history/aaaaaaaaaaaa/grid-1.png", sha256="b" * 64)],
            attributes={**ATTRS, "prompt": "before"},
            replaced_at="2026-01-02T03:04:05Z",
        )
    )
    s.put(hostile)
    present = present_all(s) | {"out/grid/seed=1/history/aaaaaaaaaaaa/grid-1.png": "b" * 64}
    files = render(build(s, present, "demo"), "..")
    assert set(files) == {"style.css", "gallery.js", "index.html", "m/grid.html", page_of(hostile.name)}
    member_page = files[page_of(hostile.name)]
    assert (
        "<script>alert" not in member_page
        and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in member_page
    )
    assert "Before (replaced 2026-01-02 03:04:05 UTC)" in member_page
    for text in files.values():
        assert not re.search(r"(src|href)=\"(https?:)?//", text), "nothing may load from the network"
        assert "http://" not in text and "https://" not in text
    assert 'href="../../../out/grid/seed%3D1/grid-1.png"' in member_page  # the full image, relative, quoted
    assert 'src="../../thumbs/' in member_page


def png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return sha256_file(path)


def test_build_makes_each_thumbnail_once_and_writes_nothing_when_nothing_changed(tmp_path: Path) -> None:
    s = State()
    for seed in (1, 2):
        entry = member("grid", [("seed", seed)])
        entry.files = [
            FileRecord(path=entry.files[0].path, sha256=png(tmp_path / entry.files[0].path, (seed * 90, 0, 0)))
        ]
        s.put(entry)
    out = tmp_path / "gallery"
    cache = HashCache(tmp_path / "cache.json")
    first = build_gallery(tmp_path, s, out, cache)
    assert (first.images, first.thumbnails, first.pages, first.unreadable) == (2, 2, 4, 0)
    thumbs = sorted((out / "thumbs").iterdir())
    assert len(thumbs) == 2
    with Image.open(thumbs[0]) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 384
    again = build_gallery(tmp_path, s, out, HashCache(tmp_path / "cache.json"))
    assert (again.thumbnails, again.written) == (0, 0)
    assert first.summary() == "Gallery: gallery/index.html (2 images, 4 pages, 2 new thumbnails)."

    # a file replaced on disk gets a thumbnail of what it is now; a file that is no image is shown as such
    changed = tmp_path / s.generation("grid[seed=1]").files[0].path  # type: ignore[union-attr]
    png(changed, (0, 200, 0))
    broken = tmp_path / s.generation("grid[seed=2]").files[0].path  # type: ignore[union-attr]
    broken.write_bytes(b"not an image")
    third = build_gallery(tmp_path, s, out, HashCache(tmp_path / "cache.json"))
    assert (third.thumbnails, third.unreadable) == (1, 1)
    assert len(list((out / "thumbs").iterdir())) == 1  # the two images' old thumbnails are gone
    page = (out / page_of("grid[seed=2]")).read_text()
    assert "not an image it can read" in page


def test_a_swept_model_is_one_card_with_a_row_per_member() -> None:
    from reconciler.state import DatasetEntry, ModelEntry

    s = State()
    s.put(DatasetEntry(name="photos", identity="d", attributes={"images": [{"file": "p/a.jpg", "sha256": "a" * 64}]}))
    for steps in (400, 800):
        s.put(
            ModelEntry(
                name=f"bob[max_train_steps={steps}]",
                identity=str(steps),
                dataset="photos",
                task_name=f"bob-{steps:08d}",
                model_name=f"model_{steps}.safetensors",
                matrix="bob",
                axes=[("max_train_steps", steps)],
            )
        )
    index = render(build(s, {"p/a.jpg": "a" * 64}, "demo"), "..")["index.html"]
    assert index.count('class="card model wide"') == 1
    assert index.count('<tr><th scope="row"><code>max_train_steps=') == 2
    assert "<code>model_800.safetensors</code>" in index and "<code>bob-00000400</code>" in index
    assert index.count('<img src="thumbs/') == 1  # the training images once, not per member
