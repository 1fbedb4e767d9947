"""Simulator settings and the fault-spec mini-language. Pure: no I/O beyond reading a JSON config file."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Endpoint names used by per-endpoint fault rates, the request log and `--fault ENDPOINT:KIND=RATE`.
ENDPOINTS = (
    "assets",  # POST /v3/assets/training_dataset
    "upload",  # PUT of a presigned upload URL
    "training-create",  # POST /v3/training/subject|style
    "training-get",  # GET /v3/training/subject|style
    "training-list",  # GET /v3/training
    "txt2img",  # POST /v3/async/txt2img
    "img2img",  # POST /v3/async/img2img
    "task-result",  # GET /v3/async/task-result
    "download",  # GET of a presigned output image URL
    "balance",  # GET /openapi/v1/billing/balance/detail (only its own faults: balance:5xx=1)
)
# Endpoints only their own faults reach (`balance:5xx=1`), not those set for every endpoint: a balance read
# before and after each apply leaves a seeded run's faults where they fell before.
OWN_FAULTS_ONLY = frozenset({"balance"})
RATE_KINDS = ("5xx", "429", "drop", "drop-after", "ghost")
# What a "ghost" answers after it handled the request (the task exists): picked at random, seeded.
GHOST_ANSWERS = ("500", "CREATE_TASK_FAILED", "503", "drop")
SCALAR_KINDS = {
    "latency": "latency",
    "jitter": "latency_jitter",
    "training-fail": "training_fail",
    "training-cancel": "training_cancel",
    "generation-fail": "generation_fail",
    "upload-expire": "upload_expire",
    "asset-forget": "asset_forget",
    "list-lag": "list_lag",
}
PATTERN_KINDS = {
    "training-fail-pattern": "training_fail_pattern",
    "training-cancel-pattern": "training_cancel_pattern",
    "generation-fail-pattern": "generation_fail_pattern",
}


_SECONDS = frozenset({"latency", "latency_jitter", "list_lag"})  # scalar fields in seconds, not rates


class ConfigError(ValueError):
    """A bad fault spec or config file; the message says what was expected."""


@dataclass
class FaultConfig:
    """What goes wrong, and how often. Rates are probabilities in [0, 1] drawn from the seeded RNG."""

    latency: float = 0.0  # seconds added to every API and storage request
    latency_jitter: float = 0.0  # plus uniform [0, jitter] seconds
    # endpoint name (or "*" for all) -> kind ("5xx", "429", "drop", "drop-after", "ghost") -> rate
    rates: dict[str, dict[str, float]] = field(default_factory=dict)
    training_fail: float = 0.0  # a new training ends FAILED
    training_cancel: float = 0.0  # a new training ends CANCELED
    training_fail_pattern: str | None = None  # regex on the task name: matching trainings end FAILED
    training_cancel_pattern: str | None = None  # ... end CANCELED
    generation_fail: float = 0.0  # a new txt2img/img2img task ends TASK_STATUS_FAILED
    generation_fail_pattern: str | None = None  # regex on the prompt
    upload_expire: float = 0.0  # an upload URL is already expired when the PUT arrives
    asset_forget: float = 0.0  # a training create "forgets" one of its assets_ids (400, must re-upload)
    list_lag: float = 0.0  # seconds before a new training shows in GET /v3/training (its own GET works at once)
    ghost_answer: str | None = None  # what every ghost answers (one of GHOST_ANSWERS); None: one at random

    def rate(self, endpoint: str, kind: str) -> float:
        """The rate of `kind` on `endpoint`: the endpoint's own setting, else the "*" one, else 0."""
        own = self.rates.get(endpoint, {})
        if kind in own or endpoint in OWN_FAULTS_ONLY:
            return own.get(kind, 0.0)
        return self.rates.get("*", {}).get(kind, 0.0)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultConfig:
        """Build from a JSON object: the dataclass fields, and/or `"specs": ["5xx=0.1", ...]`."""
        faults = cls()
        faults.update(data)
        return faults

    def update(self, data: dict[str, Any]) -> None:
        """Apply a partial JSON object (field names, or `specs`, or `reset: true` first)."""
        if data.get("reset"):
            self.__dict__.update(dataclasses.asdict(FaultConfig()))
        names = {f.name for f in dataclasses.fields(self)}
        for key, value in data.items():
            if key in ("reset", "specs"):
                continue
            if key not in names:
                raise ConfigError(f"faults: unknown field {key!r}; expected one of {sorted(names)}")
            if key == "rates":
                if not isinstance(value, dict):
                    raise ConfigError("faults.rates: must be an object {endpoint: {kind: rate}}")
                for endpoint, kinds in value.items():
                    for kind, rate in dict(kinds).items():
                        self._set_rate(endpoint, kind, rate)
            elif key.endswith("_pattern"):
                self.__dict__[key] = _check_pattern(value, key)
            elif key == "ghost_answer":
                self.ghost_answer = _check_ghost_answer(value)
            else:
                self.__dict__[key] = _check_number(value, key, upper=None if key in _SECONDS else 1.0)
        for spec in data.get("specs") or []:
            self.apply_spec(spec)

    def apply_spec(self, spec: str) -> None:
        """Apply one `--fault` spec: `[ENDPOINT:]KIND=VALUE`, e.g. `5xx=0.2`, `txt2img:429=0.1`."""
        head, sep, value = spec.partition("=")
        if not sep:
            raise ConfigError(f"fault {spec!r}: expected KIND=VALUE or ENDPOINT:KIND=VALUE")
        endpoint, _, kind = head.strip().rpartition(":")
        kind = kind.strip()
        if kind in RATE_KINDS:
            self._set_rate(endpoint or "*", kind, value)
        elif endpoint:
            raise ConfigError(f"fault {spec!r}: only {', '.join(RATE_KINDS)} can be given per endpoint")
        elif kind in SCALAR_KINDS:
            name = SCALAR_KINDS[kind]
            self.__dict__[name] = _check_number(value, kind, upper=None if name in _SECONDS else 1.0)
        elif kind in PATTERN_KINDS:
            self.__dict__[PATTERN_KINDS[kind]] = _check_pattern(value, kind)
        elif kind == "ghost-answer":
            self.ghost_answer = _check_ghost_answer(value)
        else:
            known = [*RATE_KINDS, *SCALAR_KINDS, *PATTERN_KINDS, "ghost-answer"]
            raise ConfigError(f"fault {spec!r}: unknown kind {kind!r}; expected one of {', '.join(known)}")

    def _set_rate(self, endpoint: str, kind: str, value: object) -> None:
        if endpoint != "*" and endpoint not in ENDPOINTS:
            raise ConfigError(f"fault endpoint {endpoint!r}: expected * or one of {', '.join(ENDPOINTS)}")
        if kind not in RATE_KINDS:
            raise ConfigError(f"fault kind {kind!r}: expected one of {', '.join(RATE_KINDS)}")
        self.rates.setdefault(endpoint, {})[kind] = _check_number(value, f"{endpoint}:{kind}", upper=1.0)


