"""What every test shares: the real servers, the run's seed, the suites' figures, and the order that keeps two
pytest-xdist workers busy.

- Servers (tests/servers.py): a throwaway PostgreSQL cluster and moto's S3 server, each started on first use and
  stopped at the end of the session, so once per xdist worker (each its own folder, port and databases). Where
  PostgreSQL is not installed, the tests that need it are skipped on a developer's machine and fail in CI (where
  `.ci/run` installs it).
- Seed: the suites that draw randomness (crash, faults, ghosts, convergence) take it from `tests.seed.run_seed()`:
  `RECONCILER_TEST_SEED` when set (to replay a run), otherwise a random one picked here once per run; pytest's
  header, the figures section and each such suite's figure line print it.
- Figures: a test records one line with the `figure` fixture; the lines are printed at the end of the run
  ("reliability figures"), also from xdist workers (they travel in the test's report).
- Order: the modules with slow tests run first, so the fast ones fill both workers at the end (under `-n`,
  pyproject's `--dist loadscope --no-loadscope-reorder` keeps a module's tests on one worker, in this order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.seed import SEED_VARIABLE, pick_seed, run_seed
from tests.servers import IN_CI, Cluster, S3Server, postgres_bindir, start_postgres, start_s3

FIGURE = "reliability figure"  # the name of the user property a figure travels in


def pytest_configure(config: pytest.Config) -> None:
    # Picked once, by the controller (or a plain run): xdist workers and the CLI's subprocesses inherit it.
    try:
        pick_seed()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_header(config: pytest.Config) -> str:
    return f"{SEED_VARIABLE}={run_seed()} (set it to replay the crash, fault, ghost and convergence suites)"


# ------------------------------------------------------------------------------------------------ servers


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    if postgres_bindir() is None:
        if IN_CI:
            pytest.fail("PostgreSQL is not installed: .ci/run installs it (apt-get install -y postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    cluster = start_postgres()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(postgres: Cluster) -> str:
    """A fresh, empty database on the session's cluster, as the superuser."""
    return postgres.url(db=postgres.database())


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = start_s3(Path(tmp_path_factory.mktemp("moto")))
    yield server
    server.stop()


_buckets = iter(range(1, 1_000_000))


@pytest.fixture
def bucket(s3: S3Server) -> str:
    """A new, empty bucket on the session's moto server."""
    name = f"outputs-{next(_buckets)}"
    s3.make_bucket(name)
    return name


# ------------------------------------------------------------------------------------------------ figures

FIGURES: list[str] = []


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """`figure(line)`: one line for the "reliability figures" section at the end of the run."""

    def record(line: str) -> None:
        request.node.user_properties.append((FIGURE, line))
        print(line)  # also in the test's captured output

    return record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # the teardown report carries every property the test recorded; under xdist it reaches the controller
    if report.when == "teardown":
        FIGURES.extend(str(value) for name, value in report.user_properties if name == FIGURE)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        terminalreporter.write_line(f"{SEED_VARIABLE}={run_seed()}")
        for line in FIGURES:
            terminalreporter.write_line(line)


# ------------------------------------------------------------------------------------------------ order


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Under -n, pyproject's `--dist loadscope --no-loadscope-reorder` hands out whole modules in this order: the
    # modules with slow tests first, so the fast ones fill both workers at the end.
    slow = {_module(item) for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: _module(item) not in slow)  # stable: a module's tests stay together, in order


def _module(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]
