"""The edge where a command's inputs are assembled: manifests + hashes, the state, and a Novita connection.

`--sim` starts the simulator in this process on its own account (`state/.sim/`) and state file
(`state/sim.json`), so the whole workflow runs with no account and no key.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.config import ProjectConfig, load_config, resolve
from reconciler.desired import Desired, build_desired
from reconciler.errors import ConfigError
from reconciler.hashing import HashCache

if TYPE_CHECKING:
    from reconciler.novita import NovitaClient

DEFAULT_STATE = Path("state/state.json")
SIM_STATE = Path("state/sim.json")
SIM_DATA = Path("state/.sim")
SIM_KEY = "sim-local-key"  # the in-process simulator accepts any key; this one is not a secret


@dataclass
class Settings:
    """One command's resolved settings: flags > environment > reconciler.yaml > defaults."""

    root: Path
    files: list[Path]
    state_path: Path
    sim: bool = False
    lock_timeout: float = 0.0
    targets: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    config: ProjectConfig = field(default_factory=ProjectConfig)
    workspace: str = "default"

    @classmethod
    def make(
        cls,
        files: tuple[str, ...],
        state: str | None,
        sim: bool,
        lock_timeout: float = 0.0,
        targets: tuple[str, ...] = (),
        replace: tuple[str, ...] = (),
        workspace: str | None = None,
    ) -> Settings:
        root = Path.cwd()
        config = load_config(root).config
        # --sim keeps its own state beside its own account, whatever the project's backend is
        default = str(SIM_STATE) if sim else (config.state.url or str(DEFAULT_STATE))
        location = str(resolve(state, None if sim else os.environ.get("RECONCILER_STATE_URL"), default))
        if "://" in location:
            raise ConfigError(
                f"state {redact_url_password(location)}: only a state file is supported by this build "
                "(set state.url in reconciler.yaml, RECONCILER_STATE_URL or --state to a file path)"
            )
        files_ = [Path(f) for f in files] or [Path("manifests")]
        chosen = str(resolve(workspace, os.environ.get("RECONCILER_WORKSPACE"), config.state.workspace))
        return cls(root, files_, Path(location), sim, lock_timeout, list(targets), list(replace), config, chosen)

    @property
    def cache_file(self) -> Path:
        return self.state_path.with_name(f".{self.state_path.stem}.hashcache.json")


def load_desired(settings: Settings) -> tuple[Desired, HashCache]:
    """Validate the manifests and hash their images (through the stat cache). No network."""
    from reconciler.manifest import load_manifests

    manifests = load_manifests(settings.files, settings.root)
    cache = HashCache(settings.cache_file)
    desired = build_desired(manifests, cache, settings.root)
    return desired, cache


@dataclass(frozen=True)
class Endpoint:
    base_url: str | None
    api_key: str | None  # None: read NOVITA_API_KEY when the client is made


@contextlib.contextmanager
def novita_endpoint(settings: Settings) -> Iterator[Endpoint]:
    """Where to send requests: the in-process simulator under --sim, else NOVITA_API_BASE / api.novita.ai."""
    if not settings.sim:
        if not os.environ.get("NOVITA_API_KEY", "").strip():
            raise ConfigError(
                "NOVITA_API_KEY is not set: export your Novita API key, or add --sim to use the local simulator"
            )
        yield Endpoint(None, None)
        return
    from reconciler.sim.config import SimConfig
    from reconciler.sim.server import running_simulator

    config_file = os.environ.get("RECONCILER_SIM_CONFIG")
    config = SimConfig.from_file(Path(config_file)) if config_file else SimConfig()
    data = settings.state_path.parent / SIM_DATA.name
    data.mkdir(parents=True, exist_ok=True)
    with running_simulator(config, data) as sim:
        yield Endpoint(sim.base_url, SIM_KEY)


def make_client(endpoint: Endpoint) -> NovitaClient:
    from reconciler.novita import NovitaClient

    if endpoint.api_key is None:
        return NovitaClient.from_env(endpoint.base_url)
    return NovitaClient(endpoint.api_key, endpoint.base_url or "")


def sim_poll_intervals() -> tuple[float, float]:
    """Training and generation poll intervals that suit the simulator's short durations."""
    return 0.5, 0.25


def redact_url_password(url: str) -> str:
    """`postgresql://user:secret@host/db` → `postgresql://user:***@host/db`: how a URL is ever shown."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}://{userinfo}{at}{host}{slash}{path}"
