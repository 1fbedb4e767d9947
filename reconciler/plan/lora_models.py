"""Pure: what a plan does to each LoraModel, one small function per state of its entry.

A model's decision is its change (None: nothing to do) and the trained model its generations can use now
(None: not yet, so they wait for it). The table in docs/ARCHITECTURE.md reads as `decide_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reconciler.desired.resources import DesiredModel
from reconciler.observe.facts import Account, AccountTraining
from reconciler.plan import reasons as r
from reconciler.plan.changes import Action, AttrChange, ResourceChange
from reconciler.plan.diff import diff_attributes
from reconciler.plan.inputs import Inputs
from reconciler.plan.reasons import Note, Reason
from reconciler.state import ModelEntry
from reconciler.status import SUBMIT_UNRESOLVED, Status


@dataclass(frozen=True)
class ModelDecision:
    change: ResourceChange | None
    usable: str | None = None  # the trained model name its generations can use now

    @property
    def action(self) -> Action | None:
        return self.change.action if self.change is not None else None


@dataclass(frozen=True)
class _Model:
    """One LoraModel as the planner compares it: the manifest's, the state's and the account's view of it."""

    model: DesiredModel
    entry: ModelEntry | None
    account: Account | None
    found: tuple[AccountTraining, ...]  # the account's tasks with its task name, the most useful first
    live: AccountTraining | None  # ...the one that succeeded or is in flight
    uploads: tuple[str, ...]  # image hashes a training of it would upload
    before: dict[str, Any] | None
    after: dict[str, Any]

    @classmethod
    def of(cls, inputs: Inputs, model: DesiredModel) -> _Model:
        entry = inputs.state.model(model.name)
        account = inputs.account
        return cls(
            model,
            entry,
            account,
            tuple(account.named(model.task_name)) if account is not None else (),
            account.live(model.task_name) if account is not None else None,
            tuple(sorted({i.sha256 for i in model.images if i.sha256 not in inputs.state.images})),
            entry.attributes if entry is not None else None,
            model.attributes(),
        )

    @property
    def same(self) -> bool:
        return self.entry is not None and self.entry.identity == self.model.identity

    def decide(
        self,
        action: Action,
        reason: Reason,
        *,
        usable: str | None = None,
        changes: tuple[AttrChange, ...] | None = None,
        **kw: Any,
    ) -> ModelDecision:
        """The change for this model; a create or replace carries its uploads and the account's tasks of its name."""
        if changes is None:
            changes = diff_attributes(self.before, self.after) if action == "replace" and not self.same else ()
        if action in ("create", "replace"):
            kw.setdefault("uploads", self.uploads)
            # None when planned offline; a look-up after an unanswered create never takes one of these for its answer
            kw["known_tasks"] = tuple(sorted(t.task_id for t in self.found)) if self.account is not None else None
        change = ResourceChange(
            self.model.address,
            action,
            reason,
            changes=changes,
            before=self.before,
            after=self.after,
            task_name=self.model.task_name,
            **kw,
        )
        return ModelDecision(change, usable)


def decide_model(inputs: Inputs, model: DesiredModel) -> ModelDecision:
    m = _Model.of(inputs, model)
    entry = m.entry
    if model.address in inputs.replace and entry is not None and not entry.in_flight:
        return _retrain_requested(m, entry)
    if entry is None or not m.same:
        return _new_or_changed(m, entry)
    if entry.status == Status.SUCCEEDED:
        return _trained(m, entry)
    if entry.status in SUBMIT_UNRESOLVED:
        return _unanswered(m, entry)
    if entry.in_flight:
        return _in_flight(m, entry)
    return _failed(m, entry)


def _retrain_requested(m: _Model, entry: ModelEntry) -> ModelDecision:
    kept: tuple[Note, ...] = (r.CurrentModelStays(entry.model_name),) if entry.model_name else ()
    return m.decide("replace", r.RetrainRequested(m.model.task_name), notes=kept)


