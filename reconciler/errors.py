"""The one error family. Pure: no I/O.

    ReconcilerError              anything the user can act on; the CLI prints it and exits 1
    ├── ManifestError            invalid manifests: a list of located Problems (file:line:col)
    ├── StateError               unreadable, corrupt, future-version or foreign state file
    │   └── LockError            another process holds the state lock
    ├── PlanFileError            a saved plan that is unreadable or stale
    ├── ConfigError              missing API key, bad flag combination, invalid reconciler.yaml, a state
    │                            database or outputs remote that cannot be used (named with its setting)
    ├── RemoteError              the outputs remote failed while reading or storing images
    ├── UsageError               a command-line value that names nothing (exit status 2, like click's)
    ├── OverBudget               apply refuses a plan over apply.budget or --max-* (exit status 3)
    └── NovitaError              the API refused or failed (status, reason, message)
        ├── NovitaTransportError a connection or timeout error after retries
        └── AmbiguousSubmitError a create call whose outcome is unknown (sent, no answer)

Anything else that escapes is a bug and shows a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.text import plural


class ReconcilerError(Exception):
    """An error the user can act on. `str(err)` is the whole message; exit status 1."""

    exit_code = 1


@dataclass(frozen=True, order=True)
class Problem:
    """One located problem in a manifest set. Sorted by file, line, column."""

    file: str  # path as shown to the user (relative to the project folder where possible)
    line: int  # 1-based
    col: int  # 1-based
    where: str  # the address and/or field path, e.g. "LoraModel/alice-v1: spec.width"
    message: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.file}:{self.line}:{self.col}: {where}{self.message}"


class ManifestError(ReconcilerError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        count = len(self.problems)
        head = f"{plural(count, 'error')} in the manifests:"
        super().__init__("\n".join([head, *(str(p) for p in self.problems)]))


class StateError(ReconcilerError):
    pass


class LockError(StateError):
    pass


class PlanFileError(ReconcilerError):
    pass


class ConfigError(ReconcilerError):
    pass


class RemoteError(ReconcilerError):
    """The outputs remote failed or refused; the message names the setting its URL came from."""


class UsageError(ReconcilerError):
    """A command-line value that cannot be used; exit status 2, as for any other usage error."""

    exit_code = 2


class OverBudget(ReconcilerError):
    """A plan over `apply.budget` or the --max-* flags: its own exit status, so CI can tell it from a failure."""

    exit_code = 3


class NovitaError(ReconcilerError):
    """Novita answered with an error (or could not be reached). Never carries the API key.

    `message` is Novita's own text (from the error body), when there was one.
    """

    def __init__(self, text: str, *, status: int | None = None, reason: str = "", message: str = "") -> None:
        super().__init__(text)
        self.status = status
        self.reason = reason
        self.message = message


class NovitaTransportError(NovitaError):
    pass


class AmbiguousSubmitError(NovitaError):
    """A create request was sent but no answer came back: the task may or may not exist."""
