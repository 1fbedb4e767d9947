"""`reconciler gallery`, and the refresh apply runs last: the static gallery of the outputs the state records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.commands.workspace import Settings
from reconciler.desired.hashing import HashCache
from reconciler.errors import ReconcilerError
from reconciler.files import display_path
from reconciler.state import State
from reconciler.urls import redact_url_password

if TYPE_CHECKING:
    from reconciler.apply import ApplyResult
    from reconciler.present.gallery import GalleryResult

GALLERY_FOLDER = "gallery"


def gallery_folder(settings: Settings) -> Path:
    """Where the gallery is written: `gallery/` in the project folder."""
    return settings.root / GALLERY_FOLDER


def gallery_command(settings: Settings, out: Path | None = None) -> GalleryResult:
    """`reconciler gallery`: write the static gallery of the outputs the state records. Changes no state."""
    from reconciler.present.gallery import build_gallery

    with settings.backend() as backend:
        state = backend.read()
    if not state.serial:
        where = redact_url_password(settings.state_url or display_path(settings.state_path, settings.root))
        hint = "" if settings.sim else " (after `apply --sim`, add --sim: its state is state/sim.json)"
        raise ReconcilerError(f"no state at {where}: nothing was applied yet{hint}")
    return build_gallery(settings.root, state, out or gallery_folder(settings), HashCache(settings.cache_file))


def gallery_refresher(settings: Settings, cache: HashCache) -> Callable[[ApplyResult, State], str | None]:
    """What apply runs last: refresh the gallery when it wrote, moved, adopted, forgot or removed images."""

    def refresh(result: ApplyResult, state: State) -> str | None:
        from reconciler.present.gallery import build_gallery

        if not (result.images or result.adopted or result.pruned or result.moved_to_history or result.forgotten):
            return None
        try:
            return build_gallery(settings.root, state, gallery_folder(settings), cache).summary()
        except OSError as exc:  # the images are safe and recorded; only the view is stale
            return f"Gallery: not refreshed ({exc}); run `reconciler gallery` to try again."

    return refresh
