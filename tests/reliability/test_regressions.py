"""Regression tests for the product bugs the reliability suites found."""

from __future__ import annotations

from pathlib import Path

from reconciler.files import remove_partials as _remove_partial_downloads


def test_partial_downloads_left_by_a_killed_apply_are_removed(tmp_path: Path) -> None:
    """A SIGKILL mid-download left `.gen-1.png.XXXX.part` in the output folder for good (crash suite)."""
    out = tmp_path / "outputs/gen"
    out.mkdir(parents=True)
    (out / ".gen-1.png.a1b2c3.part").write_bytes(b"half")
    (out / ".gen-1.png.zz.part").write_bytes(b"")
    (out / ".gen-10.png.x.part").write_bytes(b"other image")
    (out / "gen-1.png").write_bytes(b"done")
    _remove_partial_downloads(out / "gen-1.png")
    assert sorted(p.name for p in out.iterdir()) == [".gen-10.png.x.part", "gen-1.png"]
    _remove_partial_downloads(tmp_path / "missing/gen-1.png")  # no folder yet: nothing to do
