"""Pure: (desired, state, remote, outputs on disk) -> Plan. No files, no HTTP, no clock, no randomness.

Every decision of "only what's missing" lives here, as small functions per kind that read like the
tables of docs/ARCHITECTURE.md. The same inputs always give the same plan: anything from a set or a dict is sorted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.desired.resources import (
    Desired,
    DesiredGeneration,
    DesiredModel,
    address,
    matrix_address,
    sort_key,
)
from reconciler.load.matrix import normalise_address
from reconciler.observe.facts import Account, AccountTraining, OrphanFacts, OutputFacts, PruneFile
from reconciler.observe.runcache import Holding, RunCache
from reconciler.plan import reasons as r
from reconciler.plan.diff import AttrChange, diff_attributes
from reconciler.plan.freeactions import Free, Lookups, find_generation, find_training
from reconciler.plan.policy import SubmitPolicy
from reconciler.plan.reasons import Note, PlanWarning, Reason
from reconciler.state import ForgottenEntry, GenerationEntry, ModelEntry, ResourceEntry, State
from reconciler.status import NOT_FOUND, SUBMIT_UNRESOLVED, Status, generation_lost

Action = Literal["create", "replace", "resume", "adopt", "forget", "move", "copy"]


# ------------------------------------------------------------------------------------------ output


@dataclass(frozen=True)
class ResourceChange:
    address: str
    action: Action
    reason: Reason
    changes: tuple[AttrChange, ...] = ()
    notes: tuple[Note, ...] = ()
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    task_name: str | None = None  # LoraModel: the task to create, adopt or wait for
    task_id: str | None = None  # resume / adopt: the task to wait for or record
    model_name: str | None = None  # adopt: the trained model, when already known
    uploads: tuple[str, ...] = ()  # Dataset: image hashes its trainings will upload
    images: int = 0  # Generation: images it will produce
    # LoraModel create/replace: the ids of the account's tasks with this task name when planned (None: planned
    # offline). A look-up after an unanswered create never takes one of them for the task it made.
    known_tasks: tuple[str, ...] | None = None
    source: Holding | None = None  # move / copy: where the run's images come from (see plan.freeactions)

    @property
    def kind(self) -> str:
        return self.address.partition("/")[0]

    @property
    def name(self) -> str:
        return self.address.partition("/")[2]

    @property
    def paid(self) -> bool:
        """Carrying it out costs money on Novita (a training or a generation); everything else is free."""
        return self.reason.paid


@dataclass(frozen=True)
class RefreshSummary:
    pages: int
    tasks: int
    ours: int
    in_flight: int


@dataclass(frozen=True)
class Plan:
    changes: tuple[ResourceChange, ...]
    state_serial: int
    state_lineage: str
    desired_digest: str
    refresh: RefreshSummary | None = None
    targets: tuple[str, ...] = ()
    warnings: tuple[PlanWarning, ...] = ()  # what needs a person's decision
    # with an outputs remote: (address, images) of unchanged generations whose images only need copying, free
    fetches: tuple[tuple[str, int], ...] = ()  # in the remote, missing here: written into the output folder
    stores: tuple[tuple[str, int], ...] = ()  # here, missing in the remote: stored in it
    prune: bool = False  # --prune: `prunable` is part of the plan
    prunable: tuple[PruneFile, ...] = ()  # history and forgotten outputs `apply --prune` removes
    prune_kept: tuple[str, ...] = ()  # such files changed since they were written: never removed

    def get(self, addr: str) -> ResourceChange | None:
        for change in self.changes:
            if change.address == addr:
                return change
        return None

    @property
    def empty(self) -> bool:
        return not self.changes and not (self.prune and self.prunable)

    def count(self, kind: str, *actions: Action) -> int:
        return sum(1 for c in self.changes if c.kind == kind and c.action in actions)

    @property
    def uploads(self) -> int:
        return len({h for c in self.changes for h in c.uploads})

    @property
    def trainings(self) -> int:
        return self.count("LoraModel", "create", "replace")

    @property
    def waits(self) -> int:
        return sum(1 for c in self.changes if c.action == "resume")

    @property
    def adopts(self) -> int:
        return sum(1 for c in self.changes if c.action == "adopt")

    @property
    def generations(self) -> int:
        return self.count("Generation", "create", "replace")

    @property
    def generation_images(self) -> int:
        return sum(c.images for c in self.changes if c.kind == "Generation" and c.action in ("create", "replace"))

    @property
    def forgets(self) -> int:
        return sum(1 for c in self.changes if c.action == "forget")

    @property
    def fetch_images(self) -> int:
        return sum(n for _, n in self.fetches)

    @property
    def store_images(self) -> int:
        return sum(n for _, n in self.stores)


# ------------------------------------------------------------------------------------------ planner


@dataclass
class _Ctx:
    desired: Desired
    state: State
    remote: Account | None
    outputs: Mapping[str, OutputFacts]
    replace: frozenset[str] = frozenset()
    policy: SubmitPolicy = field(default_factory=SubmitPolicy)
    model_names: dict[str, str | None] = field(default_factory=dict)  # trained name usable now, or None
    model_actions: dict[str, Action | None] = field(default_factory=dict)
    warnings: list[PlanWarning] = field(default_factory=list)
    fetches: list[tuple[str, int]] = field(default_factory=list)
    stores: list[tuple[str, int]] = field(default_factory=list)
    look: Lookups = field(default_factory=Lookups)
    _trainings: dict[str, list[ResourceChange]] | None = None

    def trainings_by_dataset(self, changes: list[ResourceChange]) -> dict[str, list[ResourceChange]]:
        """The model creates/replaces among `changes`, by dataset, in order (computed once per plan)."""
        if self._trainings is None:
            self._trainings = {}
            for c in changes:
                if c.kind == "LoraModel" and c.action in ("create", "replace"):
                    self._trainings.setdefault(self.desired.models[c.name].dataset, []).append(c)
        return self._trainings


def plan(
    desired: Desired,
    state: State,
    remote: Account | None,
    outputs: Mapping[str, OutputFacts] | None = None,
    targets: Iterable[str] = (),
    replace: Iterable[str] = (),
    orphans: OrphanFacts | None = None,
    prune: bool = False,
    policy: SubmitPolicy | None = None,
    run_cache: RunCache | None = None,
) -> Plan:
    """The changes that make Novita and the outputs match the manifests.

    `remote` is None for an offline plan (`--no-refresh`): the state is then trusted as it is.
    `targets` limits the plan to those addresses (a matrix: all its members) and what they depend on;
    `replace` forces those resources to be trained or generated again even though nothing changed.
    `orphans` are the recorded history and forgotten outputs found on disk; with `prune` removing them is
    part of the plan, else the plan only counts them. `policy` says what to do with a generation whose
    submit got no answer (see `reconciler.plan.policy`). `run_cache` says where each identity is already held: a
    hit is a free action (`reconciler.plan.freeactions`), never a paid one.
    """
    ctx = _Ctx(
        desired, state, remote, outputs or {}, frozenset(desired.expand(list(replace))), policy or SubmitPolicy()
    )
    ctx.look.cache = run_cache or RunCache()
    targets = tuple(sorted(set(targets), key=sort_key))
    # a matrix stands for its members in the manifests, and itself for those only the state still holds
    chosen = {*map(normalise_address, targets), *desired.expand(list(targets))}
    scope = desired.closure([t for t in chosen if _desired_has(desired, t)]) if targets else None

    def targeted(addr: str) -> bool:
        return addr in chosen or matrix_address(addr) in chosen

    changes: list[ResourceChange] = []
    for name in sorted(desired.models):
        change = _plan_model(ctx, desired.models[name])
        ctx.model_actions[name] = change.action if change else None
        if scope is None or desired.models[name].address in scope:
            changes.extend([change] if change else [])
    for name in sorted(desired.generations):
        gen = desired.generations[name]
        if scope is None or gen.address in scope:
            change = _plan_generation(ctx, gen)
            changes.extend([change] if change else [])
    dataset_changes = [
        change
        for name in sorted(desired.datasets)
        if (scope is None or address("Dataset", name) in scope)
        and (change := _plan_dataset(ctx, name, changes)) is not None
    ]
    forgets = [
        _forget(addr, entry, prune)
        for addr, entry in sorted(state.resources.items(), key=lambda kv: sort_key(kv[0]))
        if not _desired_has(desired, addr)
        and not isinstance(entry, ForgottenEntry)
        and addr not in ctx.look.claimed  # moved to the address that now has its run
        and (scope is None or targeted(addr))
    ]
    ordered = sorted([*dataset_changes, *changes], key=lambda c: sort_key(c.address)) + forgets
    found = orphans or OrphanFacts()
    prunable = tuple(f for f in found.removable if scope is None or targeted(f.owner))
    return Plan(
        changes=tuple(ordered),
        state_serial=state.serial,
        state_lineage=state.lineage if state.serial else "",  # "" = no state file yet
        desired_digest=desired.digest(),
        refresh=_refresh_summary(ctx) if remote is not None else None,
        targets=targets,
        warnings=tuple(ctx.warnings),
        fetches=tuple(ctx.fetches),
        stores=tuple(ctx.stores),
        prune=prune,
        prunable=prunable,
        prune_kept=found.changed,
    )


def _desired_has(desired: Desired, addr: str) -> bool:
    kind, _, name = addr.partition("/")
    if kind == "Dataset":
        return name in desired.datasets
    if kind == "LoraModel":
        return name in desired.models
    return kind == "Generation" and name in desired.generations


def _refresh_summary(ctx: _Ctx) -> RefreshSummary:
    assert ctx.remote is not None
    ours_names = {m.task_name for m in ctx.desired.models.values()}
    ours_names |= {e.task_name for e in ctx.state.models() if e.task_name}
    ours = sum(1 for t in ctx.remote.trainings if t.task_name in ours_names)
    in_flight = sum(1 for e in ctx.state.models() if e.in_flight)
    return RefreshSummary(ctx.remote.pages, len(ctx.remote.trainings), ours, in_flight)


# --- LoraModel ---------------------------------------------------------------------------------------


def _plan_model(ctx: _Ctx, model: DesiredModel) -> ResourceChange | None:
    entry = ctx.state.model(model.name)
    after = model.attributes()
    before = entry.attributes if entry else None
    same = entry is not None and entry.identity == model.identity
    remote = ctx.remote
    found = remote.named(model.task_name) if remote is not None else []
    live = remote.live(model.task_name) if remote is not None else None

    uploads = tuple(sorted({i.sha256 for i in model.images if i.sha256 not in ctx.state.images}))

    known = tuple(sorted(t.task_id for t in found)) if remote is not None else None

    def change(action: Action, reason: Reason, **kw: Any) -> ResourceChange:
        diff = diff_attributes(before, after) if action == "replace" and not same else ()
        if action in ("create", "replace"):
            kw.setdefault("uploads", uploads)
            kw.setdefault("known_tasks", known)
        return ResourceChange(
            model.address,
            action,
            reason,
            changes=diff,
            before=before,
            after=after,
            task_name=model.task_name,
            **kw,
        )

    if model.address in ctx.replace and entry is not None and not entry.in_flight:
        ctx.model_names[model.name] = None
        kept: tuple[Note, ...] = (r.CurrentModelStays(entry.model_name),) if entry.model_name else ()
        return change("replace", r.RetrainRequested(model.task_name), notes=kept)
    if same and entry is not None:
        if entry.status == Status.SUCCEEDED:
            if remote is not None and entry.task_id and remote.by_id(entry.task_id) is None and live is None:
                ctx.model_names[model.name] = None
                return change("replace", r.TrainingMissing(entry.task_name, trained=True))
            ctx.model_names[model.name] = entry.model_name
            return None
        if entry.status in SUBMIT_UNRESOLVED:
            # A create of this definition got no answer (or an apply was killed while it was on the wire): the
            # name tells whether it landed. Not listed (yet: a listing may lag a create): apply looks it up again,
            # a few times, before it submits anything.
            if remote is None:  # offline: the state is trusted, apply looks the name up and never resubmits
                ctx.model_names[model.name] = None
                return change("resume", r.UnansweredLookup(model.task_name))
            made = remote.answer_to(model.task_name, entry.prior_tasks)
            ctx.model_names[model.name] = made.model_name if made is not None and made.succeeded else None
            if made is None:
                return change("create", r.UnansweredNotListed(model.task_name))
            if made.failed:
                return change("replace", r.TrainingEnded(made.task_name, made.status))
            if made.succeeded:
                return change(
                    "resume",
                    r.TrainingFinished(made.task_name, r.TaskStatus.of(made)),
                    task_id=made.task_id,
                    model_name=made.model_name,
                )
            return change("resume", r.UnansweredInFlight(made.task_name, r.TaskStatus.of(made)), task_id=made.task_id)
        if entry.in_flight:
            task = (remote.by_id(entry.task_id) if remote and entry.task_id else None) or live
            if remote is None:
                ctx.model_names[model.name] = None
                return change("resume", r.TrainingInFlight(model.task_name, None), task_id=entry.task_id)
            if task is None:
                ctx.model_names[model.name] = None
                return change("replace", r.TrainingMissing(model.task_name, trained=False))
            if task.failed:
                ctx.model_names[model.name] = None
                return change("replace", r.TrainingEnded(task.task_name, task.status))
            if task.succeeded:
                ctx.model_names[model.name] = task.model_name
                return change(
                    "resume",
                    r.TrainingFinished(task.task_name, r.TaskStatus.of(task)),
                    task_id=task.task_id,
                    model_name=task.model_name,
                )
            ctx.model_names[model.name] = None
            return change("resume", r.TrainingInFlight(task.task_name, r.TaskStatus.of(task)), task_id=task.task_id)
        # failed before, same definition
        if live is not None:
            return _adopt(ctx, model, live, before, after)
        ctx.model_names[model.name] = None
        return change("replace", r.PreviousTrainingFailed(entry.task_name, entry.reason, model.task_name))

    if live is not None:
        return _adopt(ctx, model, live, before, after)
    held = find_training(ctx.look.cache, model.identity, model.task_name)
    if held is not None:  # trained before under another name (a renamed LoraModel): its own training
        ctx.model_names[model.name] = held.model_name if held.succeeded else None
        return ResourceChange(
            model.address,
            "adopt",
            r.TrainedUnderAnotherName(held.task_name, held.source, held.succeeded),
            before=before,
            after=after,
            task_name=held.task_name,
            task_id=held.task_id,
            model_name=ctx.model_names[model.name],
        )
    ctx.model_names[model.name] = None
    notes: tuple[Note, ...] = ()
    if found:
        notes = (r.EarlierTrainingEnded(found[0].task_name, found[0].status),)
    if entry is None:
        return change("create", r.NewTraining(model.task_name, len(model.images)), notes=notes)
    diff = diff_attributes(before, after)
    only_images = all(c.path == "images" for c in diff)
    why: Reason = (
        r.DatasetChanged(model.dataset, model.task_name)
        if only_images and diff
        else r.DefinitionChanged(model.task_name)
    )
    if entry.model_name:
        notes += (r.OldModelStays(entry.model_name),)
    return ResourceChange(
        model.address,
        "replace",
        why,
        changes=diff,
        notes=notes,
        before=before,
        after=after,
        task_name=model.task_name,
        uploads=uploads,
    )


def _adopt(
    ctx: _Ctx, model: DesiredModel, task: AccountTraining, before: dict[str, Any] | None, after: dict[str, Any]
) -> ResourceChange:
    ctx.model_names[model.name] = task.model_name if task.succeeded else None
    return ResourceChange(
        model.address,
        "adopt",
        r.FoundInAccount(task.task_name, r.TaskStatus.of(task), finished=task.succeeded),
        before=before,
        after=after,
        task_name=model.task_name,
        task_id=task.task_id,
        model_name=task.model_name if task.succeeded else None,
    )


# --- Generation --------------------------------------------------------------------------------------


def _plan_generation(ctx: _Ctx, gen: DesiredGeneration) -> ResourceChange | None:
    entry = ctx.state.generation(gen.name)
    names = {m: ctx.model_names.get(m) for m in gen.lora_models}
    identity = gen.identity(names)
    after = gen.attributes(names)
    before = entry.attributes if entry else None
    facts = ctx.outputs.get(gen.address, OutputFacts(files_intact=False))
    shape = r.Shape(gen.image_num, gen.task_type, gen.request.get("width", 512), gen.request.get("height", 512))

    def change(action: Action, reason: Reason, *, diff: bool = False, **kw: Any) -> ResourceChange:
        free = _free(ctx, gen, identity) if action in ("create", "replace") else None
        if free is not None:  # held already: never paid again
            action, reason, kw = free.action, free.reason, {"source": free.source}
            diff = diff and entry is not None and entry.identity != identity
        changes = diff_attributes(before, after) if diff else ()
        images = gen.image_num if action in ("create", "replace") else 0
        notes: tuple[Note, ...] = ()
        if action in ("create", "replace", "copy"):
            if entry is not None and entry.files and len(entry.files) > facts.missing:
                notes = (r.CurrentImagesToHistory(len(entry.files) - facts.missing),)
            elif entry is None and facts.sidecar_files:
                notes = (r.FolderImagesToHistory(len(facts.sidecar_files), gen.output_display),)
        return ResourceChange(
            gen.address, action, reason, changes=changes, before=before, after=after, images=images, notes=notes, **kw
        )

    if identity is None:
        pending = tuple(m for m in gen.lora_models if not names.get(m))
        verbs = {ctx.model_actions.get(m) for m in pending}
        if entry is None:
            return change("create", r.WaitsForModels(shape, pending))
        return change("replace", r.ModelsPending(pending, retrained=verbs <= {"replace", "create"}), diff=True)

    if gen.address in ctx.replace and entry is not None and entry.status != Status.RUNNING:
        return change("replace", r.RunAgainRequested(shape))
    if entry is not None and entry.identity == identity:
        if entry.status == Status.SUCCEEDED:
            if entry.output is not None and entry.output != gen.output_display and facts.sidecar_identity == identity:
                return change("adopt", r.FoundOnDisk(len(facts.sidecar_files), gen.output_display))
            if entry.output is not None and entry.output != gen.output_display:
                held = len(entry.files) or gen.image_num  # missing where declared; a move when held elsewhere
                return change("replace", r.ImagesMissing(held, held, gen.output_display))
            if not entry.files and entry.history:
                return change("replace", r.StoppedAfterHistory(shape))
            if facts.files_intact:
                if facts.remote and not facts.in_remote:
                    ctx.stores.append((gen.address, len(entry.files)))
                return None
            if facts.in_remote:  # done: the remote holds its images; copying them here is free
                ctx.fetches.append((gen.address, facts.missing))
                return None
            return change(
                "replace", r.ImagesMissing(facts.missing, len(entry.files) or gen.image_num, gen.output_display)
            )
        if entry.status == Status.RUNNING and entry.task_id:
            seen = ctx.remote.generations.get(entry.task_id) if ctx.remote is not None else None
            if seen is None or not generation_lost(seen.status):
                status, progress = (seen.status, seen.progress) if seen else (None, None)
                return change("resume", r.GenerationInFlight(entry.task_id, status, progress), task_id=entry.task_id)
            if seen.status == NOT_FOUND:
                return change("replace", r.GenerationVanished(entry.task_id))
            return change("replace", r.GenerationFailed(entry.task_id, seen.reason))
        if entry.status in SUBMIT_UNRESOLVED:
            # Novita cannot list generation tasks, so nobody can tell whether the unanswered submit ran: the
            # policy decides (reconciler.plan.policy), never a guess.
            if ctx.policy.for_generation(gen) == "resubmit":
                return change("replace", r.UnansweredResubmit())
            ctx.warnings.append(r.HeldUnanswered(gen.address))
            return None
        return change("replace", r.PreviousRunFailed(entry.reason))

    if facts.sidecar_identity == identity:
        return change(
            "adopt", r.FoundOnDisk(len(facts.sidecar_files), gen.output_display), task_id=facts.sidecar_task_id
        )
    stored = next((s for s in facts.remote_sidecars if s.identity == identity), None)
    if stored is not None:
        return change("adopt", r.FoundInOutputsRemote(len(stored.files)), task_id=stored.task_id)
    if entry is None:
        return change("create", r.NewGeneration(shape))
    changed_models = tuple(
        m for m in gen.lora_models if names.get(m) and entry.models.get(m) and names.get(m) != entry.models.get(m)
    )
    if changed_models:
        return change("replace", r.ModelsRetrained(changed_models), diff=True)
    return change("replace", r.GenerationChanged(shape), diff=True)


def _free(ctx: _Ctx, gen: DesiredGeneration, identity: str | None) -> Free | None:
    """The free action for a generation about to be paid for, if the run cache holds its identity."""
    if identity is None or gen.address in ctx.replace:
        return None
    return find_generation(ctx.look, gen, identity, lambda a: _desired_has(ctx.desired, a))


# --- Dataset -----------------------------------------------------------------------------------------


def _plan_dataset(ctx: _Ctx, name: str, changes: list[ResourceChange]) -> ResourceChange | None:
    """A Dataset has nothing remote of its own: its line says what its trainings will upload."""
    dataset = ctx.desired.datasets[name]
    entry = ctx.state.dataset(name)
    if entry is not None and entry.identity == dataset.identity:
        return None
    training = ctx.trainings_by_dataset(changes).get(name, [])
    needed = {i.sha256 for c in training for i in ctx.desired.models[c.name].images}
    uploads = tuple(sorted({h for c in training for h in c.uploads}))
    changed = entry is not None
    reason: Reason
    if uploads:
        reason = r.UploadsNeeded(len(uploads), len(needed) - len(uploads), changed)
    elif training:
        reason = r.AllUploaded(len(needed), changed)
    else:
        reason = r.NothingToUpload(len(dataset.images), changed)
    after = dataset.attributes()
    if entry is None:
        return ResourceChange(dataset.address, "create", reason, after=after, uploads=uploads)
    return ResourceChange(
        dataset.address,
        "replace",
        reason,
        changes=diff_attributes(entry.attributes, after),
        before=entry.attributes,
        after=after,
        uploads=uploads,
    )


# --- forget ------------------------------------------------------------------------------------------


def _forget(addr: str, entry: ResourceEntry, prune: bool) -> ResourceChange:
    reason: Reason
    if isinstance(entry, ModelEntry):
        reason = r.ForgetModel(entry.task_name, entry.model_name, entry.in_flight)
    elif isinstance(entry, GenerationEntry):
        reason = r.ForgetGeneration(len(entry.files), prune)
    else:
        reason = r.ForgetDataset()
    return ResourceChange(addr, "forget", reason, before=entry.attributes)
