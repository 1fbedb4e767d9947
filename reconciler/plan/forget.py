"""Pure: what a plan does to a resource the state holds and the manifests no longer do: forget it, saying what
stays (Novita has no delete) and what `--prune` removes."""

from __future__ import annotations

from reconciler.plan import reasons as r
from reconciler.plan.changes import ResourceChange
from reconciler.plan.reasons import Reason
from reconciler.state import GenerationEntry, ModelEntry, ResourceEntry


def forget(addr: str, entry: ResourceEntry, prune: bool) -> ResourceChange:
    reason: Reason = r.ForgetDataset()
    if isinstance(entry, ModelEntry):
        reason = r.ForgetModel(entry.task_name, entry.model_name, entry.in_flight)
    elif isinstance(entry, GenerationEntry):
        reason = r.ForgetGeneration(len(entry.files), prune)
    return ResourceChange(addr, "forget", reason, before=entry.attributes)
