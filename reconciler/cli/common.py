"""What the commands share: their common options, settings from flags, terminal facts, exit statuses."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.plan.policy import CHOICES

if TYPE_CHECKING:
    from reconciler.commands.workspace import Flags, Settings

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")
EXIT_INTERRUPTED = 130
EXIT_OVER_BUDGET = 3  # plan (and apply) over apply.budget or --max-*
EXIT_TIMED_OUT = 124  # apply --timeout passed, or a task stopped making progress (the status GNU timeout uses)


def isatty(stream: Any) -> bool:
    """A terminal? False for a closed or missing stream (`<&-`, `>&-`) instead of an AttributeError."""
    try:
        return stream is not None and bool(stream.isatty())
    except (ValueError, OSError):  # a closed file
        return False


def dumb_terminal() -> bool:
    return os.environ.get("TERM", "") == "dumb"


class Duration(click.ParamType[float]):
    """`90s`, `30m`, `1h30m` (a bare number is seconds) as seconds > 0."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            seconds = float(value)
        else:
            from reconciler.text import parse_duration

            try:
                seconds = parse_duration(str(value))
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} is not a duration above 0", param, ctx)
        return seconds


def unanswered_option(f: F) -> F:
    return click.option(
        "--on-unanswered-submit",
        "on_unanswered_submit",
        type=click.Choice(CHOICES),
        help="A generation submit that got no answer (Novita cannot list generations): resubmit it (may pay "
        "twice) or hold it for a person, for every generation of this run. [default: the Generation's "
        "spec.on_unanswered_submit, else apply.on_unanswered_submit in reconciler.yaml, else resubmit]",
    )(f)


files_option = click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(),
    help="A manifest file or folder, searched recursively for *.yaml/*.yml (repeatable). Default: manifests/.",
)
_STATE = click.option(
    "--state",
    "state",
    metavar="PATH|URL",
    help="The state: a file, or postgresql://user@host:5432/db [default: RECONCILER_STATE_URL, state.url in "
    "reconciler.yaml, else state/state.json (state/sim.json with --sim)].",
)
_WORKSPACE = click.option(
    "--workspace",
    "workspace",
    metavar="NAME",
    help="One of several named states in the same backend [default: RECONCILER_WORKSPACE, state.workspace in "
    "reconciler.yaml, else default]. A file state keeps workspace NAME in state/state.json.d/NAME/state.json.",
)
_LOCK_TIMEOUT = click.option(
    "--lock-timeout",
    type=float,
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Wait this long for another reconciler holding the state lock, instead of failing at once.",
)
_SIM = click.option(
    "--sim",
    is_flag=True,
    help="Run against a local Novita simulator started in this process (its account lives in state/.sim/; "
    "no API key needed).",
)


def on_unless_no(name: str, help: str) -> Callable[[F], F]:
    """`--NAME/--no-NAME`: a switch that is on unless --no-NAME is given (--help shows the default)."""
    return click.option(f"--{name}/--no-{name}", default=True, show_default=True, help=help)


def where_options(*, files: bool = False, lock: bool = False, sim: bool = True) -> Callable[[F], F]:
    """Where a command works, in this order: -f (with `files`), --state and --workspace (every command that reads
    the state), --lock-timeout (with `lock`: the commands that take the state's lock), --sim (unless not `sim`)."""
    chosen = [files_option] if files else []
    chosen += [_STATE, _WORKSPACE, *([_LOCK_TIMEOUT] if lock else []), *([_SIM] if sim else [])]

    def add(command: F) -> F:
        for option in reversed(chosen):  # click lists a command's options in the reverse order they are added
            command = option(command)
        return command

    return add


def target_option(f: F) -> F:
    f = click.option(
        "--replace",
        "replace",
        multiple=True,
        metavar="ADDR",
        help="Train or generate this resource again even though nothing changed (repeatable).",
    )(f)
    return click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="ADDR",
        help="Limit to this resource and what it depends on, e.g. LoraModel/alice-v1 (repeatable).",
    )(f)


# the options Settings.make resolves, by the name of their Flags field (--on-unanswered-submit: click.Choice checked it)
_FLAGS = ("files", "state", "workspace", "sim", "lock_timeout", "targets", "replace", "on_unanswered_submit")
_BUDGET = ("max_trainings", "max_images", "max_cost")


def gathers_flags(command: Callable[..., R]) -> Callable[..., R]:
    """Put right above a command's function, under its options: the options that say where and what to work on
    (those the command has, see `_FLAGS`, and the budget) reach it as one `flags: Flags` instead of one parameter
    each."""

    @functools.wraps(command)
    def gathered(**given: Any) -> R:
        from reconciler.commands.workspace import Flags
        from reconciler.load.config import BudgetConfig

        flags = {name: given.pop(name) for name in _FLAGS if name in given}
        if all(name in given for name in _BUDGET):
            flags["budget"] = BudgetConfig(**{name: given.pop(name) for name in _BUDGET})
        return command(flags=Flags(**flags), **given)

    return gathered


def make_settings(flags: Flags) -> Settings:
    from reconciler.commands.workspace import Settings

    return Settings.make(flags)


def colour() -> bool:
    return isatty(sys.stdout) and not os.environ.get("NO_COLOR") and not dumb_terminal()


def empty_state_note(settings: Settings) -> None:
    """An empty listing says which state was read, and points at the other one when that one is not empty."""
    from reconciler.state.backend import DEFAULT_STATE, SIM_STATE
    from reconciler.state.file import read_state
    from reconciler.text import plural
    from reconciler.urls import redact_url_password

    where = settings.state_path
    if settings.state_url is not None:
        said = f"is empty: {redact_url_password(settings.state_url)} (workspace {settings.workspace}) has no resources"
    elif where.exists():
        said = f"is empty: {where} has no resources"
    else:
        said = f"is empty: there is no {where} yet"
    click.echo(f"The {'simulator' if settings.sim else 'account'}'s state {said}.", err=True)
    other, flag = (DEFAULT_STATE, "") if settings.sim else (SIM_STATE, " --sim")
    if other.exists() and where in (DEFAULT_STATE, SIM_STATE):
        count = len(read_state(other).listed)
        if count:
            whose = "account" if settings.sim else "simulator"
            click.echo(
                f"The {whose}'s state {other} has {plural(count, 'resource')}: reconciler state list{flag}", err=True
            )


def budget_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--max-trainings, --max-images, --max-cost: this run's budget (over apply.budget in reconciler.yaml)."""
    over = (
        f"Over it, plan exits {EXIT_OVER_BUDGET} and apply refuses before paying anything. "
        "[default: apply.budget.{key} in reconciler.yaml]"
    )
    for flag, kind, metavar, text in reversed(
        (
            ("--max-trainings", click.IntRange(0), "N", "Budget: at most N trainings in one apply."),
            ("--max-images", click.IntRange(0), "N", "Budget: at most N images in one apply."),
            ("--max-cost", click.FloatRange(0), "USD", "Budget: at most this many USD in one apply (needs prices:)."),
        )
    ):
        key = flag[2:].replace("-", "_")
        command = click.option(flag, type=kind, metavar=metavar, help=f"{text} {over.format(key=key)}")(command)
    return command
