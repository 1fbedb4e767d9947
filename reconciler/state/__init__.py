"""The state: what reconciler has uploaded, submitted, trained and downloaded, and the lock around it.

`model` is the document (pure data); `backend` is the seam every command goes through (read, lock, open a
store, replace, force-unlock, history); `file` is the file backend (one JSON file, atomic saves with a backup,
an OS lock) and `postgres` the PostgreSQL one (a row per entry and version, an advisory lock; imported only
when a postgresql:// URL is used). Only the backends write state. See docs/ARCHITECTURE.md, "State model".
"""

from reconciler.state.backend import Backend, Lock, Store, Version, open_backend, workspace_file
from reconciler.state.file import (
    FileBackend,
    StateLock,
    StateStore,
    describe_holder,
    force_unlock,
    lock_path_for,
    read_lock_info,
    read_state,
)
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
    "Backend",
    "DatasetEntry",
    "FileBackend",
    "FileRecord",
    "ForgottenEntry",
    "GenerationEntry",
    "HistoryRecord",
    "ImageRecord",
    "Lock",
    "ModelEntry",
    "ResourceEntry",
    "State",
    "StateLock",
    "StateStore",
    "Store",
    "Version",
    "describe_holder",
    "force_unlock",
    "lock_path_for",
    "now_iso",
    "open_backend",
    "parse_entry",
    "parse_state",
    "read_lock_info",
    "read_state",
    "workspace_file",
]
