"""Command line: parse flags, call one library function per command, render, exit.

Expected errors (ReconcilerError) become one message and exit status 1 in `main`; anything else is a bug
and shows a traceback. Heavy modules are imported inside the commands that need them, so `--help` and
`validate` start fast.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.apply import ApplyResult
    from reconciler.plan import Plan
    from reconciler.progress import Reporter
    from reconciler.workspace import Settings

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INTERRUPTED = 130
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
        type=click.Choice(["resubmit", "hold"]),
        help="A generation submit that got no answer (Novita cannot list generations): resubmit it (may pay "
        "twice) or hold it for a person, for every generation of this run. [default: the Generation's "
        "spec.on_unanswered_submit, else apply.on_unanswered_submit in reconciler.yaml, else resubmit]",
    )(f)


def files_option(f: F) -> F:
    return click.option(
        "-f",
        "--file",
        "files",
        multiple=True,
        type=click.Path(),
        help="A manifest file or folder, searched recursively for *.yaml/*.yml (repeatable). Default: manifests/.",
    )(f)


def state_option(f: F) -> F:
    """--state and --workspace: where the state is, for every command that reads it."""
    f = click.option(
        "--workspace",
        "workspace",
        metavar="NAME",
        help="One of several named states in the same backend [default: RECONCILER_WORKSPACE, state.workspace in "
        "reconciler.yaml, else default]. A file state keeps workspace NAME in state/state.json.d/NAME/state.json.",
    )(f)
    return click.option(
        "--state",
        "state_path",
        metavar="PATH|URL",
        help="The state: a file, or postgresql://user@host:5432/db [default: RECONCILER_STATE_URL, state.url in "
        "reconciler.yaml, else state/state.json (state/sim.json with --sim)].",
    )(f)


def state_options(f: F) -> F:
    """--state, and --lock-timeout for the commands that take the lock."""
    f = click.option(
        "--lock-timeout",
        type=float,
        default=0.0,
        show_default=True,
        metavar="SECONDS",
        help="Wait this long for another reconciler holding the state lock, instead of failing at once.",
    )(f)
    return state_option(f)


def sim_option(f: F) -> F:
    return click.option(
        "--sim",
        is_flag=True,
        help="Run against a local Novita simulator started in this process (its account lives in state/.sim/; "
        "no API key needed).",
    )(f)


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


GLOBAL_FLAGS = ("--debug",)  # accepted before or after the command: `reconciler plan --debug` too


class ReconcilerGroup(click.Group):
    """Turns expected errors into one `Error: ...` line and their exit status, in one place."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.parent is None:  # the top-level group: move a global flag given after the command to the front
            end = args.index("--") if "--" in args else len(args)
            moved = [a for a in args[:end] if a in GLOBAL_FLAGS]
            args = moved + [a for a in args[:end] if a not in GLOBAL_FLAGS] + args[end:]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReconcilerError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=ReconcilerGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="reconciler")
@click.option(
    "-C",
    "--chdir",
    "chdir",
    type=click.Path(exists=True, file_okay=False),
    metavar="DIR",
    help="Run as if started in DIR: manifests, state, reconciler.yaml, outputs and plan files resolve from it.",
)
@click.option(
    "--debug",
    is_flag=True,
    help="Log every HTTP request and response to stderr (the key shows as ***). Also accepted after the command.",
)
def cli(chdir: str | None, debug: bool) -> None:
    """Declarative plan/apply for LoRA training and image generation on Novita.ai.

    Keep Datasets, LoraModels and Generations as YAML manifests in git; `plan` shows what would change,
    `apply` uploads, trains and generates only what is missing, and can be killed at any moment without
    losing or repeating paid work. NOVITA_API_KEY holds the key; NOVITA_API_BASE overrides the base URL.
    """
    if chdir is not None:
        os.chdir(chdir)
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
        for name in ("asyncio", "PIL"):
            logging.getLogger(name).setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------------- offline


