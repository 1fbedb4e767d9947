"""The crash suite (test_crash.py) with the state in PostgreSQL (a commit is one transaction; the lock is the
server's) and an outputs remote (a kill between a download and its store stores again, never generates again).
A module of its own so that pytest-xdist runs it beside the file-state suite, not after it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.reliability.test_crash import suite
from tests.servers import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]  # minutes on a loaded machine

ROUNDS_POSTGRES = 6  # the same schedule as test_crash.py, fewer rounds to keep CI's time


def test_crash_suite_on_postgres(tmp_path: Path, figure: Any, postgres: Cluster) -> None:
    suite(tmp_path, figure, ROUNDS_POSTGRES, 18, postgres)
