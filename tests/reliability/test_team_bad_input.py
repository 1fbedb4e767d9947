"""Bad team settings through the whole CLI: an unreachable database, a wrong password, a role without rights to
create the schema, a schema from a newer version, a bucket that does not exist, an unknown scheme, a missing
extra, a bad workspace name. Each is one line naming the setting, exit 1, no network call to Novita, and the
state and the output folders unchanged."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import psycopg
import pytest

from reconciler.state.postgres import PostgresBackend
from tests.reliability.cli_inprocess import closed_port_url, run_main
from tests.servers import SUPERUSER_PASSWORD, Cluster, S3Server, free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project / "manifests")
    (project / "outputs/kept").mkdir(parents=True)
    (project / "outputs/kept/old.png").write_bytes(b"an image from before")
    for name in ("RECONCILER_STATE_URL", "RECONCILER_OUTPUTS_REMOTE", "RECONCILER_WORKSPACE", "PGPASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NOVITA_API_KEY", "sk-team-bad-input-never-used")
    monkeypatch.setenv("NOVITA_API_BASE", closed_port_url())
    monkeypatch.setenv("NO_COLOR", "1")
    return project


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not p.name.startswith(".state.hashcache")
        and not (p.suffix == ".lock" and not p.stat().st_size)
    }  # the stat cache and a released (empty) lock file are not state


def _refused(root: Path, args: list[str], expected: str, *, prefix: bool = False) -> None:
    """`plan` and `apply` both: exactly one line, exit 1, no traceback, nothing written, nobody asked."""
    before = _digest(root)
    for command in (["plan", *args], ["apply", "--auto-approve", *args]):
        code, out, err = run_main(command, root)
        assert "Traceback" not in err, err
        assert (code, out) == (1, ""), (command, code, out, err)
        line = err.removesuffix("\n")
        assert "\n" not in line, err
        assert line.startswith(expected) if prefix else line == expected, err
        assert "refused" not in err.replace("Connection refused (is the server", ""), f"Novita was called: {err}"
        assert _digest(root) == before, command


def test_an_unreachable_database(root: Path) -> None:
    port = free_port()
    _refused(
        root,
        ["--state", f"postgresql://ci:pw-never-shown@127.0.0.1:{port}/loras"],
        f"Error: --state postgresql://ci:***@127.0.0.1:{port}/loras: cannot connect: ",
        prefix=True,
    )


def test_a_wrong_password(root: Path, postgres: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    db = postgres.database()
    (root / "reconciler.yaml").write_text(f"state:\n  url: postgresql://postgres@127.0.0.1:{postgres.port}/{db}\n")
    monkeypatch.setenv("PGPASSWORD", "wrong-password-42")
    _refused(
        root,
        [],
        f"Error: state.url in reconciler.yaml postgresql://postgres@127.0.0.1:{postgres.port}/{db}: cannot connect: "
        'password authentication failed for user "postgres" (the password comes from the URL, PGPASSWORD or '
        "~/.pgpass)",
    )


def test_a_role_without_rights_to_create_the_schema(
    root: Path, postgres: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres.role("viewer", "viewer-pw-1")
    db = postgres.database()
    monkeypatch.setenv("RECONCILER_STATE_URL", f"postgresql://viewer@127.0.0.1:{postgres.port}/{db}")
    monkeypatch.setenv("PGPASSWORD", "viewer-pw-1")
    before = _digest(root)
    code, out, err = run_main(["apply", "--auto-approve"], root)
    assert (code, out) == (1, "") and "Traceback" not in err
    assert err == (
        f"Error: RECONCILER_STATE_URL postgresql://viewer@127.0.0.1:{postgres.port}/{db}: cannot create reconciler's "
        "tables (permission denied for schema public); grant the role CREATE on the database's schema, or have its "
        "owner run a reconciler command once. Nothing was changed.\n"
    )
    assert _digest(root) == before


def test_a_schema_from_a_newer_version(root: Path, postgres: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    url = postgres.url(db=postgres.database())
    with PostgresBackend(url) as backend, backend.lock(timeout=0, command="apply"):
        backend.open().save()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE reconciler_meta SET value = '2' WHERE key = 'schema_version'")
    monkeypatch.setenv("RECONCILER_STATE_URL", url.replace(f":{SUPERUSER_PASSWORD}@", "@"))
    monkeypatch.setenv("PGPASSWORD", SUPERUSER_PASSWORD)
    _refused(
        root,
        [],
        "Error: RECONCILER_STATE_URL postgresql://postgres@",
        prefix=True,
    )
    _, _, err = run_main(["plan"], root)
    assert "holds reconciler's tables in schema version 2, newer than this reconciler understands (version 1)" in err
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT serial FROM reconciler_workspaces").fetchone()
    assert row == (1,)


def test_a_bucket_that_does_not_exist(root: Path, s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    (root / "reconciler.yaml").write_text("outputs:\n  remote: s3://no-such-bucket/loras\n")
    _refused(
        root,
        [],
        "Error: outputs.remote in reconciler.yaml s3://no-such-bucket/loras: cannot list it (does the bucket or "
        "folder exist?): The specified bucket does not exist",
    )


def test_an_unknown_scheme(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_OUTPUTS_REMOTE", "ftp2://host/x")
    _refused(
        root,
        [],
        "Error: RECONCILER_OUTPUTS_REMOTE ftp2://host/x: unknown scheme ftp2://; use s3://, gs://, az:// or "
        "file:///path",
    )
    monkeypatch.delenv("RECONCILER_OUTPUTS_REMOTE")
    _refused(
        root,
        ["--state", "mysql://u:secret-pw@db/x"],
        "Error: --state mysql://u:***@db/x: unknown state backend mysql://; use a file path or "
        "postgresql://user@host:5432/db",
    )


def test_a_missing_extra(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_OUTPUTS_REMOTE", "gs://team/loras")  # gcsfs is not installed
    _refused(
        root,
        [],
        "Error: RECONCILER_OUTPUTS_REMOTE gs://team/loras: gs:// needs an extra package: pip install 'reconciler[gcs]'",
    )
    monkeypatch.delenv("RECONCILER_OUTPUTS_REMOTE")
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if `reconciler[postgres]` were not installed
    _refused(
        root,
        ["--state", "postgresql://ci@db.example/loras"],
        "Error: the PostgreSQL state backend needs psycopg: pip install 'reconciler[postgres]'",
    )


def test_a_bad_workspace_name(root: Path) -> None:
    _refused(
        root,
        ["--workspace", "Staging_1"],
        "Error: --workspace 'Staging_1': a workspace name is 1-63 of a-z, 0-9 and -, starting with a letter or digit",
    )
