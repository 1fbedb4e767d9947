"""plan and apply: what would change, and making it so."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OVER_BUDGET,
    EXIT_TIMED_OUT,
    Duration,
    budget_options,
    colour,
    dumb_terminal,
    gathers_flags,
    isatty,
    make_settings,
    on_unless_no,
    target_option,
    unanswered_option,
    where_options,
)
from reconciler.cli.group import cli
from reconciler.errors import ReconcilerError
from reconciler.text import plural

if TYPE_CHECKING:
    from reconciler.apply import ApplyOptions, ApplyResult
    from reconciler.commands.outputs_sync import Synced
    from reconciler.commands.plan_apply import ApplyOutcome
    from reconciler.commands.workspace import Flags, Settings
    from reconciler.plan.changes import Plan
    from reconciler.present.progress import Reporter


@cli.command(short_help="Show what apply would change.")
@where_options(files=True)
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
@on_unless_no("refresh", "Read the account's trainings first; --no-refresh plans from the state file alone, offline.")
@click.option(
    "--prune",
    is_flag=True,
    help="Also list each history and forgotten-generation file that `apply --prune` would delete.",
)
@unanswered_option
@budget_options
@gathers_flags
def plan(
    flags: Flags,
    out: str | None,
    as_json: bool,
    fmt: str,
    detailed_exitcode: bool,
    refresh: bool,
    prune: bool,
) -> None:
    """Show what apply would upload, train, generate, adopt and forget.

    Refreshes the account's training list and the tasks in flight, then diffs the manifests against the
    state and the account. Changes nothing.
    """
    from reconciler.commands.plan_apply import plan_command, plan_origin
    from reconciler.plan.planfile import save_plan
    from reconciler.present.render import plan_json, render_json, render_markdown, render_text

    settings = make_settings(flags)
    planned = plan_command(settings, refresh=refresh, prune=prune)
    result = planned.plan
    fmt = "json" if as_json else fmt
    if fmt == "json":
        click.echo(render_json(result), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(result), nl=False)
    else:
        click.echo(render_text(result, colour=colour(), legend=isatty(sys.stdout)), nl=False)
    if out:
        origin = plan_origin(settings, planned.scope)
        save_plan(result, Path(out), origin, plan_json(result))
        if fmt == "text":
            click.echo(f"\nSaved the plan to {out}. Apply exactly this plan with: {origin.apply_command(out)}")
    if result.estimate is not None and result.estimate.overruns:
        sys.exit(EXIT_OVER_BUDGET)
    if detailed_exitcode and (not result.empty or result.warnings):
        sys.exit(2)


@cli.command(short_help="Upload, train and generate what is missing.")
@click.argument("planfile", required=False, type=click.Path(dir_okay=False))
@where_options(files=True, lock=True)
@target_option
@click.option("--auto-approve", is_flag=True, help="Apply without asking (required when stdin is not a terminal).")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    help="At most this many uploads, submissions and downloads at once. "
    "[default: apply.parallelism in reconciler.yaml, else 16]",
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
@on_unless_no("wait", "--no-wait submits what can be submitted now, records it and returns; a later apply collects it.")
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
@budget_options
@gathers_flags
def apply(
    planfile: str | None,
    flags: Flags,
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
) -> None:
    """Upload, train and generate only what is missing; or apply a saved PLANFILE exactly.

    Without PLANFILE it plans, shows the plan and asks for approval. The state is saved after every step,
    so an apply killed at any moment resumes where it stopped without paying twice. Ctrl-C stops
    submitting and waiting at once, saves the state and says what is still running (exit 130).
    Exit 0 when everything that could be done was (with --no-wait: submitted), 1 when anything failed (or the
    balance ran out), 3 when the plan is over budget, 124 when --timeout passed or a task stopped making progress.
    """
    from reconciler.commands.plan_apply import apply_command

    if planfile and (flags.targets or flags.replace or prune):
        raise click.UsageError(
            "--target, --replace and --prune cannot be combined with a saved plan: pass them to `plan --out` instead"
        )
    if not auto_approve and not planfile and not isatty(sys.stdin):
        raise click.UsageError(
            "standard input is not a terminal, so apply cannot ask for approval: pass --auto-approve"
        )
    settings = _apply_settings(planfile, flags)
    options = _apply_options(
        settings,
        parallelism=parallelism,
        wait=wait,
        prune=prune,
        ipm={"txt2img": ipm_txt2img, "img2img": ipm_img2img},
        poll_interval=poll_interval,
        timeout=timeout,
        stall_timeout=stall_timeout,
    )
    outcome = apply_command(
        settings,
        options,
        _ApplyConsole(as_json, auto_approve),
        planfile=Path(planfile) if planfile else None,
        gallery=settings.config.outputs.gallery if gallery is None else gallery,
    )
    _report(outcome, saved_plan=bool(planfile), as_json=as_json)


def _apply_settings(planfile: str | None, flags: Flags) -> Settings:
    """apply's settings: a saved plan's own (where it was made, unless the flags name the same), else the flags'."""
    if not planfile:
        return make_settings(flags)
    from reconciler.commands.plan_apply import saved_plan_settings

    return saved_plan_settings(Path(planfile), flags)


