"""The edge where a command's inputs are assembled: manifests + hashes, the state, and a Novita connection.

`--sim` starts the simulator in this process on its own account (`state/.sim/`) and state file
(`state/sim.json`), so the whole workflow runs with no account and no key.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.desired.hashing import HashCache
from reconciler.desired.resources import Desired, build_desired
from reconciler.errors import ConfigError
from reconciler.load.config import (
    CONFIG_FILE,
    RECONNECT_WINDOW_ENV,
    BudgetConfig,
    LoadedConfig,
    ProjectConfig,
    load_config,
    reconnect_window,
    resolve,
)
from reconciler.load.schema import NAME_PATTERN
from reconciler.plan.policy import SubmitPolicy
from reconciler.state.backend import DEFAULT_STATE, SIM_STATE, Backend, Lock, is_url, open_backend, workspace_file
from reconciler.state.file import FileBackend
from reconciler.status import OnUnanswered as Choice
from reconciler.urls import redact_url_password

if TYPE_CHECKING:
    from reconciler.apply.polling import PollPolicy
    from reconciler.novita import NovitaClient
    from reconciler.outputs.store import OutputsRemote

DEFAULT_MANIFESTS = Path("manifests")
SIM_DATA = Path("state/.sim")
SIM_KEY = "sim-local-key"  # the in-process simulator accepts any key; this one is not a secret
POSTGRES_SCHEMES = ("postgresql", "postgres")
RECONCILER_OUTPUTS_REMOTE = "RECONCILER_OUTPUTS_REMOTE"
WAIT_SCALE_ENV = "RECONCILER_TEST_WAIT_SCALE"  # a test hook: see wait_scale()


def _origin(flag: object, env_name: str, file_key: str, loaded: LoadedConfig) -> str:
    """Which setting a value came from, as error messages name it."""
    if flag is not None:
        return ""
    if os.environ.get(env_name, "").strip():
        return env_name
    return f"{file_key} in {CONFIG_FILE}" if loaded.sets(file_key) else ""


@dataclass(frozen=True)
class Flags:
    """What a command line says about where and what to work on, as `Settings.make` resolves it (None or empty:
    not given): -f, --state, --workspace, --sim, --lock-timeout, --target, --replace, --on-unanswered-submit and
    the --max-trainings/--max-images/--max-cost budget."""

    files: tuple[str, ...] = ()
    state: str | None = None
    workspace: str | None = None
    sim: bool = False
    lock_timeout: float = 0.0
    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    on_unanswered_submit: Choice | None = None
    budget: BudgetConfig = field(default_factory=BudgetConfig)  # only the limits given as flags


@dataclass
class Settings:
    """One command's resolved settings: flags > environment > reconciler.yaml > defaults."""

    root: Path
    files: list[Path]
    state_path: Path  # the state file (its workspace's), or where the local caches go beside a database state
    sim: bool = False
    lock_timeout: float = 0.0
    targets: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    config: ProjectConfig = field(default_factory=ProjectConfig)
    workspace: str = "default"
    state_url: str | None = None  # postgresql://... when the state lives in a database
    state_setting: str = "--state"  # where the state's location came from, for messages
    outputs_remote: str | None = None  # an fsspec URL that keeps every generated image
    outputs_setting: str = RECONCILER_OUTPUTS_REMOTE
    state_location: str = ""  # the state's location as given (a path before its workspace, or a URL)
    on_unanswered_submit: Choice | None = None  # --on-unanswered-submit: this run's explicit choice
    budget_flags: BudgetConfig = field(default_factory=BudgetConfig)  # --max-trainings/-images/-cost

    @classmethod
    def make(cls, flags: Flags) -> Settings:
        state, sim, workspace = flags.state, flags.sim, flags.workspace
        root = Path.cwd()
        loaded = load_config(root)
        config = loaded.config
        # --sim keeps its own state beside its own account, whatever the project's backend is
        default = str(SIM_STATE) if sim else (config.state.url or str(DEFAULT_STATE))
        location = str(resolve(state, None if sim else os.environ.get("RECONCILER_STATE_URL"), default))
        setting = (
            "--state"
            if state is not None
            else ("--sim" if sim else _origin(None, "RECONCILER_STATE_URL", "state.url", loaded) or "state.url")
        )
        # like the state's location, --sim ignores the project's workspace (unless --workspace names one)
        env_workspace = None if sim else os.environ.get("RECONCILER_WORKSPACE")
        chosen = str(resolve(workspace, env_workspace, "default" if sim else config.state.workspace))
        if not re.fullmatch(NAME_PATTERN, chosen):
            where = "--workspace" if workspace is not None else _origin(None, "RECONCILER_WORKSPACE", "", loaded)
            raise ConfigError(
                f"{where or 'state.workspace'} {chosen!r}: a workspace name is 1-63 of a-z, 0-9 and -, starting "
                "with a letter or digit"
            )
        url = None
        path = Path(location)
        if is_url(location):
            scheme = location.partition("://")[0].lower()
            if scheme not in POSTGRES_SCHEMES:
                raise ConfigError(
                    f"{setting} {redact_url_password(location)}: unknown state backend {scheme}://; use a file "
                    "path or postgresql://user@host:5432/db"
                )
            url, path = location, DEFAULT_STATE
        else:
            path = workspace_file(path, chosen)
        remote = None if sim else resolve(None, os.environ.get(RECONCILER_OUTPUTS_REMOTE), config.outputs.remote)
        outputs_setting = _origin(None, RECONCILER_OUTPUTS_REMOTE, "outputs.remote", loaded) or "outputs.remote"
        files_ = [Path(f) for f in flags.files] or [DEFAULT_MANIFESTS]
        return cls(
            root,
            files_,
            path,
            sim,
            flags.lock_timeout,
            list(flags.targets),
            list(flags.replace),
            config,
            chosen,
            url,
            setting,
            str(remote) if remote else None,
            outputs_setting,
            location,
            flags.on_unanswered_submit,
            flags.budget,
        )

    @property
    def policy(self) -> SubmitPolicy:
        """What to do with a generation submit that got no answer: the flag > the Generation's spec >
        apply.on_unanswered_submit in reconciler.yaml > resubmit (see reconciler.plan.policy)."""
        return SubmitPolicy(self.on_unanswered_submit, self.config.apply.on_unanswered_submit)

    @property
    def cache_file(self) -> Path:
        return self.state_path.with_name(f".{self.state_path.stem}.hashcache.json")

    def outputs(self) -> OutputsRemote | None:
        """The outputs remote, if one is configured (its backend is imported only then)."""
        if not self.outputs_remote:
            return None
        from reconciler.outputs.store import OutputsRemote

        return OutputsRemote(self.outputs_remote, self.outputs_setting)

    def backend(self) -> Backend:
        """Where the state lives (a file, or a database), chosen in one place, with its local journal."""
        from reconciler.state.journal import JournaledBackend, journal_folder

        if self.state_url is not None:
            window = reconnect_window(self.config, os.environ.get(RECONNECT_WINDOW_ENV))
            inner = open_backend(self.state_url, self.workspace, self.state_setting, reconnect_window=window)
        else:
            inner = FileBackend(self.state_path, self.workspace)
        return JournaledBackend(inner, journal_folder(self.state_path), f"{self.state_path.stem}-{self.workspace}")

    @contextlib.contextmanager
    def locked(self, command: str) -> Iterator[tuple[Backend, Lock]]:
        """The state's backend, its lock held for `command` (waiting up to --lock-timeout) until the block ends."""
        with self.backend() as backend, backend.lock(timeout=self.lock_timeout, command=command) as lock:
            yield backend, lock