@cli.command(short_help="Create a project skeleton that works as it is.")
def init() -> None:
    """Create a project skeleton in the current folder (or -C DIR): a commented example of each kind with
    placeholder photos, the JSON Schema editors complete manifests from, a reconciler.yaml with the defaults
    commented, and a .gitignore. Never overwrites a file: whatever is already there is skipped and named.
    `reconciler validate`, `plan --sim` and `apply --sim` work on the result with no edit."""
    from reconciler.skeleton import EXAMPLE, init_project

    done = init_project(Path.cwd())
    if done.written:
        click.echo(f"Initialized a reconciler project in {Path.cwd()}:")
        for path in done.written:
            click.echo(f"  wrote {path}")
    for what in done.skipped:
        click.echo(f"  skipped {what}")
    if not done.written:
        click.echo("Nothing to write: the project already has every file of the skeleton.")
        return
    click.echo(
        "\nNext: reconciler validate, then reconciler plan --sim and reconciler apply --sim (a local simulator, "
        "no key)."
    )
    if EXAMPLE in done.written:
        click.echo(
            "Put your own photos in manifests/photos/example/, export NOVITA_API_KEY, and plan and apply without --sim."
        )


@cli.command(short_help="Check the manifests offline.")
@files_option
def validate(files: tuple[str, ...]) -> None:
    """Check the manifests offline: every error at once, as file:line:col."""
    from reconciler.manifest import load_manifests
    from reconciler.text import plural

    manifests = load_manifests([Path(f) for f in files] or [Path("manifests")], Path.cwd())
    count = len(manifests.datasets) + len(manifests.models) + len(manifests.generations)
    swept = [m.matrix for m in manifests.models.values() if m.matrix]
    swept += [g.matrix for g in manifests.generations.values() if g.matrix]
    members = f" ({plural(len(set(swept)), 'matrix', 'matrices')}: {len(swept)} members)" if swept else ""
    click.echo(f"{plural(count, 'resource')} valid{members}")


@cli.command(short_help="Print the JSON Schema of a manifest document.")
@click.option("--kind", type=click.Choice(["Dataset", "LoraModel", "Generation"]), help="Only this kind.")
def schema(kind: str | None) -> None:
    """Print the JSON Schema of a manifest document (for editors and the YAML language server)."""
    import json

    from reconciler.manifest import document_schema

    click.echo(json.dumps(document_schema(kind), indent=2))


@cli.command(short_help="List the base models and samplers the manifests accept.")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON.")
def models(as_json: bool) -> None:
    """List the base models a LoraModel can train on (by family: SD 1.5, SDXL) and the samplers a Generation
    accepts: the same tables the validation uses."""
    import json

    from reconciler.manifest.schema import BASE_MODEL_FAMILY, FAMILIES, FAMILY_BASE, SAMPLERS, base_models_of

    if as_json:
        data = {
            "base_models": [{"name": n, "family": BASE_MODEL_FAMILY[n]} for f in FAMILIES for n in base_models_of(f)],
            "samplers": list(SAMPLERS),
        }
        click.echo(json.dumps(data, indent=2))
        return
    lines = ["Base models (LoraModel spec.base_model), by family:"]
    for family in FAMILIES:
        lines += ["", f"  {family}"]
        lines += [
            f"    {name}" + ("   (the original)" if name == FAMILY_BASE[family] else "")
            for name in base_models_of(family)
        ]
    lines += ["", "Samplers (Generation spec.sampler_name, default Euler a):", ""]
    lines += [f"    {name}" for name in SAMPLERS]
    click.echo("\n".join(lines))


# ---------------------------------------------------------------------------------------------- plan


def _settings(
    files: tuple[str, ...],
    state_path: str | None,
    sim: bool,
    lock_timeout: float = 0.0,
    targets: tuple[str, ...] = (),
    replace: tuple[str, ...] = (),
    workspace: str | None = None,
    on_unanswered_submit: str | None = None,
) -> Settings:
    from reconciler.workspace import Settings

    return Settings.make(
        files,
        state_path,
        sim,
        lock_timeout,
        targets,
        replace,
        workspace,
        on_unanswered_submit,  # type: ignore[arg-type]  # click.Choice checked it
    )


def _given(param: str) -> bool:
    """Whether the current command's `param` was given on the command line (not left at its default)."""
    from click.core import ParameterSource

    return click.get_current_context().get_parameter_source(param) == ParameterSource.COMMANDLINE


def _colour() -> bool:
    return isatty(sys.stdout) and not os.environ.get("NO_COLOR") and not dumb_terminal()


