"""Session-wide real servers: a throwaway PostgreSQL cluster and moto's S3 server (see tests/servers.py).

Each starts on first use and stops at the end of the session. Where PostgreSQL is not installed, the tests that
need it are skipped on a developer's machine and fail in CI (where `.ci/run` installs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import IN_CI, Cluster, S3Server, postgres_bindir, start_postgres, start_s3


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