def load_desired(settings: Settings) -> tuple[Desired, HashCache]:
    """Validate the manifests (unchanged files through the manifest cache) and hash their images (through the
    stat cache). No network."""
    from reconciler.load import load_manifests
    from reconciler.load.manifestcache import ManifestCache

    parsed = ManifestCache(settings.cache_file.with_name(f".{settings.state_path.stem}.manifests.hashcache.json"))
    cache = HashCache(settings.cache_file, parsed)  # saves both once the plan is made
    manifests = load_manifests(settings.files, settings.root, cache, parsed)
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


def default_endpoint_url() -> str:
    from reconciler.novita.client import DEFAULT_BASE_URL

    return DEFAULT_BASE_URL


def endpoint_url() -> str:
    """Novita's base URL as a real run would use it (NOVITA_API_BASE, else the default), for the record."""
    return os.environ.get("NOVITA_API_BASE", "").strip() or default_endpoint_url()


def make_client(endpoint: Endpoint) -> NovitaClient:
    from reconciler.novita import NovitaClient

    if endpoint.api_key is None:
        client = NovitaClient.from_env(endpoint.base_url)
    else:
        client = NovitaClient(endpoint.api_key, endpoint.base_url or "")
    scale = wait_scale()
    client.backoff_base, client.backoff_max = client.backoff_base * scale, client.backoff_max * scale
    return client


def wait_scale() -> float:
    """A test hook for the test suites' simulators, whose tasks take a second instead of minutes: the factor
    RECONCILER_TEST_WAIT_SCALE (a number in (0, 1]; 1 when unset) applies to the waits an apply chooses itself,
    the retry backoff and the pauses between the look-ups after an unanswered create. A Retry-After that Novita
    sends is honoured as sent."""
    text = os.environ.get(WAIT_SCALE_ENV, "").strip()
    if not text:
        return 1.0
    try:
        scale = float(text)
    except ValueError:
        scale = 0.0
    if not 0 < scale <= 1:
        raise ConfigError(f"{WAIT_SCALE_ENV}={text!r}: expected a number greater than 0 and at most 1")
    return scale


def sim_poll_policies() -> tuple[PollPolicy, PollPolicy]:
    """Training and generation poll policies that suit the simulator's short durations."""
    from reconciler.apply.polling import SIM_GENERATION, SIM_TRAINING

    return SIM_TRAINING, SIM_GENERATION