@cli.command(short_help="Show what apply would change.")
@files_option
@state_option
@sim_option
@target_option
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Save the plan to FILE for `apply FILE`.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (same as --format json).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="text for people, json for tools, markdown for a pull-request comment.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there are no changes, 2 when there are (or something is held for a decision), 1 on error.",
)
@click.option(
    "--refresh/--no-refresh",
    default=True,
    show_default=True,
    help="Read the account's trainings first; --no-refresh plans from the state file alone, offline.",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Also list each history and forgotten-generation file that `apply --prune` would delete.",
)
@unanswered_option
def plan(
    files: tuple[str, ...],
    state_path: str | None,
    workspace: str | None,
    sim: bool,
    targets: tuple[str, ...],
    replace: tuple[str, ...],
    out: str | None,
    as_json: bool,
    fmt: str,
    detailed_exitcode: bool,
    refresh: bool,
    prune: bool,
    on_unanswered_submit: str | None,
) -> None:
    """Show what apply would upload, train, generate, adopt and forget.

    Refreshes the account's training list and the tasks in flight, then diffs the manifests against the
    state and the account. Changes nothing.
    """
    from reconciler.planfile import save_plan
    from reconciler.render import render_json, render_markdown, render_text
    from reconciler.workflow import plan_command, plan_origin

    settings = _settings(
        files,
        state_path,
        sim,
        targets=targets,
        replace=replace,
        workspace=workspace,
        on_unanswered_submit=on_unanswered_submit,
    )
    result = plan_command(settings, refresh=refresh, prune=prune)
    fmt = "json" if as_json else fmt
    if fmt == "json":
        click.echo(render_json(result), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(result), nl=False)
    else:
        click.echo(render_text(result, colour=_colour(), legend=isatty(sys.stdout)), nl=False)
    if out:
        origin = plan_origin(settings)
        save_plan(result, Path(out), origin)
        if fmt == "text":
            click.echo(f"\nSaved the plan to {out}. Apply exactly this plan with: {origin.apply_command(out)}")
    if detailed_exitcode and (not result.empty or result.warnings):
        sys.exit(2)


# ---------------------------------------------------------------------------------------------- apply


