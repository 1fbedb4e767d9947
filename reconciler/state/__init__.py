"""The state: what reconciler has uploaded, submitted, trained and downloaded, and the lock around it.

`model` is the document (pure data); `backend` is the seam every command goes through (read, lock, open a
store, replace, force-unlock, history); `file` is the file backend (one JSON file, atomic saves with a backup,
an OS lock) and `postgres` the PostgreSQL one (a row per entry and version, an advisory lock; imported only
when a postgresql:// URL is used). Only the backends write state. See docs/ARCHITECTURE.md, "State model".

This package's own names are the document's only: importing `reconciler.state` reads and writes nothing (the
planner and the pure modules use it); the edges import `reconciler.state.backend` / `.file` by name.
"""

from reconciler.state.model import (
    STATE_VERSION,
    DatasetEntry,
    FileRecord,
    ForgottenEntry,
    GenerationEntry,
    HistoryRecord,
    ImageRecord,
    ModelEntry,
    ResourceEntry,
    State,
    now_iso,
    parse_entry,
    parse_state,
)

__all__ = [
    "STATE_VERSION",
    "DatasetEntry",
    "FileRecord",
    "ForgottenEntry",
    "GenerationEntry",
    "HistoryRecord",
    "ImageRecord",
    "ModelEntry",
    "ResourceEntry",
    "State",
    "now_iso",
    "parse_entry",
    "parse_state",
]
