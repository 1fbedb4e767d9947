"""Observe the run cache: where each identity the next plan may pay for is already held.

Reads only what a look-up can need: the identities of the manifests' generations that their own entry does not
already hold where they are declared. A converged project reads nothing more than the plan already did. Files are
hash-checked through the stat cache; the outputs remote is read from its index (two listings) and one sidecar per
identity looked up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.desired.hashing import HashCache
from reconciler.desired.resources import Desired
from reconciler.filenames import HISTORY
from reconciler.observe.facts import Account, OutputFacts
from reconciler.observe.runcache import Holding, RunCache, TrainingHolding, run_cache, task_hash
from reconciler.outputs.sidecar import BadSidecar
from reconciler.state import FileRecord, State
from reconciler.status import Status

if TYPE_CHECKING:
    from reconciler.outputs.store import OutputsRemote, RemoteIndex

REMOTE = "the outputs remote"


def observe_run_cache(
    desired: Desired,
    state: State,
    cache: HashCache,
    root: Path,
    outputs: Mapping[str, OutputFacts],
    account: Account | None = None,
    remote: OutputsRemote | None = None,
    identities: Iterable[str] | None = None,
) -> RunCache:
    """The run cache for planning `desired` against `state`: trainings from the state and the account's listing,
    generation runs from the state's records, the output folders and the outputs remote.

    Generation runs are looked up for the identities a plan may pay for (those the manifests' generations' own
    entries do not hold where declared), or for exactly `identities` when given (`explain` asks for one)."""
    trainings = training_holdings(state, account)
    names = model_names(desired, run_cache((), trainings), state)
    wanted = set(identities) if identities is not None else wanted_identities(desired, state, outputs, names)
    if not wanted:
        return run_cache((), trainings)
    found = [*_recorded(state, wanted), *_folders(desired, state, root, wanted, cache)]
    checked = _verified(found, cache, root)
    checked += _sidecars(desired, outputs, wanted)
    local = {h.identity for h in checked}
    if remote is not None and wanted - local:  # two listings, only when something is wanted that is not here
        checked += _remote(remote, remote.index(), wanted, local)
    return run_cache(checked, trainings)


def training_holdings(state: State, account: Account | None) -> list[TrainingHolding]:
    out = [
        TrainingHolding(
            e.identity,
            "state",
            e.address,
            e.task_name or "",
            e.task_id,
            e.model_name,
            e.status == Status.SUCCEEDED and bool(e.model_name),
            e.status == Status.FAILED,
        )
        for e in state.models()
        if e.task_name
    ]
    for t in account.trainings if account is not None else ():
        short = task_hash(t.task_name)
        if short is not None:
            held = TrainingHolding(short, "account", t.task_name, t.task_name, t.task_id, t.model_name, t.succeeded)
            out.append(replace(held, failed=t.failed))
    return out


def model_names(desired: Desired, trainings: RunCache, state: State) -> dict[str, str | None]:
    """The trained model name each desired LoraModel would use without training: its own entry's, or that of a
    training of the same identity (a renamed model adopts its own training)."""
    names: dict[str, str | None] = {}
    for name, model in desired.models.items():
        entry = state.model(name)
        if entry is not None and entry.identity == model.identity and entry.model_name:
            names[name] = entry.model_name
            continue
        held = next((t for t in trainings.training(model.identity) if t.succeeded and t.model_name), None)
        names[name] = held.model_name if held is not None else None
    return names


def wanted_identities(
    desired: Desired, state: State, outputs: Mapping[str, OutputFacts], names: Mapping[str, str | None]
) -> set[str]:
    """The identities of the generations whose own entry does not hold them where they are declared."""
    wanted: set[str] = set()
    for gen in desired.generations.values():
        identity = gen.identity({m: names.get(m) for m in gen.lora_models})
        if identity is None:
            continue
        entry = state.generation(gen.name)
        facts = outputs.get(gen.address)
        if (
            entry is not None
            and entry.identity == identity
            and entry.status == Status.SUCCEEDED
            and entry.output == gen.output_display
            and facts is not None
            and facts.files_intact
        ):
            continue
        wanted.add(identity)
    return wanted


def _files(records: Iterable[FileRecord]) -> tuple[tuple[str, str], ...]:
    return tuple((f.path, f.sha256) for f in records)


def _recorded(state: State, wanted: set[str]) -> list[Holding]:
    """What the state records, current, replaced or forgotten (not yet checked on disk)."""
    out: list[Holding] = []
    for e in state.generations():
        if e.identity in wanted and e.status == Status.SUCCEEDED and e.files:
            out.append(Holding(e.identity, "state", e.address, _files(e.files), e.output or "", e.task_id, e.seed))
        for r in e.history:
            if r.identity in wanted and r.files:
                out.append(Holding(r.identity, "history", e.address, _files(r.files), r.folder, r.task_id, r.seed))
    by_prefix = {i[:12]: i for i in wanted}
    for f in state.forgotten():
        groups: dict[str, list[FileRecord]] = {}
        for record in f.files:
            if record.path.endswith(".json"):
                continue
            parent = Path(record.path).parent
            identity = by_prefix.get(parent.name[:12]) if parent.parent.name == HISTORY else f.identity
            if identity is not None and identity in wanted:
                groups.setdefault(identity, []).append(record)
        for identity, records in groups.items():
            folder = Path(records[0].path).parent.as_posix()
            out.append(Holding(identity, "forgotten", f.owner, _files(records), folder))
    return out


def _folders(desired: Desired, state: State, root: Path, wanted: set[str], cache: HashCache) -> list[Holding]:
    """History folders on disk that no record names (a fresh clone, a lost state): `history/<12 hex>[-n]/`
    in the output folders of the manifests and the state, whose sidecar records a wanted identity."""
    from reconciler.outputs.folders import recorded_history

    by_prefix = {i[:12]: i for i in wanted}
    folders: dict[Path, tuple[str, str]] = {}  # output folder -> (owner, stem)
    for gen in desired.generations.values():
        folders.setdefault(gen.output_dir, (gen.address, gen.stem))
    for e in state.generations():
        if e.output:
            folders.setdefault(root / e.output, (e.address, e.stem))
    out: list[Holding] = []
    for folder, (owner, stem) in sorted(folders.items()):
        base = folder / HISTORY
        try:
            names = [p.name for p in base.iterdir() if p.name[:12] in by_prefix]
        except OSError:
            continue
        if not names:
            continue
        for record in recorded_history(root, folder, stem, owner.partition("/")[2], cache, only=names):
            if record.identity in wanted:
                files = _files(record.files)
                where = record.folder
                out.append(Holding(record.identity, "history", owner, files, where, record.task_id, record.seed))
    return out


def _verified(found: list[Holding], cache: HashCache, root: Path) -> list[Holding]:
    """The holdings whose every file is on disk with its recorded hash (one parallel pass over the stat cache)."""
    paths = {root / p for h in found for p, _ in h.files}
    present = [p for p in paths if p.is_file()]
    hashes = cache.hash_many(present) if present else {}
    return [h for h in found if all(hashes.get(root / p) == digest for p, digest in h.files)]


def _sidecars(desired: Desired, outputs: Mapping[str, OutputFacts], wanted: set[str]) -> list[Holding]:
    """The manifests' output folders whose sidecar (images verified when observed) records a wanted identity."""
    out: list[Holding] = []
    for gen in desired.generations.values():
        facts = outputs.get(gen.address)
        if facts is not None and facts.sidecar_identity in wanted and facts.sidecar_files:
            files = tuple(facts.sidecar_files)
            out.append(
                Holding(
                    facts.sidecar_identity or "",
                    "folder",
                    gen.address,
                    files,
                    gen.output_display,
                    facts.sidecar_task_id,
                    facts.sidecar_seed,
                )
            )
    return out


def _remote(remote: OutputsRemote, index: RemoteIndex, wanted: set[str], local: set[str]) -> list[Holding]:
    """Runs the outputs remote holds whole, for the wanted identities nothing local holds: one sidecar read each."""
    by_identity: dict[str, list[str]] = {}
    for name, identity in sorted(index.sidecars):
        if identity in wanted and identity not in local:
            by_identity.setdefault(identity, []).append(name)
    out: list[Holding] = []
    for identity, names in sorted(by_identity.items()):
        for name in names:
            holding = _remote_run(remote, index, name, identity)
            if holding is not None:
                out.append(holding)
                break
    return out


def _remote_run(remote: OutputsRemote, index: RemoteIndex, name: str, identity: str) -> Holding | None:
    try:
        record = remote.read_sidecar(name, identity)
    except BadSidecar:  # the plan's observation names it (a warning); it holds nothing here
        return None
    files = tuple((i.file, i.sha256) for i in record.images) if record is not None else ()
    if record is None or not files or not all(h in index.hashes for _, h in files):
        return None
    return Holding(identity, "remote", f"Generation/{name}", files, REMOTE, record.task_id, record.seed)