@cli.command(short_help="Upload, train and generate what is missing.")
@click.argument("planfile", required=False, type=click.Path(dir_okay=False))
@files_option
@state_options
@sim_option
@target_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking (required when stdin is not a terminal).")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    help="At most this many uploads, submissions and downloads at once. "
    "[default: apply.parallelism in reconciler.yaml, else 8]",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Delete the history of replaced generations and the images of forgotten ones (only files whose content "
    "is unchanged); `plan --prune` lists them.",
)
@click.option(
    "--gallery/--no-gallery",
    default=None,
    help="Refresh the gallery after writing images. [default: outputs.gallery in reconciler.yaml, else on]",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per line per event, for CI tools.")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="--no-wait submits what can be submitted now, records it and returns; a later apply collects it.",
)
@click.option(
    "--ipm-txt2img",
    type=click.IntRange(0),
    help="Submit at most this many txt2img images per minute (0 = no throttle). "
    "[default: apply.ipm.txt2img in reconciler.yaml, else 20, Novita's default limit]",
)
@click.option(
    "--ipm-img2img",
    type=click.IntRange(0),
    help="Submit at most this many img2img images per minute (0 = no throttle). "
    "[default: apply.ipm.img2img in reconciler.yaml, else 10, Novita's default limit]",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.01, 600),
    metavar="SECONDS",
    help="Check running tasks at this fixed interval. Default: by Novita's estimate of the time left (half of it, "
    "1 to 30 s for trainings, 0.25 to 2 s for generations; shorter with --sim), backing off while it gives none.",
)
@click.option(
    "--timeout",
    type=Duration(),
    metavar="DURATION",
    help="Stop waiting (and submitting) this long after applying starts, e.g. 30m: the state is saved, what "
    "still runs on Novita is listed, exit status 124; the next apply resumes.",
)
@click.option(
    "--stall-timeout",
    type=Duration(),
    metavar="DURATION",
    help="Stop waiting on a task whose status shows no progress for this long, and report it (it stays "
    "recorded; the next apply checks it again). Default: 1h for trainings, 10m for generations.",
)
@unanswered_option
def apply(
    planfile: str | None,
    files: tuple[str, ...],
    state_path: str | None,
    workspace: str | None,
    lock_timeout: float,
    sim: bool,
    targets: tuple[str, ...],
    replace: tuple[str, ...],
    auto_approve: bool,
    parallelism: int | None,
    prune: bool,
    gallery: bool | None,
    as_json: bool,
    wait: bool,
    ipm_txt2img: int | None,
    ipm_img2img: int | None,
    poll_interval: float | None,
    timeout: float | None,
    stall_timeout: float | None,
    on_unanswered_submit: str | None,
) -> None:
    """Upload, train and generate only what is missing; or apply a saved PLANFILE exactly.

    Without PLANFILE it plans, shows the plan and asks for approval. The state is saved after every step,
    so an apply killed at any moment resumes where it stopped without paying twice. Ctrl-C stops
    submitting and waiting at once, saves the state and says what is still running (exit 130).
    Exit 0 when everything that could be done was (with --no-wait: submitted), 1 when anything failed,
    124 when --timeout passed or a task stopped making progress.
    """
    from reconciler.apply import GENERATION_STALL, TRAINING_STALL, ApplyOptions
    from reconciler.apply.polling import GENERATION, TRAINING, PollPolicy
    from reconciler.workflow import apply_command
    from reconciler.workspace import sim_poll_policies

    if planfile and (targets or replace or prune):
        raise click.UsageError(
            "--target, --replace and --prune cannot be combined with a saved plan: pass them to `plan --out` instead"
        )
    if not auto_approve and not planfile and not isatty(sys.stdin):
        raise click.UsageError(
            "standard input is not a terminal, so apply cannot ask for approval: pass --auto-approve"
        )
    if planfile:
        from reconciler.workflow import saved_plan_settings

        settings = saved_plan_settings(
            Path(planfile),
            sim=sim if _given("sim") else None,
            state=state_path,
            files=files,
            lock_timeout=lock_timeout,
            workspace=workspace,
        )
        settings.on_unanswered_submit = on_unanswered_submit  # type: ignore[assignment]  # click.Choice checked it
    else:
        settings = _settings(files, state_path, sim, lock_timeout, targets, replace, workspace, on_unanswered_submit)
    train_poll, gen_poll = sim_poll_policies() if settings.sim else (TRAINING, GENERATION)
    if poll_interval is not None:
        train_poll = gen_poll = PollPolicy.every(poll_interval)
    project = settings.config.apply
    options = ApplyOptions(
        parallelism=parallelism if parallelism is not None else project.parallelism,
        wait=wait,
        prune=prune,
        ipm={
            "txt2img": ipm_txt2img if ipm_txt2img is not None else project.ipm.txt2img,
            "img2img": ipm_img2img if ipm_img2img is not None else project.ipm.img2img,
        },
        training_poll=train_poll,
        generation_poll=gen_poll,
        timeout=timeout,
        training_stall=stall_timeout or TRAINING_STALL,
        generation_stall=stall_timeout or GENERATION_STALL,
        policy=settings.policy,
    )
    outcome = apply_command(
        settings,
        options,
        _ApplyConsole(as_json, auto_approve),
        planfile=Path(planfile) if planfile else None,
        gallery=settings.config.outputs.gallery if gallery is None else gallery,
    )
    if outcome.cancelled:
        click.echo("Apply cancelled; nothing changed.")
        return
    if outcome.synced is not None:
        click.echo(outcome.synced.describe(), file=sys.stderr if as_json else sys.stdout)
    if outcome.result is None:
        if planfile and as_json:  # without --json the plan shown already said so
            click.echo("No changes. Novita matches the manifests.", file=sys.stderr)
        _refuse_held(outcome.plan)
        return
    _finish_apply(outcome.result)
    _refuse_held(outcome.plan)


class _ApplyConsole:
    """The apply workflow's UI on a terminal or in CI: plan text, the approval prompt, progress."""

    def __init__(self, as_json: bool, auto_approve: bool) -> None:
        self.as_json = as_json
        self.auto_approve = auto_approve
        self.out = sys.stderr if as_json else sys.stdout
        self.addresses: list[str] = []

    def notice(self, text: str) -> None:
        click.echo(text, err=True)

    def show_plan(self, plan: Plan) -> None:
        from reconciler.render import render_text

        self.addresses = [c.address for c in plan.changes]  # the live progress line counts them
        if not self.as_json:
            click.echo(render_text(plan, colour=_colour(), legend=isatty(self.out)), nl=False, file=self.out)

    def confirm(self, plan: Plan) -> bool:
        if self.auto_approve:
            return True
        click.echo(file=self.out)
        return click.confirm("Apply these changes?", default=False)

    def reporter(self) -> Reporter:
        from reconciler.progress import JsonReporter, LineReporter, LiveReporter

        if self.as_json:
            return JsonReporter()
        if isatty(sys.stdout) and not dumb_terminal():
            return LiveReporter(self.addresses)
        return LineReporter()

    def interrupted(self) -> None:
        click.echo("\nInterrupted: no new submissions; saving the state…", err=True)


