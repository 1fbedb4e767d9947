"""Command line: parse flags, call one workflow function per command, render, exit.

Expected errors (ReconcilerError) become one `Error: ...` line and their exit status in the group
(`group.ReconcilerGroup`); anything else is a bug and shows a traceback. Heavy modules are imported inside the
commands that need them, so `--help` and `validate` start fast.

    group       the `reconciler` group: -C, --debug (before or after the command), error handling
    common      shared options, settings from flags, terminal facts, exit statuses
    project     init, validate, schema, models, graph (offline)
    plan_apply  plan, apply
    views       show, output, explain, gallery
    state       refresh, state ..., pull, import, force-unlock
"""

from reconciler.cli import plan_apply, project, state, views
from reconciler.cli.group import cli

__all__ = ["cli", "main"]
_COMMANDS = (plan_apply, project, state, views)  # imported for their commands, registered on `cli`


def _register_sim() -> None:
    from reconciler.sim.cli import sim

    cli.add_command(sim)


_register_sim()


def main() -> None:
    """Entry point (`reconciler`, `python -m reconciler`)."""
    cli()
