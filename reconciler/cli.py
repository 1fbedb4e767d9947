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
    from reconciler.desired import Desired
    from reconciler.hashing import HashCache
    from reconciler.plan import OutputFacts, Plan, Remote
    from reconciler.state import State
    from reconciler.workspace import Endpoint, Settings

F = TypeVar("F", bound=Callable[..., Any])
EXIT_INTERRUPTED = 130


def files_option(f: F) -> F:
    return click.option(
        "-f",
        "--file",
        "files",
        multiple=True,
        type=click.Path(),
        help="A manifest file or folder, searched recursively for *.yaml/*.yml (repeatable). Default: manifests/.",
    )(f)


def state_options(f: F) -> F:
    f = click.option(
        "--lock-timeout",
        type=float,
        default=0.0,
        show_default=True,
        metavar="SECONDS",
        help="Wait this long for another reconciler holding the state lock, instead of failing at once.",
    )(f)
    f = click.option(
        "--state",
        "state_path",
        type=click.Path(dir_okay=False),
        help="The state file. Default: state/state.json (state/sim.json with --sim).",
    )(f)
    return f


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


class ReconcilerGroup(click.Group):
    """Turns expected errors into one `Error: ...` line and their exit status, in one place."""

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
@click.option("--debug", is_flag=True, help="Log every HTTP request and response to stderr (the key shows as ***).")
def cli(debug: bool) -> None:
    """Declarative plan/apply for LoRA training and image generation on Novita.ai.

    Keep Datasets, LoraModels and Generations as YAML manifests in git; `plan` shows what would change,
    `apply` uploads, trains and generates only what is missing, and can be killed at any moment without
    losing or repeating paid work. NOVITA_API_KEY holds the key; NOVITA_API_BASE overrides the base URL.
    """
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
        for name in ("asyncio", "PIL"):
            logging.getLogger(name).setLevel(logging.WARNING)


# ---------------------------------------------------------------------------------------------- offline


@cli.command(short_help="Check the manifests offline.")
@files_option
def validate(files: tuple[str, ...]) -> None:
    """Check the manifests offline: every error at once, as file:line:col."""
    from reconciler.manifest import load_manifests

    manifests = load_manifests([Path(f) for f in files] or [Path("manifests")], Path.cwd())
    count = len(manifests.datasets) + len(manifests.models) + len(manifests.generations)
    click.echo(f"{count} resource{'s' if count != 1 else ''} valid")


@cli.command(short_help="Print the JSON Schema of a manifest document.")
@click.option("--kind", type=click.Choice(["Dataset", "LoraModel", "Generation"]), help="Only this kind.")
def schema(kind: str | None) -> None:
    """Print the JSON Schema of a manifest document (for editors and the YAML language server)."""
    import json

    from reconciler.manifest import document_schema

    click.echo(json.dumps(document_schema(kind), indent=2))


# ---------------------------------------------------------------------------------------------- plan


def _settings(
    files: tuple[str, ...],
    state_path: str | None,
    sim: bool,
    lock_timeout: float = 0.0,
    targets: tuple[str, ...] = (),
    replace: tuple[str, ...] = (),
) -> Settings:
    from reconciler.workspace import Settings

    return Settings.make(files, state_path, sim, lock_timeout, targets, replace)


def _check_targets(desired: Desired, state: State, targets: list[str], option: str = "--target") -> None:
    known = set(desired.addresses()) | set(state.resources)
    unknown = [t for t in targets if t not in known]
    if unknown:
        import difflib

        hints = []
        for t in unknown:
            near = difflib.get_close_matches(t, sorted(known), n=1)
            hints.append(f"{t}" + (f" (did you mean {near[0]}?)" if near else ""))
        raise click.BadParameter("no such resource: " + ", ".join(hints), param_hint=option)


