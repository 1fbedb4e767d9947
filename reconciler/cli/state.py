"""Commands on the state and the account: refresh, state list/show/rm/mv/pull/push/migrate/history, pull, import,
force-unlock."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from reconciler.cli.common import (
    empty_state_note,
    gathers_flags,
    make_settings,
    where_options,
)
from reconciler.cli.group import cli
from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.commands.workspace import Flags
    from reconciler.state.model import SkippedEntry


@cli.command(short_help="Record remote progress in the state; change nothing remote.")
@where_options(files=True, lock=True)
@gathers_flags
def refresh(flags: Flags) -> None:
    """Update the state from the account without changing anything remote.

    Records trainings that finished or failed since the last apply. Downloads nothing and submits nothing.
    """
    from reconciler.commands.state_cmds import refresh_command
    from reconciler.text import plural

    refreshed = refresh_command(make_settings(flags))
    remote = refreshed.remote
    click.echo(f"Refreshed: {plural(remote.pages, 'page')} of trainings ({plural(len(remote.trainings), 'task')}).")
    for line in refreshed.changed:
        click.echo(f"  {line}")
    if not refreshed.changed:
        click.echo("The state already matches the account.")


@cli.group(short_help="Inspect and edit the state: list, show, rm, mv, pull, push, migrate, history.")
def state() -> None:
    """Inspect and edit the state (list, show, rm, mv, pull, push, migrate, history)."""


@state.command("list", short_help="List the resources in the state, with their status.")
@where_options()
@gathers_flags
def state_list(flags: Flags) -> None:
    """List the resources in the state, with their status."""
    from reconciler.commands.state_cmds import pull_state
    from reconciler.state import DatasetEntry, ForgottenEntry, GenerationEntry, ModelEntry
    from reconciler.text import plural

    settings = make_settings(flags)
    data = pull_state(settings)
    _warn_skipped(data.skipped, "left out of this list")
    if not data.listed:
        empty_state_note(settings)
    for addr, entry in sorted(data.listed.items()):
        if isinstance(entry, GenerationEntry):
            detail = f"{plural(len(entry.files), 'image')} in {entry.output}"
            if entry.history:
                detail += f", {len(entry.history)} earlier in its history"
        elif isinstance(entry, DatasetEntry):
            detail = plural(len(entry.images), "image")
        elif isinstance(entry, ForgottenEntry):
            detail = f"{plural(len(entry.files), 'file')} on disk until `apply --prune`"
        else:
            assert isinstance(entry, ModelEntry)  # `listed` holds no ledger
            detail = entry.model_name or entry.task_name or ""
        click.echo(f"{addr}\t{entry.status}\t{detail}".rstrip())


@state.command("show", short_help="Show everything the state holds for one resource.")
@click.argument("address")
@where_options()
@gathers_flags
def state_show(address: str, flags: Flags) -> None:
    """Show everything the state holds for ADDRESS (e.g. LoraModel/alice-v1)."""
    import json

    from reconciler.commands.state_cmds import pull_state

    settings = make_settings(flags)
    data = pull_state(settings)
    entry = data.entry(address)
    skipped = [s for s in data.skipped if s.address == address and s.entry is not None]
    if entry is None and skipped:
        entry = skipped[0].entry
        _warn_skipped(skipped, "shown as stored")
    if entry is None:
        raise ReconcilerError(f"{address} is not in the state ({settings.backend().display})")
    click.echo(json.dumps(entry.model_dump(mode="json", exclude_defaults=True), indent=2, ensure_ascii=False))


@state.command("rm", short_help="Forget resources in the state only (Novita and files untouched).")
@click.argument("addresses", nargs=-1, required=True)
@where_options(lock=True)
@gathers_flags
def state_rm(addresses: tuple[str, ...], flags: Flags) -> None:
    """Forget ADDRESSES in the state without touching Novita or any file (the next plan may adopt them)."""
    from reconciler.commands.state_cmds import remove_from_state

    remove_from_state(make_settings(flags), addresses)
    for addr in addresses:
        click.echo(f"Removed {addr} from the state.")


@state.command("mv", short_help="Move a resource to another address in the state (a rename).")
@click.argument("source", metavar="FROM")
@click.argument("target", metavar="TO")
@where_options(lock=True)
@click.option("--dry-run", is_flag=True, help="Check the move and say what it would do; change nothing.")
@gathers_flags
def state_mv(source: str, target: str, flags: Flags, dry_run: bool) -> None:
    """Move the state entry at FROM to TO (e.g. Generation/old-name Generation/new-name), as Terraform's state mv.

    What the entry records (identity, Novita task, trained model, images and their history) stays; only its
    address changes. Renames whose request is unchanged need no mv: the plan finds them by identity. Use it
    when a rename comes with a changed request, so the change is planned as a replace of the renamed resource
    (its images kept in history) instead of a create and a forget.
    """
    from reconciler.commands.state_mv import move_in_state

    settings = make_settings(flags)
    move = move_in_state(settings, source, target, dry_run=dry_run)
    verb = "Would move" if dry_run else "Moved"
    click.echo(f"{verb} {move.source} to {move.target} in the state.")


@state.command("pull", short_help="Print the state as JSON (now, or an earlier --serial).")
@where_options()
@click.option("--serial", type=click.IntRange(1), metavar="N", help="A kept earlier version (see `state history`).")
@gathers_flags
def state_pull(flags: Flags, serial: int | None) -> None:
    """Print the state as JSON (the current version, or --serial N), e.g. to keep a copy or to inspect it."""
    from reconciler.commands.state_cmds import pull_state

    data = pull_state(make_settings(flags), serial)
    _warn_skipped(data.skipped, "printed as stored")
    click.echo(data.as_stored().model_dump_json(indent=1))


def _warn_skipped(skipped: list[SkippedEntry], how: str) -> None:
    """Say on stderr which entries the state holds but failed a check when read (paths or hashes a write
    could not trust): a plan treats each as if it were not there."""
    for s in skipped:
        click.echo(
            f"Warning: the state's entry {s.address} ({s.field}): {s.problem}; {how}, but a plan treats "
            f"{s.address} as if it were not there (fix the entry, or `reconciler state rm {s.address}`)",
            err=True,
        )


@state.command("push", short_help="Replace the state with a JSON file (refused if older).")
@click.argument("source", metavar="FILE")
@where_options(lock=True)
@click.option("--force", is_flag=True, help="Replace the state even if FILE has another lineage or a lower serial.")
@gathers_flags
def state_push(source: str, flags: Flags, force: bool) -> None:
    """Replace the state with FILE (a state JSON document; - reads standard input).

    Refused when FILE is another state (lineage) or older (a lower serial, or the same serial with other
    content) than the one it would replace, unless --force. A journal (FILE ending in .jsonl, from
    state/journal/ on another machine) is replayed into the state instead: its paid tasks are recorded.
    """
    from reconciler.commands.state_cmds import push_state

    pushed = push_state(make_settings(flags), source, force=force)
    if pushed.recorded is not None:
        from reconciler.text import plural

        done = f"recorded {plural(len(pushed.recorded), 'paid task')}" if pushed.recorded else "it held nothing new"
        click.echo(f"Replayed the journal {source} into {pushed.target} (serial {pushed.serial}): {done}.")
    elif pushed.unchanged:
        click.echo(f"{pushed.target} already holds exactly this state (serial {pushed.serial}); nothing pushed.")
    else:
        click.echo(f"Pushed {source} to {pushed.target} as serial {pushed.serial}.")


@state.command("migrate", short_help="Copy the state to another backend, and check it.")
@click.option("--to", "to", required=True, metavar="PATH|URL", help="Where to copy the state: a file or a URL.")
@click.option("--to-workspace", metavar="NAME", help="The workspace there [default: the same name].")
@where_options(lock=True)
@click.option("--force", is_flag=True, help="Replace a state the destination already holds.")
@gathers_flags
def state_migrate(to: str, to_workspace: str | None, flags: Flags, force: bool) -> None:
    """Copy the state to another backend (a file to PostgreSQL, or back) and check nothing was lost.

    Both states are locked while copying; the copy is read back and compared with the source. The source
    is left as it was: point state.url (reconciler.yaml) or RECONCILER_STATE_URL at the new place afterwards.
    """
    from reconciler.commands.state_cmds import describe_migration, migrate_state

    settings = make_settings(flags)
    migrated = migrate_state(settings, to, to_workspace, force=force)
    click.echo(describe_migration(migrated))


@state.command("history", short_help="List the kept versions of the state, newest first.")
@where_options()
@gathers_flags
def state_history(flags: Flags) -> None:
    """List the kept versions of the state, newest first (read one with `state pull --serial N`), then what each
    apply spent: the account's balance before and after it."""
    from reconciler.commands.state_cmds import pull_state
    from reconciler.commands.state_cmds import state_history as history
    from reconciler.present.estimate import spend_lines

    settings = make_settings(flags)
    where, versions = history(settings)
    if not versions:
        click.echo(f"No versions of the state in {where}.")
        return
    for v in versions:
        click.echo(f"{v.serial}\t{v.saved_at}\t{v.command}".rstrip())
    ledger = pull_state(settings).ledger()
    for line in spend_lines(ledger.applies if ledger is not None else []):
        click.echo(line)


