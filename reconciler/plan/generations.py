"""Pure: what a plan does to each Generation, one small function per state of its entry.

A generation's decision is its change (None: nothing to generate), and what else it needs: images to fetch
from or store in the outputs remote (free), or a hold that waits for a person's decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.desired.resources import DesiredGeneration
from reconciler.observe.facts import Account, OutputFacts
from reconciler.plan import reasons as r
from reconciler.plan.changes import Action, ResourceChange
from reconciler.plan.diff import diff_attributes
from reconciler.plan.inputs import Inputs
from reconciler.plan.lora_models import ModelDecision
from reconciler.plan.reasons import Note, Reason
from reconciler.state import GenerationEntry
from reconciler.status import NOT_FOUND, SUBMIT_UNRESOLVED, Status, generation_lost


@dataclass(frozen=True)
class GenerationDecision:
    change: ResourceChange | None = None
    fetch: int | None = None  # done, images only in the outputs remote: how many to copy here (free)
    store: int | None = None  # done, images only here: how many to store in the outputs remote
    held: r.HeldUnanswered | None = None  # its submit got no answer and its policy holds it for a person


@dataclass(frozen=True)
class _Generation:
    """One Generation as the planner compares it: with the trained models usable now, the state and the disk."""

    gen: DesiredGeneration
    entry: GenerationEntry | None
    names: dict[str, str | None]  # its LoRA models' trained names, None while not trained
    identity: str | None  # None while one of its models is not trained
    before: dict[str, Any] | None
    after: dict[str, Any]
    facts: OutputFacts

    @classmethod
    def of(cls, inputs: Inputs, gen: DesiredGeneration, models: Mapping[str, ModelDecision]) -> _Generation:
        entry = inputs.state.generation(gen.name)
        names = {m: (models[m].usable if m in models else None) for m in gen.lora_models}
        return cls(
            gen,
            entry,
            names,
            gen.identity(names),
            entry.attributes if entry else None,
            gen.attributes(names),
            inputs.outputs.get(gen.address, OutputFacts(files_intact=False)),
        )

    @property
    def shape(self) -> r.Shape:
        request = self.gen.request
        return r.Shape(self.gen.image_num, self.gen.task_type, request.get("width", 512), request.get("height", 512))

    def decide(self, action: Action, reason: Reason, *, diff: bool = False, **kw: Any) -> GenerationDecision:
        """The change for this generation; a create or replace says which images move to history."""
        entry, facts = self.entry, self.facts
        images = self.gen.image_num if action in ("create", "replace") else 0
        notes: tuple[Note, ...] = ()
        if action in ("create", "replace"):
            if entry is not None and entry.files and len(entry.files) > facts.missing:
                notes = (r.CurrentImagesToHistory(len(entry.files) - facts.missing),)
            elif entry is None and facts.sidecar_files:
                notes = (r.FolderImagesToHistory(len(facts.sidecar_files), self.gen.output_display),)
        change = ResourceChange(
            self.gen.address,
            action,
            reason,
            changes=diff_attributes(self.before, self.after) if diff else (),
            before=self.before,
            after=self.after,
            images=images,
            notes=notes,
            **kw,
        )
        return GenerationDecision(change)


def decide_generation(
    inputs: Inputs, gen: DesiredGeneration, models: Mapping[str, ModelDecision]
) -> GenerationDecision:
    """`models`: the decisions of this plan's LoraModels, by name (what they make usable, and what they do)."""
    g = _Generation.of(inputs, gen, models)
    entry = g.entry
    if g.identity is None:
        return _waits_for_models(g, models)
    if gen.address in inputs.replace and entry is not None and entry.status != Status.RUNNING:
        return g.decide("replace", r.RunAgainRequested(g.shape))
    if entry is None or entry.identity != g.identity:
        return _new_or_changed(g, entry)
    if entry.status == Status.SUCCEEDED:
        return _generated(g, entry)
    if entry.status == Status.RUNNING and entry.task_id:
        return _running(g, entry.task_id, inputs.account)
    if entry.status in SUBMIT_UNRESOLVED:
        return _unanswered(g, inputs)
    return g.decide("replace", r.PreviousRunFailed(entry.reason))


def _waits_for_models(g: _Generation, models: Mapping[str, ModelDecision]) -> GenerationDecision:
    """A LoRA it uses is not trained yet: it runs once it is."""
    pending = tuple(m for m in g.gen.lora_models if not g.names.get(m))
    if g.entry is None:
        return g.decide("create", r.WaitsForModels(g.shape, pending))
    actions = {models[m].action if m in models else None for m in pending}
    return g.decide("replace", r.ModelsPending(pending, retrained=actions <= {"replace", "create"}), diff=True)


def _generated(g: _Generation, entry: GenerationEntry) -> GenerationDecision:
    """Generated, same identity: nothing to generate while its images are here or in the outputs remote."""
    facts = g.facts
    if not entry.files and entry.history:
        return g.decide("replace", r.StoppedAfterHistory(g.shape))
    if facts.files_intact:
        return GenerationDecision(store=len(entry.files) if facts.remote and not facts.in_remote else None)
    if facts.in_remote:  # done: the remote holds its images; copying them here is free
        return GenerationDecision(fetch=facts.missing)
    total = len(entry.files) or g.gen.image_num
    return g.decide("replace", r.ImagesMissing(facts.missing, total, g.gen.output_display))


def _running(g: _Generation, task_id: str, account: Account | None) -> GenerationDecision:
    """Submitted and recorded: wait for it, never resubmit, unless Novita lost it or it failed."""
    seen = account.generations.get(task_id) if account is not None else None
    if seen is None or not generation_lost(seen.status):
        status, progress = (seen.status, seen.progress) if seen else (None, None)
        return g.decide("resume", r.GenerationInFlight(task_id, status, progress), task_id=task_id)
    if seen.status == NOT_FOUND:
        return g.decide("replace", r.GenerationVanished(task_id))
    return g.decide("replace", r.GenerationFailed(task_id, seen.reason))


def _unanswered(g: _Generation, inputs: Inputs) -> GenerationDecision:
    """Novita cannot list generation tasks, so nobody can tell whether an unanswered submit ran: the policy
    decides (reconciler.plan.policy), never a guess."""
    if inputs.policy.for_generation(g.gen) == "resubmit":
        return g.decide("replace", r.UnansweredResubmit())
    return GenerationDecision(held=r.HeldUnanswered(g.gen.address))


def _new_or_changed(g: _Generation, entry: GenerationEntry | None) -> GenerationDecision:
    """Not in the state, or it changed: adopt its images found on disk or in the outputs remote, else generate."""
    facts = g.facts
    if facts.sidecar_identity == g.identity:
        reason: Reason = r.FoundOnDisk(len(facts.sidecar_files), g.gen.output_display)
        return g.decide("adopt", reason, task_id=facts.sidecar_task_id)
    stored = next((s for s in facts.remote_sidecars if s.identity == g.identity), None)
    if stored is not None:
        return g.decide("adopt", r.FoundInOutputsRemote(len(stored.files)), task_id=stored.task_id)
    if entry is None:
        return g.decide("create", r.NewGeneration(g.shape))
    retrained = tuple(
        m for m in g.gen.lora_models if g.names.get(m) and entry.models.get(m) and g.names.get(m) != entry.models.get(m)
    )
    if retrained:
        return g.decide("replace", r.ModelsRetrained(retrained), diff=True)
    return g.decide("replace", r.GenerationChanged(g.shape), diff=True)
