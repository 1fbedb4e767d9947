"""`reconciler state mv FROM TO`: move a state entry to another address, under the state's lock."""

from __future__ import annotations

from reconciler.commands.workspace import Settings
from reconciler.state.moves import Move, apply_move, plan_move


def move_in_state(settings: Settings, source: str, target: str, *, dry_run: bool = False) -> Move:
    """Check the move against the state as it is now; unless dry_run, carry it out and save."""
    if dry_run:
        with settings.backend() as backend:
            return plan_move(backend.read(), source, target)
    with settings.locked("state mv") as (backend, _):
        store = backend.open()
        move = plan_move(store.state, source, target)
        apply_move(store.state, move)
        store.save()
        return move