@cli.command("pull", short_help="Write the generated images from the outputs remote into outputs/.")
@where_options(sim=False)
@gathers_flags
def pull(flags: Flags) -> None:
    """Write every image the state records into its output folder from the outputs remote (hash-checked).

    Free: nothing is generated and the state is not changed. Images already here and intact are kept. Needs
    outputs.remote in reconciler.yaml (or RECONCILER_OUTPUTS_REMOTE). Exits 1 when the remote lacks some.
    """
    from reconciler.commands.outputs_sync import pull_command
    from reconciler.present.wording import warning_text
    from reconciler.text import plural

    pulled = pull_command(make_settings(flags))
    for warning in pulled.warnings:
        click.echo(f"Warning: {warning_text(warning)}", err=True)
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
@where_options(files=True, lock=True)
@gathers_flags
def import_(address: str, task_id: str, flags: Flags) -> None:
    """Adopt an existing Novita training TASK_ID as LoraModel ADDRESS (e.g. LoraModel/alice-v1 d660cdd0-…).

    The training is recorded as the model's current definition: the next plan will not retrain it unless
    the manifest changes.
    """
    from reconciler.commands.state_cmds import import_training

    imported = import_training(make_settings(flags), address, task_id)
    entry = imported.entry
    click.echo(f"Imported {entry.task_name} ({entry.task_id}, {imported.task_status}) as {address}.")


@cli.command("force-unlock", short_help="Remove a stale state lock.")
@where_options()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@gathers_flags
def force_unlock(flags: Flags, yes: bool) -> None:
    """Remove a stale state lock left by a process that is gone (e.g. on another machine).

    On PostgreSQL the lock is the server's and goes with its holder's connection, so only a stale record of
    the holder can be left; a lock held by a live connection is refused with what to do instead.
    """
    from reconciler.commands.state_cmds import force_unlock_state, lock_holder
    from reconciler.state.file import describe_holder

    settings = make_settings(flags)
    info = lock_holder(settings)
    if info is None:  # no lock file, or one released cleanly (emptied)
        click.echo("The state is not locked.")
        return
    if not yes and not click.confirm(f"Remove the lock held by {describe_holder(info or {})}?", default=False):
        click.echo("Lock kept.")
        return
    force_unlock_state(settings)
    click.echo(f"Lock removed (it was held by {describe_holder(info or {})}).")