def _make_plan(
    settings: Settings, desired: Desired, cache: HashCache, state: State, endpoint: Endpoint | None
) -> tuple[Plan, dict[str, OutputFacts]]:
    """Refresh (unless offline), observe outputs on disk, and plan; the outputs seen go to apply."""
    import asyncio

    from reconciler.outputs import observe
    from reconciler.plan import plan as make_plan

    remote = None
    if endpoint is not None:
        from reconciler.refresh import refresh
        from reconciler.workspace import make_client

        async def go() -> Remote:
            async with make_client(endpoint) as client:
                return await refresh(client, state)

        remote = asyncio.run(go())
    outputs = observe(desired, state, cache, settings.root)
    result = make_plan(desired, state, remote, outputs, settings.targets, settings.replace)
    cache.save()
    return result, outputs


def _colour() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


@cli.command(short_help="Show what apply would change.")
@files_option
@state_options
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
def plan(
    files: tuple[str, ...],
    state_path: str | None,
    lock_timeout: float,
    sim: bool,
    targets: tuple[str, ...],
    replace: tuple[str, ...],
    out: str | None,
    as_json: bool,
    fmt: str,
    detailed_exitcode: bool,
    refresh: bool,
) -> None:
    """Show what apply would upload, train, generate, adopt and forget.

    Refreshes the account's training list and the tasks in flight, then diffs the manifests against the
    state and the account. Changes nothing.
    """
    from reconciler.planfile import save_plan
    from reconciler.render import render_json, render_markdown, render_text
    from reconciler.state import read_state
    from reconciler.workspace import load_desired, novita_endpoint

    settings = _settings(files, state_path, sim, lock_timeout, targets, replace)
    desired, cache = load_desired(settings)
    state = read_state(settings.state_path)
    _check_targets(desired, state, settings.targets)
    _check_targets(desired, state, settings.replace, "--replace")
    if refresh:
        with novita_endpoint(settings) as endpoint:
            result, _ = _make_plan(settings, desired, cache, state, endpoint)
    else:
        result, _ = _make_plan(settings, desired, cache, state, None)
    fmt = "json" if as_json else fmt
    if fmt == "json":
        click.echo(render_json(result), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(result), nl=False)
    else:
        click.echo(render_text(result, colour=_colour()), nl=False)
    if out:
        save_plan(result, Path(out))
        if fmt == "text":
            click.echo(f"\nSaved the plan to {out}. Apply exactly this plan with: reconciler apply {out}")
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
    default=8,
    show_default=True,
    help="At most this many uploads, submissions and downloads at once.",
)
@click.option("--prune", is_flag=True, help="Delete the downloaded images of forgotten generations (if unchanged).")
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
    default=20,
    show_default=True,
    help="Submit at most this many txt2img images per minute (Novita's default limit; 0 = no throttle).",
)
@click.option(
    "--ipm-img2img",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Submit at most this many img2img images per minute (Novita's default limit; 0 = no throttle).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.01, 600),
    metavar="SECONDS",
    help="How often to check a running task. Default: 10 for trainings and 1 for generations "
    "(0.5 and 0.25 with --sim).",
)
def apply(
    planfile: str | None,
    files: tuple[str, ...],
    state_path: str | None,
    lock_timeout: float,
    sim: bool,
    targets: tuple[str, ...],
    replace: tuple[str, ...],
    auto_approve: bool,
    parallelism: int,
    prune: bool,
    as_json: bool,
    wait: bool,
    ipm_txt2img: int,
    ipm_img2img: int,
    poll_interval: float | None,
) -> None:
    """Upload, train and generate only what is missing; or apply a saved PLANFILE exactly.

    Without PLANFILE it plans, shows the plan and asks for approval. The state is saved after every step,
    so an apply killed at any moment resumes where it stopped without paying twice. Ctrl-C stops
    submitting, saves the state and says what is still running (exit 130). Exit 1 when anything failed.
    """
    from reconciler.apply import ApplyOptions
    from reconciler.outputs import observe
    from reconciler.planfile import check_fresh, load_plan
    from reconciler.render import render_text
    from reconciler.state import StateLock, StateStore
    from reconciler.workspace import load_desired, novita_endpoint, sim_poll_intervals

    if planfile and (targets or replace):
        raise click.UsageError(
            "--target and --replace cannot be combined with a saved plan: pass them to `plan --out` instead"
        )
    if not auto_approve and not planfile and not sys.stdin.isatty():
        raise click.UsageError(
            "standard input is not a terminal, so apply cannot ask for approval: pass --auto-approve"
        )
    settings = _settings(files, state_path, sim, lock_timeout, targets, replace)
    desired, cache = load_desired(settings)
    out = sys.stderr if as_json else sys.stdout
    with StateLock(settings.state_path, timeout=lock_timeout, command="apply") as lock:
        if lock.took_over:
            from reconciler.state import describe_holder

            click.echo(
                f"Note: the previous apply ({describe_holder(lock.took_over)}) ended without releasing the lock "
                "(killed?); it no longer runs, so this apply takes over and resumes its work.",
                err=True,
            )
        store = StateStore(settings.state_path)
        _check_targets(desired, store.state, settings.targets)
        _check_targets(desired, store.state, settings.replace, "--replace")
        with novita_endpoint(settings) as endpoint:
            if planfile:
                the_plan = load_plan(Path(planfile))
                check_fresh(
                    the_plan,
                    Path(planfile),
                    serial=store.state.serial,
                    lineage=store.state.lineage,
                    desired_digest=desired.digest(),
                )
                outputs = observe(desired, store.state, cache, settings.root)
            else:
                the_plan, outputs = _make_plan(settings, desired, cache, store.state, endpoint)
                if not as_json:
                    click.echo(render_text(the_plan, colour=_colour()), nl=False, file=out)
                if the_plan.empty:
                    _refuse_held(the_plan)
                    return
                if not auto_approve:
                    click.echo(file=out)
                    if not click.confirm("Apply these changes?", default=False):
                        click.echo("Apply cancelled; nothing changed.")
                        return
            if the_plan.empty:
                if planfile:
                    click.echo("No changes. Novita matches the manifests.", file=out)
                _refuse_held(the_plan)
                return
            train_poll, gen_poll = sim_poll_intervals() if sim else (10.0, 1.0)
            if poll_interval is not None:
                train_poll = gen_poll = poll_interval
            options = ApplyOptions(
                parallelism=parallelism,
                wait=wait,
                prune=prune,
                ipm={"txt2img": ipm_txt2img, "img2img": ipm_img2img},
                training_poll=train_poll,
                generation_poll=gen_poll,
            )
            result = _run_apply(the_plan, desired, store, endpoint, options, settings, outputs, as_json)
    _finish_apply(result, as_json)
    _refuse_held(the_plan)


def _refuse_held(the_plan: Plan) -> None:
    """Held resources need a person's decision: the run does not count as converged (exit 1)."""
    if the_plan.warnings:
        n = len(the_plan.warnings)
        raise ReconcilerError(
            f"{n} resource{'s' if n != 1 else ''} held for a decision (see the warning{'s' if n != 1 else ''} "
            "above); Novita does not match the manifests until then."
        )


def _run_apply(
    the_plan: Plan,
    desired: Desired,
    store: Any,
    endpoint: Endpoint,
    options: Any,
    settings: Settings,
    outputs: Any,
    as_json: bool,
) -> Any:
    import asyncio
    import signal

    from reconciler.apply import Applier
    from reconciler.progress import JsonReporter, LineReporter, LiveReporter, Reporter
    from reconciler.workspace import make_client

    reporter: Reporter
    if as_json:
        reporter = JsonReporter()
    elif sys.stdout.isatty():
        reporter = LiveReporter()
    else:
        reporter = LineReporter()

    async def go() -> Any:
        async with make_client(endpoint) as client:
            applier = Applier(the_plan, desired, store, client, reporter, options, settings.root, outputs)
            loop = asyncio.get_running_loop()

            def on_sigint() -> None:
                click.echo("\nInterrupted: no new submissions; saving the state…", err=True)
                applier.interrupt()
                loop.remove_signal_handler(signal.SIGINT)  # a second Ctrl-C stops at once

            loop.add_signal_handler(signal.SIGINT, on_sigint)
            loop.add_signal_handler(signal.SIGTERM, applier.interrupt)
            try:
                return await applier.run()
            finally:
                loop.remove_signal_handler(signal.SIGINT)
                loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(go())
    finally:
        reporter.close()


def _finish_apply(result: Any, as_json: bool) -> None:
    err = sys.stderr
    if result.failed or result.skipped:
        click.echo("", file=err)
        for addr, message in sorted(result.failed.items()):
            click.echo(f"Error: {addr}: {message}", file=err)
        for addr, message in sorted(result.skipped.items()):
            click.echo(f"Skipped: {addr}: {message}", file=err)
    if result.still_running:
        click.echo("Still running on Novita (the next apply collects them, nothing is resubmitted):", file=err)
        for line in result.still_running:
            click.echo(f"  {line}", file=err)
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if not result.ok:
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- state


@cli.command(short_help="Record remote progress in the state; change nothing remote.")
@files_option
@state_options
@sim_option
def refresh(files: tuple[str, ...], state_path: str | None, lock_timeout: float, sim: bool) -> None:
    """Update the state from the account without changing anything remote.

    Records trainings that finished or failed since the last apply. Downloads nothing and submits nothing.
    """
    import asyncio

    from reconciler.refresh import record_remote
    from reconciler.refresh import refresh as do_refresh
    from reconciler.state import StateLock, StateStore, now_iso
    from reconciler.workspace import make_client, novita_endpoint

    settings = _settings(files, state_path, sim, lock_timeout)
    with StateLock(settings.state_path, timeout=lock_timeout, command="refresh"):
        store = StateStore(settings.state_path)
        with novita_endpoint(settings) as endpoint:

            async def go() -> Remote:
                async with make_client(endpoint) as client:
                    return await do_refresh(client, store.state)

            remote = asyncio.run(go())
        changed = record_remote(store.state, remote, now_iso())
        if changed:
            store.save()
        click.echo(
            f"Refreshed: {remote.pages} page{'s' if remote.pages != 1 else ''} of trainings "
            f"({len(remote.trainings)} task{'s' if len(remote.trainings) != 1 else ''})."
        )
        for line in changed:
            click.echo(f"  {line}")
        if not changed:
            click.echo("The state already matches the account.")


@cli.group()
def state() -> None:
    """Inspect and edit the state file (list, show, rm)."""


@state.command("list")
@state_options
@sim_option
def state_list(state_path: str | None, lock_timeout: float, sim: bool) -> None:
    """List the resources in the state, with their status."""
    from reconciler.state import read_state

    settings = _settings((), state_path, sim)
    data = read_state(settings.state_path)
    for addr, entry in sorted(data.resources.items()):
        detail = entry.model_name or entry.task_name or ""
        if entry.kind == "Generation":
            detail = f"{len(entry.files)} images in {entry.output}"
        elif entry.kind == "Dataset":
            detail = f"{len(entry.images)} images"
        click.echo(f"{addr}\t{entry.status}\t{detail}".rstrip())


@state.command("show")
@click.argument("address")
@state_options
@sim_option
def state_show(address: str, state_path: str | None, lock_timeout: float, sim: bool) -> None:
    """Show everything the state holds for ADDRESS (e.g. LoraModel/alice-v1)."""
    import json

    from reconciler.state import read_state

    settings = _settings((), state_path, sim)
    entry = read_state(settings.state_path).entry(address)
    if entry is None:
        raise ReconcilerError(f"{address} is not in the state ({settings.state_path})")
    click.echo(json.dumps(entry.model_dump(mode="json", exclude_defaults=True), indent=2, ensure_ascii=False))


@state.command("rm")
@click.argument("addresses", nargs=-1, required=True)
@state_options
@sim_option
def state_rm(addresses: tuple[str, ...], state_path: str | None, lock_timeout: float, sim: bool) -> None:
    """Forget ADDRESSES in the state without touching Novita or any file (the next plan may adopt them)."""
    from reconciler.state import StateLock, StateStore

    settings = _settings((), state_path, sim, lock_timeout)
    with StateLock(settings.state_path, timeout=lock_timeout, command="state rm"):
        store = StateStore(settings.state_path)
        missing = [a for a in addresses if a not in store.state.resources]
        if missing:
            raise ReconcilerError(f"not in the state: {', '.join(missing)}; nothing was removed")
        for addr in addresses:
            del store.state.resources[addr]
        store.save()
    for addr in addresses:
        click.echo(f"Removed {addr} from the state.")


@cli.command("import", short_help="Adopt an existing Novita training as a LoraModel.")
@click.argument("address")
@click.argument("task_id")
@files_option
@state_options
@sim_option
def import_(
    address: str, task_id: str, files: tuple[str, ...], state_path: str | None, lock_timeout: float, sim: bool
) -> None:
    """Adopt an existing Novita training TASK_ID as LoraModel ADDRESS (e.g. LoraModel/alice-v1 d660cdd0-…).

    The training is recorded as the model's current definition: the next plan will not retrain it unless
    the manifest changes.
    """
    import asyncio

    from reconciler.state import ResourceEntry, StateLock, StateStore, now_iso
    from reconciler.workspace import load_desired, make_client, novita_endpoint

    kind, _, name = address.partition("/")
    if kind != "LoraModel":
        raise click.BadParameter("only LoraModel/NAME can be imported (Novita lists trainings only)")
    settings = _settings(files, state_path, sim, lock_timeout)
    desired, _ = load_desired(settings)
    model = desired.models.get(name)
    if model is None:
        raise ReconcilerError(f"{address} is not in the manifests; add it first, then import")
    with StateLock(settings.state_path, timeout=lock_timeout, command="import"):
        store = StateStore(settings.state_path)
        with novita_endpoint(settings) as endpoint:

            async def go() -> Any:
                async with make_client(endpoint) as client:
                    tasks = await client.list_trainings()
                    listed = next((t for t in tasks if t.task_id == task_id), None)
                    if listed is None:
                        raise ReconcilerError(f"no training {task_id} in the account")
                    return listed

            task = asyncio.run(go())
        status = "succeeded" if task.is_done else "failed" if task.is_failed else "training"
        store.state.resources[address] = ResourceEntry(
            kind="LoraModel",
            name=name,
            identity=model.identity,
            status=status,
            attributes=model.attributes(),
            dataset=model.dataset,
            task_type=task.task_type or model.task_type,
            task_name=task.task_name,
            task_id=task.task_id,
            model_name=task.model_name if task.is_done else None,
            updated_at=now_iso(),
        )
        store.save()
    click.echo(f"Imported {task.task_name} ({task_id}, {task.task_status}) as {address}.")


@cli.command("force-unlock", short_help="Remove a stale state lock.")
@state_options
@sim_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def force_unlock(state_path: str | None, lock_timeout: float, sim: bool, yes: bool) -> None:
    """Remove a stale state lock left by a process that is gone (e.g. on another machine)."""
    from reconciler.state import describe_holder, lock_path_for, read_lock_info
    from reconciler.state import force_unlock as do_unlock

    settings = _settings((), state_path, sim)
    info = read_lock_info(lock_path_for(settings.state_path))
    if info is None:  # no lock file, or one released cleanly (emptied)
        click.echo("The state is not locked.")
        return
    if not yes and not click.confirm(f"Remove the lock held by {describe_holder(info or {})}?", default=False):
        click.echo("Lock kept.")
        return
    do_unlock(settings.state_path)
    click.echo(f"Lock removed (it was held by {describe_holder(info or {})}).")


# ---------------------------------------------------------------------------------------------- main


def _register_sim() -> None:
    from reconciler.sim.cli import sim

    cli.add_command(sim)


_register_sim()


def main() -> None:
    """Entry point (`reconciler`, `python -m reconciler`)."""
    cli()
