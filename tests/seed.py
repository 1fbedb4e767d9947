"""The run's seed: the suites that draw randomness (crash, faults, ghosts, convergence) take it from here.

`RECONCILER_TEST_SEED` when set (to replay a run: every run prints its seed in pytest's header and in the
reliability figures); otherwise tests/conftest.py picks a random one once per run, before pytest-xdist starts its
workers, so every worker (and every subprocess) sees the same value.
"""

from __future__ import annotations

import os
import random

SEED_VARIABLE = "RECONCILER_TEST_SEED"


def pick_seed() -> None:
    """Set the variable to a random seed unless the caller set it; refuse a value that is not a whole number."""
    value = os.environ.get(SEED_VARIABLE, "")
    if not value:
        os.environ[SEED_VARIABLE] = str(random.SystemRandom().randrange(1, 1_000_000))
    elif not value.isdigit():
        raise ValueError(f"{SEED_VARIABLE}={value!r}: give a whole number (the seed a run printed)")


def run_seed() -> int:
    """The run's seed (pick_seed ran in pytest_configure; a module imported outside pytest picks its own)."""
    pick_seed()
    return int(os.environ[SEED_VARIABLE])