def _report(outcome: ApplyOutcome, *, saved_plan: bool, as_json: bool) -> None:
    """What apply says once it is done (and its exit status)."""
    if outcome.cancelled:
        click.echo("Apply cancelled; nothing changed.")
        return
    if outcome.synced is not None:
        click.echo(synced_line(outcome.synced), file=sys.stderr if as_json else sys.stdout)
    if outcome.result is None:
        if saved_plan and as_json:  # without --json the plan shown already said so
            click.echo("No changes. Novita matches the manifests.", file=sys.stderr)
        _refuse_held(outcome.plan)
        return
    _finish_apply(outcome.result)
    _refuse_held(outcome.plan)


def _apply_options(
    settings: Settings,
    *,
    parallelism: int | None,
    wait: bool,
    prune: bool,
    ipm: dict[str, int | None],
    poll_interval: float | None,
    timeout: float | None,
    stall_timeout: float | None,
) -> ApplyOptions:
    """The applier's options: each flag, else its setting in reconciler.yaml, else the default."""
    from reconciler.apply import GENERATION_STALL, TRAINING_STALL, ApplyOptions, Watch
    from reconciler.apply.context import UNANSWERED_DELAYS
    from reconciler.apply.polling import GENERATION, TRAINING, PollPolicy
    from reconciler.commands.workspace import sim_poll_policies, wait_scale

    train_poll, gen_poll = sim_poll_policies() if settings.sim else (TRAINING, GENERATION)
    if poll_interval is not None:
        train_poll = gen_poll = PollPolicy.every(poll_interval)
    project = settings.config.apply
    configured = {"txt2img": project.ipm.txt2img, "img2img": project.ipm.img2img}
    return ApplyOptions(
        parallelism=parallelism if parallelism is not None else project.parallelism,
        wait=wait,
        prune=prune,
        ipm={kind: given if given is not None else configured[kind] for kind, given in ipm.items()},
        training=Watch(train_poll, stall_timeout or TRAINING_STALL),
        generation=Watch(gen_poll, stall_timeout or GENERATION_STALL),
        timeout=timeout,
        unanswered_delays=tuple(delay * wait_scale() for delay in UNANSWERED_DELAYS),
        policy=settings.policy,
    )


def synced_line(synced: Synced) -> str:
    """What apply (and nothing else) copied between the output folders and the outputs remote."""
    done = []
    if synced.fetched:
        done.append(f"fetched {plural(synced.fetched, 'image')} from")
    if synced.stored:
        done.append(f"stored {plural(synced.stored, 'image')} in")
    if not done:
        return f"The output folders and the outputs remote {synced.remote} already match."
    text = " and ".join(done) + f" the outputs remote {synced.remote}."
    return text[0].upper() + text[1:]


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
        from reconciler.present.render import render_text

        self.addresses = [c.address for c in plan.changes]  # the live progress line counts them
        if not self.as_json:
            click.echo(render_text(plan, colour=colour(), legend=isatty(self.out)), nl=False, file=self.out)

    def confirm(self, plan: Plan) -> bool:
        if self.auto_approve:
            return True
        click.echo(file=self.out)
        return click.confirm("Apply these changes?", default=False)

    def reporter(self) -> Reporter:
        from reconciler.present.progress import JsonReporter, LineReporter, LiveReporter

        if self.as_json:
            return JsonReporter()
        if isatty(sys.stdout) and not dumb_terminal():
            return LiveReporter(self.addresses)
        return LineReporter()

    def interrupted(self) -> None:
        click.echo("\nInterrupted: no new submissions; saving the state…", err=True)


def _refuse_held(the_plan: Plan) -> None:
    """Held resources need a person's decision: the run does not count as converged (exit 1)."""
    if the_plan.held:
        from reconciler.text import noun, plural

        n = len(the_plan.held)
        raise ReconcilerError(
            f"{plural(n, 'resource')} held for a decision (see the {noun(n, 'warning')} "
            "above); Novita does not match the manifests until then."
        )


def _finish_apply(result: ApplyResult) -> None:
    from reconciler.present import outcome as words
    from reconciler.text import duration, plural

    err = sys.stderr
    if result.failed or result.skipped or result.stalled:
        click.echo("", file=err)
        for addr, failed in sorted(result.failed.items()):
            click.echo(f"Error: {addr}: {words.cause(failed.cause, addr)}", file=err)
        for addr, blocked in sorted(result.skipped.items()):
            click.echo(f"Skipped: {addr}: {words.skipped(blocked)}", file=err)
        for addr, stuck in sorted(result.stalled.items()):
            click.echo(f"Stalled: {addr}: {words.stuck(stuck)}", file=err)
    for addr, postponed in sorted(result.deferred.items()):
        click.echo(f"Left for the next apply: {addr}: {words.postponed(postponed)}", file=err)
    if result.timed_out:
        click.echo(
            f"Stopped at the --timeout deadline ({duration(result.elapsed)}): the state is saved; "
            "the next apply resumes.",
            file=err,
        )
    if result.still_running:
        click.echo("Still running on Novita (the next apply collects them, nothing is resubmitted):", file=err)
        for running in result.still_running:
            click.echo(f"  {running.address} ({running.task})", file=err)
    running_now = {r.address for r in result.still_running}
    not_done = sorted(a for a in result.stopped if a not in running_now)
    if not_done:
        shown = ", ".join(not_done[:5]) + (f", … and {len(not_done) - 5} more" if len(not_done) > 5 else "")
        click.echo(f"Not done yet, {plural(len(not_done), 'resource')} (the next apply does them): {shown}", file=err)
    if result.unfunded:
        click.echo(f"Stopped: {words.UNFUNDED}", file=err)
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if result.failed or result.skipped:
        sys.exit(1)
    if result.timed_out or result.stalled:
        sys.exit(EXIT_TIMED_OUT)