def _refuse_held(the_plan: Plan) -> None:
    """Held resources need a person's decision: the run does not count as converged (exit 1)."""
    if the_plan.warnings:
        from reconciler.text import noun, plural

        n = len(the_plan.warnings)
        raise ReconcilerError(
            f"{plural(n, 'resource')} held for a decision (see the {noun(n, 'warning')} "
            "above); Novita does not match the manifests until then."
        )


def _finish_apply(result: ApplyResult) -> None:
    from reconciler.text import duration, plural

    err = sys.stderr
    if result.failed or result.skipped or result.stalled:
        click.echo("", file=err)
        for addr, message in sorted(result.failed.items()):
            click.echo(f"Error: {addr}: {message}", file=err)
        for addr, message in sorted(result.skipped.items()):
            click.echo(f"Skipped: {addr}: {message}", file=err)
        for addr, message in sorted(result.stalled.items()):
            click.echo(f"Stalled: {addr}: {message}", file=err)
    for addr, message in sorted(result.deferred.items()):
        click.echo(f"Left for the next apply: {addr}: {message}", file=err)
    if result.timed_out:
        click.echo(
            f"Stopped at the --timeout deadline ({duration(result.elapsed)}): the state is saved; "
            "the next apply resumes.",
            file=err,
        )
    if result.still_running:
        click.echo("Still running on Novita (the next apply collects them, nothing is resubmitted):", file=err)
        for line in result.still_running:
            click.echo(f"  {line}", file=err)
    running = {line.split(" (", 1)[0] for line in result.still_running}
    not_done = sorted(a for a in result.stopped if a not in running)
    if not_done:
        shown = ", ".join(not_done[:5]) + (f", … and {len(not_done) - 5} more" if len(not_done) > 5 else "")
        click.echo(f"Not done yet, {plural(len(not_done), 'resource')} (the next apply does them): {shown}", file=err)
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if result.failed or result.skipped:
        sys.exit(1)
    if result.timed_out or result.stalled:
        sys.exit(EXIT_TIMED_OUT)


# ---------------------------------------------------------------------------------------------- read-only views


@cli.command(short_help="Show a saved plan, or the state.")
@click.argument("planfile", required=False, type=click.Path(dir_okay=False))
@state_option
@sim_option
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON (the plan as `plan --json` does).")
def show(planfile: str | None, state_path: str | None, workspace: str | None, sim: bool, as_json: bool) -> None:
    """Show a saved PLANFILE in the same text as `plan` (with where it was made), or, without one, every
    resource in the state and what it owns. Reads only; needs no key."""
    import json

    if planfile is not None:
        from reconciler.planfile import load_plan
        from reconciler.render import plan_json, render_text

        saved = load_plan(Path(planfile))
        if as_json:
            from dataclasses import asdict

            origin = None if saved.origin is None else asdict(saved.origin)
            click.echo(json.dumps({**plan_json(saved.plan), "origin": origin}, indent=2, ensure_ascii=False))
            return
        made = f", made against {saved.origin.describe()}" if saved.origin else ""
        click.echo(f"Saved plan {planfile}{made}.\n")
        click.echo(render_text(saved.plan, colour=_colour(), legend=isatty(sys.stdout)), nl=False)
        if saved.origin is not None and not saved.plan.empty:
            click.echo(f"\nApply exactly this plan with: {saved.origin.apply_command(planfile)}")
        return
    from reconciler.readout import state_text
    from reconciler.state_ops import pull_state
    from reconciler.urls import redact_url_password

    settings = _settings((), state_path, sim, workspace=workspace)
    data = pull_state(settings)
    if as_json:
        click.echo(data.model_dump_json(indent=2))
        return
    if not data.resources:
        _empty_state_note(settings)
        return
    where = redact_url_password(settings.state_url) if settings.state_url else str(settings.state_path)
    click.echo(state_text(data, where), nl=False)


