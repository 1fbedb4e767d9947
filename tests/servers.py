"""Real servers for the tests: a throwaway PostgreSQL cluster and moto's S3 server, each on a free loopback port.

PostgreSQL is Debian's (`postgresql`; `.ci/run` installs it when `initdb` is missing). The server refuses to run
as root, so as root the cluster is made and run by the `postgres` user (`runuser`) in a folder it owns. The
superuser has a password (the wrong-password test needs password authentication over TCP); roles and databases
are made per test. moto's standalone server (`moto[server]`) answers the real S3 client over HTTP.

Under pytest-xdist each worker starts its own of each (tests/conftest.py's session fixtures): a cluster in its own
temporary folder (data, Unix socket) on its own port, a moto server on its own port; a port another process took
between the pick and the bind is picked again.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

SUPERUSER_PASSWORD = "pg-super-9b1f7e"  # a throwaway cluster's; the tests check it is written nowhere
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def postgres_bindir() -> Path | None:
    """Where Debian's PostgreSQL binaries are (newest version first), or None."""
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(found).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Cluster:
    """A running throwaway cluster: `url(...)` builds connection URLs; `database()` makes a fresh database."""

    bindir: Path
    folder: Path
    port: int
    as_postgres: bool
    counter: int = 0
    proc_env: dict[str, str] = field(default_factory=dict)
    options: str = ""  # what `pg_ctl start -o` was given

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        return subprocess.run(
            [*prefix, *args], capture_output=True, text=True, check=check, env=self.proc_env, timeout=120
        )

    def url(self, user: str = "postgres", password: str | None = SUPERUSER_PASSWORD, db: str = "postgres") -> str:
        auth = f"{user}:{password}" if password is not None else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def sql(self, statement: str, db: str = "postgres") -> str:
        import psycopg

        with psycopg.connect(self.url(db=db), autocommit=True) as conn:
            cur = conn.execute(statement)
            return str(cur.fetchall()) if cur.description else ""

    def database(self, owner: str | None = None) -> str:
        """A new, empty database (owned by `owner` if given); returns its name."""
        self.counter += 1
        name = f"t{os.getpid()}_{self.counter}"
        self.sql(f"CREATE DATABASE {name}" + (f" OWNER {owner}" if owner else ""))
        return name

    def role(self, name: str, password: str) -> None:
        self.sql(
            f"DO $$ BEGIN CREATE ROLE {name} LOGIN PASSWORD '{password}'; EXCEPTION WHEN duplicate_object "
            f"THEN NULL; END $$"
        )

    def halt(self) -> None:
        """Shut the server down as a failover or a maintenance restart does (`-m fast`: every session ended)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start it again after `halt`, on the same port with the same options."""
        data, log = str(self.folder / "data"), str(self.folder / "log")
        self._run(str(self.bindir / "pg_ctl"), "-D", data, "-o", self.options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(*, fsync: bool = False) -> Cluster:
    """initdb + pg_ctl start in a temporary folder, on a free port; the caller stops it."""
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (no initdb): apt-get install -y postgresql")
    as_postgres = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    if as_postgres:
        pw = pwd.getpwnam("postgres")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        folder.chmod(0o700)
        env["HOME"] = str(folder)
    cluster = Cluster(bindir, folder, free_port(), as_postgres, proc_env=env)
    pwfile = folder / "pw"
    pwfile.write_text(SUPERUSER_PASSWORD + "\n")
    if as_postgres:
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    cluster._run(
        str(bindir / "initdb"),
        "-D",
        str(folder / "data"),
        "-U",
        "postgres",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        f"--pwfile={pwfile}",
        "-E",
        "UTF8",
        "--no-instructions",
    )
    pwfile.unlink()
    for attempt in range(5):  # a free port can be taken by another process (an xdist worker's) before we bind it
        if attempt:
            cluster.port = free_port()
        options = f"-p {cluster.port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not fsync:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        cluster.options = options
        data, logfile = str(folder / "data"), str(folder / "log")
        started = cluster._run(
            str(bindir / "pg_ctl"), "-D", data, "-o", options, "-l", logfile, "-w", "start", check=False
        )
        if started.returncode == 0:
            return cluster
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        if "could not bind" not in log and "already in use" not in log:
            break
    shutil.rmtree(folder, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {started.stdout}{started.stderr}{log}")


@contextlib.contextmanager
def running_postgres(*, fsync: bool = False) -> Iterator[Cluster]:
    cluster = start_postgres(fsync=fsync)
    try:
        yield cluster
    finally:
        cluster.stop()


# ---------------------------------------------------------------------------------------------- S3

S3_KEY_ID = "AKIAMOTOEXAMPLE7Q2X"
S3_SECRET = "moto-secret-4c9e1d7a3b"  # moto accepts any; the tests check it is written nowhere


@dataclass
class S3Server:
    proc: subprocess.Popen[bytes]
    endpoint: str
    log: Path

    def env(self) -> dict[str, str]:
        """What points the real S3 client (botocore) at this server, as a CI job's AWS_* variables would."""
        return {
            "AWS_ACCESS_KEY_ID": S3_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self) -> Any:
        """The real S3 client (boto3), pointed at this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=S3_KEY_ID,
            aws_secret_access_key=S3_SECRET,
            region_name="us-east-1",
        )

    def make_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str) -> list[str]:
        """Every object key in `bucket`."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [o["Key"] for page in pages for o in page.get("Contents", [])]

    def requests(self) -> list[str]:
        """The access log: one line per request the server answered (method, path, status)."""
        return [line for line in self.log.read_text(errors="replace").splitlines() if '" ' in line and "HTTP/" in line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_s3(folder: Path, port: int | None = None) -> S3Server:
    """moto's standalone server on a free loopback port (or `port`: started again where a stopped one was); its
    access log goes to `folder/moto.log`."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "moto.log"
    for _ in range(1 if port else 5):  # a free port can be taken by another process (an xdist worker's) first
        server = _try_s3(port or free_port(), log)
        if server is not None:
            return server
    raise RuntimeError(f"moto server did not start: {log.read_text()}")


def _try_s3(port: int, log: Path) -> S3Server | None:
    """moto on `port`, once it answers; None if it exited (its port was taken)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            return S3Server(proc, endpoint, log)
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("moto server did not answer within 30 s")
