"""Fixtures of the simulator tests; the helpers live in sim_helpers.py (a name no other conftest shadows)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sim_helpers import Sim, make_sim


@pytest.fixture
def sim() -> Iterator[Sim]:
    s = make_sim()
    yield s
    s.client.close()