@cli.command(short_help="Print what apply produced: trained model names, image paths.")
@click.argument("name", required=False)
@state_option
@sim_option
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
def output(name: str | None, state_path: str | None, workspace: str | None, sim: bool, as_json: bool) -> None:
    """Print what apply produced, for scripts: each LoraModel's trained model file name (to use in other
    tools) and each Generation's image paths with their sha256. NAME (alice-v1 or LoraModel/alice-v1)
    prints only that one: the model file name alone, or the image paths one per line. Reads the state only."""
    from reconciler.readout import find_output, one_output_text, output_json, output_text, output_values
    from reconciler.state_ops import pull_state

    settings = _settings((), state_path, sim, workspace=workspace)
    values = output_values(pull_state(settings))
    if name is not None:
        addr, value = find_output(values, name)
        click.echo(output_json(value) if as_json else one_output_text(addr, value), nl=False)
        return
    if not values and not as_json:
        _empty_state_note(settings)
    click.echo(output_json(values) if as_json else output_text(values), nl=False)


@cli.command(short_help="Print the dependency graph (dot or mermaid).")
@files_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dot", "mermaid"]),
    default="dot",
    show_default=True,
    help="dot for Graphviz (`| dot -Tsvg > graph.svg`), mermaid for a pull-request comment.",
)
def graph(files: tuple[str, ...], fmt: str) -> None:
    """Print how the manifests depend on each other: each Dataset → the LoraModels trained on it → the
    Generations that use them. Offline; reads the manifests only."""
    from reconciler.graph import dependency_graph, render_dot, render_mermaid
    from reconciler.manifest import load_manifests

    manifests = load_manifests([Path(f) for f in files] or [Path("manifests")], Path.cwd())
    found = dependency_graph(manifests)
    click.echo(render_dot(found) if fmt == "dot" else render_mermaid(found), nl=False)


# ---------------------------------------------------------------------------------------------- gallery


@cli.command(short_help="Write a static HTML gallery of the outputs.")
@state_option
@sim_option
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False),
    help="The folder to write it to. Default: gallery/ in the project folder (where apply refreshes it).",
)
@click.option(
    "--serve", is_flag=True, help="Then serve the project folder on 127.0.0.1 and print the URL (Ctrl-C stops)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="The port for --serve (0: any free one).",
)
def gallery(state_path: str | None, workspace: str | None, sim: bool, out: str | None, serve: bool, port: int) -> None:
    """Write a static HTML gallery of the images the state records: models with their training images,
    each generation with its parameters and history, each matrix as a grid.

    It opens from disk (gallery/index.html) with no server and no network; thumbnails are made once and
    kept by content hash. `apply` refreshes it after writing images (unless --no-gallery, or
    `outputs.gallery: false` in reconciler.yaml).
    """
    from reconciler.gallery import serve_gallery
    from reconciler.workflow import gallery_command, gallery_folder

    settings = _settings((), state_path, sim, workspace=workspace)
    folder = Path(out).resolve() if out else gallery_folder(settings)
    result = gallery_command(settings, folder)
    click.echo(result.summary())
    if serve:
        if not folder.is_relative_to(settings.root):
            raise click.UsageError("--serve needs the gallery inside the project folder (its pages link to the images)")
        serve_gallery(settings.root, folder, port, lambda url: click.echo(f"Serving on {url} (Ctrl-C stops)."))


# ---------------------------------------------------------------------------------------------- state


@cli.command(short_help="Record remote progress in the state; change nothing remote.")
@files_option
@state_options
@sim_option
def refresh(
    files: tuple[str, ...], state_path: str | None, workspace: str | None, lock_timeout: float, sim: bool
) -> None:
    """Update the state from the account without changing anything remote.

    Records trainings that finished or failed since the last apply. Downloads nothing and submits nothing.
    """
    from reconciler.text import plural
    from reconciler.workflow import refresh_command

    refreshed = refresh_command(_settings(files, state_path, sim, lock_timeout, workspace=workspace))
    remote = refreshed.remote
    click.echo(f"Refreshed: {plural(remote.pages, 'page')} of trainings ({plural(len(remote.trainings), 'task')}).")
    for line in refreshed.changed:
        click.echo(f"  {line}")
    if not refreshed.changed:
        click.echo("The state already matches the account.")


@cli.group()
def state() -> None:
    """Inspect and edit the state (list, show, rm, pull, push, migrate, history)."""


