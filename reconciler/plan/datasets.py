"""Pure: what a plan does to each Dataset. A dataset has nothing on Novita of its own: its line says what the
trainings of this plan will upload of it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.plan import reasons as r
from reconciler.plan.changes import ResourceChange
from reconciler.plan.diff import diff_attributes
from reconciler.plan.inputs import Inputs
from reconciler.plan.reasons import Reason


def trainings_by_dataset(inputs: Inputs, changes: Sequence[ResourceChange]) -> dict[str, list[ResourceChange]]:
    """The model creates and replaces among `changes`, by the dataset they train on, in order."""
    by_dataset: dict[str, list[ResourceChange]] = {}
    for c in changes:
        if c.kind == "LoraModel" and c.action in ("create", "replace"):
            by_dataset.setdefault(inputs.desired.models[c.name].dataset, []).append(c)
    return by_dataset


def decide_dataset(
    inputs: Inputs, name: str, trainings: Mapping[str, Sequence[ResourceChange]]
) -> ResourceChange | None:
    """`trainings`: this plan's model trainings by dataset (`trainings_by_dataset`)."""
    dataset = inputs.desired.datasets[name]
    entry = inputs.state.dataset(name)
    if entry is not None and entry.identity == dataset.identity:
        return None
    training = trainings.get(name, ())
    needed = {i.sha256 for c in training for i in inputs.desired.models[c.name].images}
    uploads = tuple(sorted({h for c in training for h in c.uploads}))
    changed = entry is not None
    reason: Reason = r.NothingToUpload(len(dataset.images), changed)
    if uploads:
        reason = r.UploadsNeeded(len(uploads), len(needed) - len(uploads), changed)
    elif training:
        reason = r.AllUploaded(len(needed), changed)
    after = dataset.attributes()
    if entry is None:
        return ResourceChange(dataset.address, "create", reason, after=after, uploads=uploads)
    changes = diff_attributes(entry.attributes, after)
    return ResourceChange(
        dataset.address, "replace", reason, changes=changes, before=entry.attributes, after=after, uploads=uploads
    )