def _trained(m: _Model, entry: ModelEntry) -> ModelDecision:
    """Trained, same definition: nothing to do, unless the account no longer has it."""
    if m.account is not None and entry.task_id and m.account.by_id(entry.task_id) is None and m.live is None:
        return m.decide("replace", r.TrainingMissing(entry.task_name, trained=True))
    return ModelDecision(None, entry.model_name)


def _unanswered(m: _Model, entry: ModelEntry) -> ModelDecision:
    """A create of this definition got no answer (or an apply was killed while it was on the wire): the name tells
    whether it landed. Not listed (yet: a listing may lag a create): apply looks it up again, a few times, before
    it submits anything. Offline, the state is trusted: apply looks the name up and never resubmits."""
    task_name = m.model.task_name
    if m.account is None:
        return m.decide("resume", r.UnansweredLookup(task_name))
    made = m.account.answer_to(task_name, entry.prior_tasks)
    if made is None:
        return m.decide("create", r.UnansweredNotListed(task_name))
    return _listed(m, made, r.UnansweredInFlight)


def _in_flight(m: _Model, entry: ModelEntry) -> ModelDecision:
    """Submitted and recorded: wait for it, never resubmit, unless the account says it ended without a model."""
    if m.account is None:
        return m.decide("resume", r.TrainingInFlight(m.model.task_name, None), task_id=entry.task_id)
    task = (m.account.by_id(entry.task_id) if entry.task_id else None) or m.live
    if task is None:
        return m.decide("replace", r.TrainingMissing(m.model.task_name, trained=False))
    return _listed(m, task, r.TrainingInFlight)


def _listed(m: _Model, task: AccountTraining, running: Callable[[str, r.TaskStatus], Reason]) -> ModelDecision:
    """The training the state waits for, as the account lists it: ended without a model (train again), finished
    while nobody watched (record its model, which its generations can use now) or running (wait, `running`)."""
    seen = r.TaskStatus.of(task)
    if task.failed:
        return m.decide("replace", r.TrainingEnded(task.task_name, task.status))
    if task.succeeded:
        reason = r.TrainingFinished(task.task_name, seen)
        return m.decide("resume", reason, usable=task.model_name, task_id=task.task_id, model_name=task.model_name)
    return m.decide("resume", running(task.task_name, seen), task_id=task.task_id)


def _failed(m: _Model, entry: ModelEntry) -> ModelDecision:
    """Failed before, same definition: adopt a training of it found in the account, else train again."""
    if m.live is not None:
        return _adopt(m, m.live)
    return m.decide("replace", r.PreviousTrainingFailed(entry.task_name, entry.reason, m.model.task_name))


def _new_or_changed(m: _Model, entry: ModelEntry | None) -> ModelDecision:
    """Not in the state, or its definition changed: adopt what the account already has of it, else train it."""
    if m.live is not None:
        return _adopt(m, m.live)
    notes: tuple[Note, ...] = ()
    if m.found:
        notes = (r.EarlierTrainingEnded(m.found[0].task_name, m.found[0].status),)
    task_name = m.model.task_name
    if entry is None:
        return m.decide("create", r.NewTraining(task_name, len(m.model.images)), notes=notes)
    diff = diff_attributes(m.before, m.after)
    reason: Reason = r.DefinitionChanged(task_name)
    if diff and all(c.path == "images" for c in diff):
        reason = r.DatasetChanged(m.model.dataset, task_name)
    if entry.model_name:
        notes += (r.OldModelStays(entry.model_name),)
    return m.decide("replace", reason, changes=diff, notes=notes)


def _adopt(m: _Model, task: AccountTraining) -> ModelDecision:
    """The account has a training of this definition the state does not know: adopt it (and wait, if running)."""
    name = task.model_name if task.succeeded else None
    reason = r.FoundInAccount(task.task_name, r.TaskStatus.of(task), finished=task.succeeded)
    return m.decide("adopt", reason, usable=name, task_id=task.task_id, model_name=name)