@state.command("list", short_help="List the resources in the state, with their status.")
@state_option
@sim_option
def state_list(state_path: str | None, workspace: str | None, sim: bool) -> None:
    """List the resources in the state, with their status."""
    from reconciler.state import DatasetEntry, ForgottenEntry, GenerationEntry
    from reconciler.state_ops import pull_state
    from reconciler.text import plural

    settings = _settings((), state_path, sim, workspace=workspace)
    data = pull_state(settings)
    if not data.resources:
        _empty_state_note(settings)
    for addr, entry in sorted(data.resources.items()):
        if isinstance(entry, GenerationEntry):
            detail = f"{plural(len(entry.files), 'image')} in {entry.output}"
            if entry.history:
                detail += f", {len(entry.history)} earlier in its history"
        elif isinstance(entry, DatasetEntry):
            detail = plural(len(entry.images), "image")
        elif isinstance(entry, ForgottenEntry):
            detail = f"{plural(len(entry.files), 'file')} on disk until `apply --prune`"
        else:
            detail = entry.model_name or entry.task_name or ""
        click.echo(f"{addr}\t{entry.status}\t{detail}".rstrip())


def _empty_state_note(settings: Settings) -> None:
    """An empty listing says which state was read, and points at the other one when that one is not empty."""
    from reconciler.state import read_state
    from reconciler.text import plural
    from reconciler.urls import redact_url_password
    from reconciler.workspace import DEFAULT_STATE, SIM_STATE

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
        count = len(read_state(other).resources)
        if count:
            whose = "account" if settings.sim else "simulator"
            click.echo(
                f"The {whose}'s state {other} has {plural(count, 'resource')}: reconciler state list{flag}", err=True
            )


@state.command("show", short_help="Show everything the state holds for one resource.")
@click.argument("address")
@state_option
@sim_option
def state_show(address: str, state_path: str | None, workspace: str | None, sim: bool) -> None:
    """Show everything the state holds for ADDRESS (e.g. LoraModel/alice-v1)."""
    import json

    from reconciler.state_ops import pull_state

    settings = _settings((), state_path, sim, workspace=workspace)
    entry = pull_state(settings).entry(address)
    if entry is None:
        raise ReconcilerError(f"{address} is not in the state ({settings.backend().display})")
    click.echo(json.dumps(entry.model_dump(mode="json", exclude_defaults=True), indent=2, ensure_ascii=False))


@state.command("rm", short_help="Forget resources in the state only (Novita and files untouched).")
@click.argument("addresses", nargs=-1, required=True)
@state_options
@sim_option
def state_rm(
    addresses: tuple[str, ...], state_path: str | None, workspace: str | None, lock_timeout: float, sim: bool
) -> None:
    """Forget ADDRESSES in the state without touching Novita or any file (the next plan may adopt them)."""
    from reconciler.workflow import remove_from_state

    remove_from_state(_settings((), state_path, sim, lock_timeout, workspace=workspace), addresses)
    for addr in addresses:
        click.echo(f"Removed {addr} from the state.")


@state.command("pull")
@state_option
@sim_option
@click.option("--serial", type=click.IntRange(1), metavar="N", help="A kept earlier version (see `state history`).")
def state_pull(state_path: str | None, workspace: str | None, sim: bool, serial: int | None) -> None:
    """Print the state as JSON (the current version, or --serial N), e.g. to keep a copy or to inspect it."""
    from reconciler.state_ops import pull_state

    data = pull_state(_settings((), state_path, sim, workspace=workspace), serial)
    click.echo(data.model_dump_json(indent=1))


@state.command("push")
@click.argument("source", metavar="FILE")
@state_options
@sim_option
@click.option("--force", is_flag=True, help="Replace the state even if FILE has another lineage or a lower serial.")
def state_push(
    source: str, state_path: str | None, workspace: str | None, lock_timeout: float, sim: bool, force: bool
) -> None:
    """Replace the state with FILE (a state JSON document; - reads standard input).

    Refused when FILE is another state (lineage) or older (a lower serial, or the same serial with other
    content) than the one it would replace, unless --force.
    """
    from reconciler.state_ops import push_state

    pushed = push_state(_settings((), state_path, sim, lock_timeout, workspace=workspace), source, force=force)
    if pushed.unchanged:
        click.echo(f"{pushed.target} already holds exactly this state (serial {pushed.serial}); nothing pushed.")
    else:
        click.echo(f"Pushed {source} to {pushed.target} as serial {pushed.serial}.")