def _check_number(value: object, name: str, upper: float | None) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if number < 0 or (upper is not None and number > upper):
        bound = f"[0, {upper:g}]" if upper is not None else ">= 0"
        raise ConfigError(f"{name}: expected a number in {bound}, got {value!r}")
    return number


def _check_ghost_answer(value: object) -> str | None:
    if value is None or value == "":
        return None
    if str(value) not in GHOST_ANSWERS:
        raise ConfigError(f"ghost-answer: expected one of {', '.join(GHOST_ANSWERS)}, got {value!r}")
    return str(value)


def _check_pattern(value: object, name: str) -> str | None:
    if value is None or value == "":
        return None
    try:
        re.compile(str(value))
    except re.error as exc:
        raise ConfigError(f"{name}: not a valid regular expression: {exc}") from None
    return str(value)


DEFAULT_BALANCE = 10_000_000  # $1,000.00
DEFAULT_PRICES = {"subject": 15_000, "style": 15_000, "txt2img": 20, "img2img": 20}  # $1.50 a training, $0.002 an image


@dataclass
class SimConfig:
    """Everything that shapes one simulator run. Durations in seconds of the (possibly fake) clock."""

    api_keys: frozenset[str] | None = None  # None: any non-empty key is accepted
    training_queue_seconds: float = 1.0  # QUEUING
    training_seconds: float = 3.0  # TRAINING (progress 0 -> 100)
    deploy_seconds: float = 1.0  # SUCCESS with the model DEPLOYING, then SERVING
    generation_queue_seconds: float = 0.3  # TASK_STATUS_QUEUED
    generation_seconds: float = 0.7  # TASK_STATUS_PROCESSING
    ipm_txt2img: int = 20  # images per minute per key; 0 = unlimited
    ipm_img2img: int = 10
    rps_limit: float = 0.0  # requests per second per key on every API endpoint; 0 = off
    upload_url_ttl: int = 120  # X-Amz-Expires of upload URLs
    image_url_ttl: int = 3600  # X-Amz-Expires of output image URLs
    list_default_limit: int = 10  # GET /v3/training page size when pagination.limit is absent
    list_max_limit: int = 100  # the most one page of GET /v3/training holds, whatever pagination.limit asks
    seed_foreign_tasks: int = 0  # "another team's" trainings created in a fresh account
    random_seed: int | None = None  # None: a random seed (ids, faults and outputs of seed -1 vary per run)
    clock_control: bool = False  # allow POST /_sim/clock to move the simulator's time forward
    faults: FaultConfig = field(default_factory=FaultConfig)
    # The account's balance in 1/10,000 USD when it starts (None: what its data folder holds, else DEFAULT_BALANCE)
    balance: int | None = None
    # What a submit costs, in 1/10,000 USD: per training of a type, per image of a type (the simulator's own table)
    prices: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    def with_training_total(self, seconds: float) -> None:
        """Spread a total training duration 1:3:1 over queue, training and deployment."""
        self.training_queue_seconds, self.training_seconds, self.deploy_seconds = (
            seconds * 0.2,
            seconds * 0.6,
            seconds * 0.2,
        )

    def with_generation_total(self, seconds: float) -> None:
        """Spread a total generation duration 3:7 over queue and processing."""
        self.generation_queue_seconds, self.generation_seconds = seconds * 0.3, seconds * 0.7

    @classmethod
    def fast(cls, **overrides: Any) -> SimConfig:
        """Millisecond durations, for tests over a real clock."""
        values: dict[str, Any] = {
            "training_queue_seconds": 0.02,
            "training_seconds": 0.06,
            "deploy_seconds": 0.02,
            "generation_queue_seconds": 0.01,
            "generation_seconds": 0.02,
            "random_seed": 0,
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimConfig:
        """Build from a JSON object with the field names above (`faults` as in FaultConfig.from_json)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"training_total_seconds", "generation_total_seconds"})
        if unknown:
            raise ConfigError(f"config: unknown field(s) {unknown}; expected some of {sorted(names)}")
        values = {k: v for k, v in data.items() if k in names}
        if values.get("api_keys") is not None:
            values["api_keys"] = frozenset(str(k) for k in values["api_keys"])
        faults = values.pop("faults", None)
        config = cls(**values)
        if faults is not None:
            config.faults = FaultConfig.from_json(faults)
        if "training_total_seconds" in data:
            config.with_training_total(float(data["training_total_seconds"]))
        if "generation_total_seconds" in data:
            config.with_generation_total(float(data["generation_total_seconds"]))
        return config

    @classmethod
    def from_file(cls, path: Path) -> SimConfig:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the simulator config: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_json(data)
