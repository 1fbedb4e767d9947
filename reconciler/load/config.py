"""Project settings: the optional `reconciler.yaml` at the project root, validated like the manifests.

Every key is optional; with no file the tool behaves as it always did (file state, local outputs). Values
are resolved with the precedence command-line flag > environment variable > reconciler.yaml > default by
`resolve`, so each setting is decided in one place. Unknown keys, wrong types and values out of range are
reported at once as `reconciler.yaml:line:col: key: message`, with "did you mean" for a misspelt key. No
secret belongs here: the Novita key, database passwords and object-store credentials come from their own
environment variables and files, never from this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reconciler.errors import ConfigError, Problem
from reconciler.load.messages import translate
from reconciler.load.schema import NAME_PATTERN
from reconciler.load.words import dotted
from reconciler.load.yamlsource import parse_documents
from reconciler.status import OnUnanswered as Choice
from reconciler.text import plural

CONFIG_FILE = "reconciler.yaml"
RECONNECT_WINDOW_ENV = "RECONCILER_RECONNECT_WINDOW"

T = TypeVar("T")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StateConfig(_Strict):
    url: str | None = Field(
        default=None,
        description="Where the state lives: a file path (default state/state.json) or postgresql://user@host:5432/db",
    )
    workspace: str = Field(
        default="default",
        pattern=NAME_PATTERN,
        description="One of several named states in the same backend",
    )
    reconnect_window: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="Seconds a commit keeps reconnecting to a PostgreSQL state that went away (a failover)",
    )


class OutputsConfig(_Strict):
    remote: str | None = Field(
        default=None,
        description="An fsspec URL (s3://bucket/prefix, gs://..., file:///mnt/share/...) that keeps every image",
    )
    gallery: bool = Field(default=True, description="Refresh the static gallery after an apply that wrote images")


class IpmConfig(_Strict):
    txt2img: int = Field(default=20, ge=0, le=100_000, description="txt2img images per minute (0 = no throttle)")
    img2img: int = Field(default=10, ge=0, le=100_000, description="img2img images per minute (0 = no throttle)")


class BudgetConfig(_Strict):
    """The most one apply may pay for; a plan over it exits with its own status and apply refuses it."""

    max_trainings: int | None = Field(default=None, ge=0, description="Trainings one apply may submit")
    max_images: int | None = Field(default=None, ge=0, description="Images one apply may generate")
    max_cost: float | None = Field(default=None, ge=0, description="USD one apply may spend (needs prices)")


class ApplyConfig(_Strict):
    parallelism: int = Field(default=16, ge=1, le=64, description="Uploads, submissions and downloads at once")
    on_unanswered_submit: Choice = Field(
        default="resubmit",
        description="A generation submit that got no answer: submit it again (may pay twice) or hold it",
    )
    ipm: IpmConfig = Field(default_factory=IpmConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)


class TrainingPrices(_Strict):
    subject: float | None = Field(default=None, ge=0, le=100_000, description="USD per subject training")
    style: float | None = Field(default=None, ge=0, le=100_000, description="USD per style training")


class ImagePrices(_Strict):
    txt2img: float | None = Field(default=None, ge=0, le=1_000, description="USD per txt2img image")
    img2img: float | None = Field(default=None, ge=0, le=1_000, description="USD per img2img image")


class PricesConfig(_Strict):
    """What the project pays, in USD (Novita's balance is in USD; it publishes no price for these APIs).

    `training: 1.50` is short for `{subject: 1.50, style: 1.50}`, `image: 0.002` for `{txt2img: .., img2img: ..}`."""

    training: TrainingPrices | None = Field(default=None, description="USD per training, by type (or one figure)")
    image: ImagePrices | None = Field(default=None, description="USD per image, by type (or one figure)")

    @field_validator("training", mode="before")
    @classmethod
    def _one_training_price(cls, value: Any) -> Any:
        return _both(value, "subject", "style")

    @field_validator("image", mode="before")
    @classmethod
    def _one_image_price(cls, value: Any) -> Any:
        return _both(value, "txt2img", "img2img")

    @property
    def given(self) -> bool:
        return self.training is not None or self.image is not None

    def of_training(self, task_type: str) -> float | None:
        """USD for one training of `task_type` (subject, style); None when the project gives no price for it."""
        price: float | None = getattr(self.training, task_type, None)
        return price

    def of_image(self, task_type: str) -> float | None:
        """USD for one image of `task_type` (txt2img, img2img); None when the project gives no price for it."""
        price: float | None = getattr(self.image, task_type, None)
        return price


def _both(value: Any, *names: str) -> Any:
    """One number stands for the same price of every type."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dict.fromkeys(names, value)
    return value


class ProjectConfig(_Strict):
    """The whole of reconciler.yaml."""

    state: StateConfig = Field(default_factory=StateConfig)
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    apply: ApplyConfig = Field(default_factory=ApplyConfig)
    prices: PricesConfig = Field(default_factory=PricesConfig)


@dataclass(frozen=True)
class LoadedConfig:
    """The project settings and where they came from (None: no reconciler.yaml, every default)."""

    config: ProjectConfig
    file: Path | None = None
    keys: frozenset[str] = frozenset()  # the dotted keys the file sets, e.g. "apply.parallelism"

    def sets(self, key: str) -> bool:
        return key in self.keys


def load_config(root: Path) -> LoadedConfig:
    """Read `reconciler.yaml` in `root`, if there is one; a ConfigError lists every problem in it."""
    path = root / CONFIG_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return LoadedConfig(ProjectConfig())
    except OSError as exc:
        raise ConfigError(f"{CONFIG_FILE}: cannot read it: {exc.strerror or exc}") from exc
    return parse_config(raw, path)


def parse_config(raw: bytes, path: Path) -> LoadedConfig:
    name = path.name
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _problems([Problem(name, line, 1, "", "not UTF-8 text; save the file as UTF-8")]) from None
    documents, yaml_problems = parse_documents(text)
    problems = [Problem(name, p.line, p.col, "", p.message) for p in yaml_problems]
    if problems:
        raise _problems(problems)
    if len(documents) > 1:
        extra = documents[1].start
        raise _problems([Problem(name, extra.line, extra.col, "", "one YAML document only (remove the `---`)")])
    if not documents or documents[0].data is None:
        return LoadedConfig(ProjectConfig(), path)
    doc = documents[0]
    if not isinstance(doc.data, dict):
        raise _problems([Problem(name, doc.start.line, doc.start.col, "", "expected a mapping of settings")])
    try:
        config = ProjectConfig.model_validate(doc.data)
    except ValidationError as exc:
        located = [loc for error in exc.errors() for loc in translate(ProjectConfig, error)]
        raise _problems(
            [
                Problem(name, pos.line, pos.col, dotted(loc.path), loc.message)
                for loc in located
                for pos in [doc.key_pos(loc.path) if loc.at_key else doc.value_pos(loc.path)]
            ]
        ) from None
    return LoadedConfig(config, path, frozenset(_keys(doc.data)))


def _keys(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    found: list[str] = []
    for key, value in data.items():
        found.append(prefix + str(key))
        if isinstance(value, Mapping):
            found += _keys(value, f"{prefix}{key}.")
    return found


def _problems(problems: list[Problem]) -> ConfigError:
    ordered = sorted(set(problems))
    head = f"{plural(len(ordered), 'error')} in {CONFIG_FILE}:"
    return ConfigError("\n".join([head, *(str(p) for p in ordered)]))


def resolve(flag: T | None, env: str | None, file_value: T) -> T | str:
    """Flag > environment variable (its text, if set and not blank) > reconciler.yaml (or its default)."""
    if flag is not None:
        return flag
    if env is not None and env.strip():
        return env.strip()
    return file_value


def reconnect_window(config: ProjectConfig, env: str | None) -> float:
    """state.reconnect_window, or RECONCILER_RECONNECT_WINDOW when set (seconds, 0 to 86400)."""
    value = resolve(None, env, config.state.reconnect_window)
    if isinstance(value, float):
        return value
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 86_400:
        raise ConfigError(
            f"{RECONNECT_WINDOW_ENV} {value!r}: a number of seconds from 0 to 86400 (how long a commit keeps "
            "reconnecting to a PostgreSQL state that went away)"
        )
    return seconds