@state.command("migrate")
@click.option("--to", "to", required=True, metavar="PATH|URL", help="Where to copy the state: a file or a URL.")
@click.option("--to-workspace", metavar="NAME", help="The workspace there [default: the same name].")
@state_options
@sim_option
@click.option("--force", is_flag=True, help="Replace a state the destination already holds.")
def state_migrate(
    to: str,
    to_workspace: str | None,
    state_path: str | None,
    workspace: str | None,
    lock_timeout: float,
    sim: bool,
    force: bool,
) -> None:
    """Copy the state to another backend (a file to PostgreSQL, or back) and check nothing was lost.

    Both states are locked while copying; the copy is read back and compared with the source. The source
    is left as it was: point state.url (reconciler.yaml) or RECONCILER_STATE_URL at the new place afterwards.
    """
    from reconciler.state_ops import describe_migration, migrate_state

    settings = _settings((), state_path, sim, lock_timeout, workspace=workspace)
    migrated = migrate_state(settings, to, to_workspace, force=force)
    click.echo(describe_migration(migrated))


@state.command("history")
@state_option
@sim_option
def state_history(state_path: str | None, workspace: str | None, sim: bool) -> None:
    """List the kept versions of the state, newest first (read one with `state pull --serial N`)."""
    from reconciler.state_ops import state_history as history

    where, versions = history(_settings((), state_path, sim, workspace=workspace))
    if not versions:
        click.echo(f"No versions of the state in {where}.")
        return
    for v in versions:
        click.echo(f"{v.serial}\t{v.saved_at}\t{v.command}".rstrip())


@cli.command("pull", short_help="Write the generated images from the outputs remote into outputs/.")
@state_option
def pull(state_path: str | None, workspace: str | None) -> None:
    """Write every image the state records into its output folder from the outputs remote (hash-checked).

    Free: nothing is generated and the state is not changed. Images already here and intact are kept. Needs
    outputs.remote in reconciler.yaml (or RECONCILER_OUTPUTS_REMOTE). Exits 1 when the remote lacks some.
    """
    from reconciler.text import plural
    from reconciler.workflow import pull_command

    pulled = pull_command(_settings((), state_path, False, workspace=workspace))
    for address, n in sorted(pulled.fetched.items()):
        click.echo(f"{address}: fetched {plural(n, 'image')}")
    total = sum(pulled.fetched.values())
    click.echo(
        f"Pulled {plural(total, 'image')} from {pulled.remote} ({pulled.present} already here)."
        if total or not pulled.missing
        else f"Pulled nothing from {pulled.remote}."
    )
    if pulled.missing:
        raise ReconcilerError(
            f"the outputs remote lacks the images of {', '.join(pulled.missing)}; "
            "`reconciler plan` shows what apply would do about them"
        )


@cli.command("import", short_help="Adopt an existing Novita training as a LoraModel.")
@click.argument("address")
@click.argument("task_id")
@files_option
@state_options
@sim_option
def import_(
    address: str,
    task_id: str,
    files: tuple[str, ...],
    state_path: str | None,
    workspace: str | None,
    lock_timeout: float,
    sim: bool,
) -> None:
    """Adopt an existing Novita training TASK_ID as LoraModel ADDRESS (e.g. LoraModel/alice-v1 d660cdd0-…).

    The training is recorded as the model's current definition: the next plan will not retrain it unless
    the manifest changes.
    """
    from reconciler.workflow import import_training

    imported = import_training(_settings(files, state_path, sim, lock_timeout, workspace=workspace), address, task_id)
    entry = imported.entry
    click.echo(f"Imported {entry.task_name} ({entry.task_id}, {imported.task_status}) as {address}.")


@cli.command("force-unlock", short_help="Remove a stale state lock.")
@state_option
@sim_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def force_unlock(state_path: str | None, workspace: str | None, sim: bool, yes: bool) -> None:
    """Remove a stale state lock left by a process that is gone (e.g. on another machine).

    On PostgreSQL the lock is the server's and goes with its holder's connection, so only a stale record of
    the holder can be left; a lock held by a live connection is refused with what to do instead.
    """
    from reconciler.state import describe_holder
    from reconciler.state_ops import force_unlock_state, lock_holder

    settings = _settings((), state_path, sim, workspace=workspace)
    info = lock_holder(settings)
    if info is None:  # no lock file, or one released cleanly (emptied)
        click.echo("The state is not locked.")
        return
    if not yes and not click.confirm(f"Remove the lock held by {describe_holder(info or {})}?", default=False):
        click.echo("Lock kept.")
        return
    force_unlock_state(settings)
    click.echo(f"Lock removed (it was held by {describe_holder(info or {})}).")


# ---------------------------------------------------------------------------------------------- main


def _register_sim() -> None:
    from reconciler.sim.cli import sim

    cli.add_command(sim)


_register_sim()


def main() -> None:
    """Entry point (`reconciler`, `python -m reconciler`)."""
    cli()
