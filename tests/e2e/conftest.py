from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Project, SimProcess, make_project, start_sim


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimProcess]:
    server = start_sim(tmp_path / "sim")
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path, sim: SimProcess) -> Project:
    return make_project(tmp_path, sim)
