"""Generation outputs on disk: what is there (for the planner), and writing images and sidecars.

Each generation's folder holds `<name>-<n>.<ext>` images and a `<name>.reconciler.json` sidecar with the
exact request, the seed, the identity hash and each image's sha256, so that after a state loss a
generation whose images are still on disk is adopted, not paid for again. (A matrix member's folder is
`<output>/<label>=<value>,...` and its files are named after the matrix.)

When a generation is replaced, its previous images and sidecar move aside into
`<output>/history/<first 12 hex of the old identity>/`: paid images are never overwritten. History and the
files of forgotten generations stay recorded in the state until `apply --prune` removes them, and only
files whose content still has the recorded hash are ever removed.
"""

from __future__ import annotations

import contextlib
import os
import struct
import zlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.desired.hashing import HashCache, sha256_file
from reconciler.desired.resources import Desired, DesiredGeneration
from reconciler.filenames import HISTORY
from reconciler.files import atomic_write, display_path, fsync_dir, remove_partials
from reconciler.load.imagetype import file_extension
from reconciler.observe.facts import OrphanFacts, OutputFacts, PruneFile, RemoteSidecar, SkippedRecord
from reconciler.outputs.guard import OutputFolder, UnsafePath, inside_output
from reconciler.outputs.sidecar import BadSidecar, Sidecar, read_local, sidecar_name
from reconciler.state import FileRecord, GenerationEntry, HistoryRecord, State, now_iso

if TYPE_CHECKING:
    from reconciler.outputs.store import OutputsRemote, RemoteIndex


def sidecar_path(gen: DesiredGeneration) -> Path:
    return inside_output(gen.output_dir, sidecar_name(gen.stem))


def image_path(gen: DesiredGeneration, index: int, ext: str) -> Path:
    return inside_output(gen.output_dir, f"{gen.stem}-{index + 1}.{file_extension(ext)}")


def untrusted(state: State, outputs: Mapping[str, OutputFacts]) -> list[SkippedRecord]:
    """The plan's warnings for every record read that failed a check: the state's entries, then the sidecars."""
    found = [
        SkippedRecord(f"the state's entry {s.address} ({s.field})", s.problem, s.address.removeprefix("Forgotten/"))
        for s in state.skipped
    ]
    return found + [w for facts in outputs.values() for w in facts.warnings]


def observe(
    desired: Desired,
    state: State,
    cache: HashCache,
    project_root: Path,
    remote: OutputsRemote | None = None,
) -> dict[str, OutputFacts]:
    """For every desired generation: are the files the state records intact, what the sidecar says, and (with an
    outputs remote) whether the remote holds them: two listings, plus one sidecar read per generation the state
    does not know (after a state loss)."""
    index = remote.index() if remote is not None else None
    facts: dict[str, OutputFacts] = {}
    for gen in desired.generations.values():
        entry = state.generation(gen.name)
        recorded = [(project_root / f.path, f.sha256) for f in entry.files] if entry else []
        intact, missing = _check(recorded, cache)
        warnings: list[SkippedRecord] = []
        stored: tuple[RemoteSidecar, ...] = ()
        folder = OutputFolder(gen.output_dir)  # checked once for the sidecar and its images
        sidecar = _local_sidecar(gen, folder, project_root, warnings)
        side_files: tuple[tuple[str, str], ...] = ()
        if sidecar is not None:
            files = sidecar.files(folder)
            if _check(files, cache)[0]:
                side_files = tuple((display_path(p, project_root), h) for p, h in files)
            else:
                sidecar = None
        in_remote = False
        if remote is not None and index is not None:
            in_remote, stored = _remote_facts(gen, entry, remote, index, project_root, warnings)
        facts[gen.address] = OutputFacts(
            files_intact=bool(recorded) and intact,
            missing=missing,
            sidecar_identity=sidecar.identity if sidecar else None,
            sidecar_files=side_files,
            sidecar_task_id=sidecar.task_id if sidecar else None,
            sidecar_seed=sidecar.seed if sidecar else None,
            remote=remote is not None,
            in_remote=in_remote,
            remote_sidecars=stored,
            warnings=tuple(warnings),
        )
    return facts


def _local_sidecar(
    gen: DesiredGeneration, folder: OutputFolder, root: Path, warnings: list[SkippedRecord]
) -> Sidecar | None:
    """The sidecar in the generation's output folder, checked; None (with a warning when it is not one reconciler
    could have written) when there is none to use."""
    try:
        return read_local(folder.path(sidecar_name(gen.stem)), gen.name)
    except OSError:
        return None
    except (BadSidecar, UnsafePath) as exc:
        where = display_path(gen.output_dir / sidecar_name(gen.stem), root)
        warnings.append(SkippedRecord(f"the sidecar {where}", exc.problem, gen.address))
        return None


def _remote_facts(
    gen: DesiredGeneration,
    entry: GenerationEntry | None,
    remote: OutputsRemote,
    index: RemoteIndex,
    project_root: Path,
    warnings: list[SkippedRecord],
) -> tuple[bool, tuple[RemoteSidecar, ...]]:
    """The remote's side of one generation: does it hold the state's run; if not, the runs it holds whose images
    are all there (candidates for adoption: the planner compares their identity with the desired one). A sidecar
    that fails a check is left out, with a warning naming its object."""
    held = entry is not None and bool(entry.files) and (gen.name, entry.identity) in index.sidecars
    if held and entry is not None and all(f.sha256 in index.hashes for f in entry.files):
        return True, ()
    sidecars: list[RemoteSidecar] = []
    for identity in index.identities(gen.name):
        try:
            record = remote.read_sidecar(gen.name, identity)
            files = record.files(OutputFolder(gen.output_dir)) if record is not None else []
        except (BadSidecar, UnsafePath) as exc:
            where = f"the outputs remote's object {remote.shown_key(gen.name, identity)}"
            warnings.append(SkippedRecord(where, exc.problem, gen.address))
            continue
        if record is not None and all(h in index.hashes for _, h in files):
            shown = tuple((display_path(p, project_root), h) for p, h in files)
            sidecars.append(RemoteSidecar(identity, shown, record.task_id, record.seed))
    return False, tuple(sidecars)


def _check(files: list[tuple[Path, str]], cache: HashCache) -> tuple[bool, int]:
    present = [p for p, _ in files if p.is_file()]
    hashes = cache.hash_many(present) if present else {}
    missing = sum(1 for p, h in files if hashes.get(p) != h)
    return missing == 0, missing


def write_sidecar(gen: DesiredGeneration, record: Sidecar) -> None:
    """Atomically write the generation's sidecar (clearing the temporary file of a write a kill cut short;
    apply holds the state lock, so no other process is writing it)."""
    path = sidecar_path(gen)
    remove_partials(path)
    atomic_write(path, record.to_json())


def add_png_parameters(path: Path, text: str) -> str:
    """Insert a `parameters` tEXt chunk after IHDR (the convention image viewers read), atomically.

    Returns the new sha256. Non-PNG files are left as they are.
    """
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR":
        return sha256_file(path)
    ihdr_end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4
    payload = b"parameters\x00" + text.encode("latin-1", "replace")
    chunk = struct.pack(">I", len(payload)) + b"tEXt" + payload
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + payload) & 0xFFFFFFFF)
    atomic_write(path, data[:ihdr_end] + chunk + data[ihdr_end:])
    return sha256_file(path)


def remove_files(files: list[tuple[Path, str]]) -> tuple[int, int]:
    """--prune: delete files whose content still has the recorded hash. Returns (removed, kept)."""
    removed = kept = 0
    for path, digest in files:
        try:
            if path.is_file() and sha256_file(path) == digest:
                path.unlink()
                removed += 1
            elif path.exists():
                kept += 1
        except OSError:
            kept += 1
    return removed, kept


# ------------------------------------------------------------------------------------------ history


def move_aside(root: Path, entry: GenerationEntry | None, previous: OldOutputs) -> HistoryRecord | None:
    """Move a generation's previous images and sidecar into its history folder; None when none are there.

    Idempotent: a file already moved (by an apply killed before it recorded the move) is found in the
    history folder by its hash. A folder of the same identity holding other files gets a `-2` suffix.
    """
    if not previous.files:
        return None
    base = previous.folder / HISTORY / previous.identity[:12]
    names = [(Path(f.path).name, f.sha256) for f in previous.files]
    folder = _free_folder(base, names)
    sidecar = inside_output(previous.folder, sidecar_name(previous.stem))

    def aside(name: str) -> Path:
        return inside_output(previous.folder, f"{HISTORY}/{folder.name}/{name}")

    moved: list[FileRecord] = []
    for record in previous.files:
        src = inside_output(previous.folder, Path(record.path).name)
        dst = aside(src.name)
        if dst.is_file() and sha256_file(dst) == record.sha256:
            moved.append(FileRecord(path=display_path(dst, root), sha256=record.sha256))
        elif src.is_file():
            digest = sha256_file(src)
            dst.parent.mkdir(parents=True, exist_ok=True)  # the guarded path's folder, never another
            os.replace(src, dst)
            moved.append(FileRecord(path=display_path(dst, root), sha256=digest))
    if not moved:
        return None
    kept_sidecar = None
    dst = aside(sidecar.name)
    if sidecar.is_file():
        os.replace(sidecar, dst)
    if dst.is_file():  # moved now, or by a run a kill cut short
        kept_sidecar = FileRecord(path=display_path(dst, root), sha256=sha256_file(dst))
    fsync_dir(folder)
    fsync_dir(previous.folder)
    return HistoryRecord(
        identity=previous.identity,
        folder=display_path(folder, root),
        files=moved,
        sidecar=kept_sidecar,
        attributes=entry.attributes if entry is not None else {},
        task_id=entry.task_id if entry is not None else previous.task_id,
        seed=entry.seed if entry is not None else previous.seed,
        replaced_at=now_iso(),
    )


@dataclass(frozen=True)
class OldOutputs:
    """The images a generation had before it was replaced: from its state entry, or from its sidecar."""

    folder: Path  # its output folder
    stem: str  # what its files are named after
    identity: str
    files: list[FileRecord]
    task_id: str | None = None
    seed: str | None = None


def _free_folder(base: Path, files: list[tuple[str, str]]) -> Path:
    """`base`, or `base-2`, `base-3`...: the first whose files of these names are absent or these very files."""
    n = 1
    while True:
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        clash = any((folder / name).is_file() and sha256_file(folder / name) != digest for name, digest in files)
        if not clash:
            return folder
        n += 1


def sidecar_of(root: Path, entry: GenerationEntry) -> Path | None:
    """The sidecar file a generation entry's images have, if its output folder is known."""
    if entry.output is None:
        return None
    return root / entry.output / sidecar_name(entry.stem)


# ------------------------------------------------------------------------------------------ prune


def observe_orphans(desired: Desired, state: State, cache: HashCache, root: Path) -> OrphanFacts:
    """The history of every generation and the outputs of forgotten ones, as found on disk now."""
    candidates: list[tuple[str, str, str, str]] = []  # (path, sha256, owner, what)
    for entry in sorted(state.generations(), key=lambda e: e.address):
        for record in entry.history:
            for f in [*record.files, *([record.sidecar] if record.sidecar else [])]:
                candidates.append((f.path, f.sha256, entry.address, "history"))
        if entry.name not in desired.generations:
            candidates += [(f.path, f.sha256, entry.address, "forgotten") for f in entry.files]
            sidecar = sidecar_of(root, entry)
            if sidecar is not None and _sidecar_identity(sidecar, entry.name) == entry.identity:
                candidates.append((display_path(sidecar, root), cache.hash(sidecar), entry.address, "forgotten"))
    for forgotten in state.forgotten():
        candidates += [(f.path, f.sha256, forgotten.owner, "forgotten") for f in forgotten.files]
    # a file in the output folder of a generation of the manifests is that generation's (to adopt, or to move to
    # its history when it runs): never one to prune, whatever an older record says
    kept_folders = {display_path(g.output_dir, root) for g in desired.generations.values()}
    candidates = [c for c in candidates if c[3] == "history" or c[0].rpartition("/")[0] not in kept_folders]
    present = [root / path for path, *_ in candidates if (root / path).is_file()]
    hashes = cache.hash_many(present) if present else {}
    removable: list[PruneFile] = []
    changed: list[str] = []
    seen: set[str] = set()
    for path, digest, owner, what in candidates:
        full = root / path
        if path in seen or full not in hashes:
            continue
        seen.add(path)
        if hashes[full] == digest:
            removable.append(PruneFile(path, digest, full.stat().st_size, owner, what))
        else:
            changed.append(path)
    return OrphanFacts(tuple(removable), tuple(changed))


def _sidecar_identity(path: Path, generation: str) -> str | None:
    try:
        return read_local(path, generation).identity
    except (OSError, BadSidecar):
        return None


def forget_outputs(root: Path, entry: GenerationEntry) -> list[FileRecord]:
    """Every file a forgotten generation leaves on disk and on record: images, history, sidecars."""
    files = list(entry.files)
    for record in entry.history:
        files += [*record.files, *([record.sidecar] if record.sidecar else [])]
    sidecar = sidecar_of(root, entry)
    if sidecar is not None and sidecar.is_file() and _sidecar_identity(sidecar, entry.name) == entry.identity:
        files.append(FileRecord(path=display_path(sidecar, root), sha256=sha256_file(sidecar)))
    return files


def prune(root: Path, state: State, chosen: Iterable[PruneFile]) -> tuple[int, int]:
    """`apply --prune`: remove the chosen files whose content still has the recorded hash, and drop from the
    records every file removed or already gone. Returns (removed, kept because changed)."""
    wanted = {(f.path, f.sha256) for f in chosen}
    removed, kept = remove_files([(root / path, digest) for path, digest in sorted(wanted)])
    folders: set[Path] = set()

    def keep(record: FileRecord) -> bool:
        full = root / record.path
        if full.is_file():
            return True
        folders.add(full.parent)
        return False

    for entry in state.generations():  # changed by assignment only: a backend writes what was assigned
        history = []
        for record in entry.history:
            files = [f for f in record.files if keep(f)]
            sidecar = record.sidecar if record.sidecar is not None and keep(record.sidecar) else None
            if files != record.files or sidecar is not record.sidecar:
                record = record.model_copy(update={"files": files, "sidecar": sidecar})
            if record.files or record.sidecar is not None:
                history.append(record)
        if history != entry.history:
            entry.history = history
    for forgotten in state.forgotten():
        files = [f for f in forgotten.files if keep(f)]
        if not files:
            del state.resources[forgotten.address]
        elif files != forgotten.files:
            forgotten.files = files
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        # the folders reconciler made that are now empty: history/<identity>, history/, an output folder
        emptied = (folder, folder.parent) if folder.parent.name == HISTORY else (folder,)
        for empty in emptied:
            if empty != root and empty.is_relative_to(root):
                with contextlib.suppress(OSError):
                    empty.rmdir()
    return removed, kept


def recorded_history(
    root: Path, output_dir: Path, stem: str, name: str, cache: HashCache, only: Collection[str] | None = None
) -> list[HistoryRecord]:
    """The history folders in `output_dir` (of Generation/`name`, its files named after `stem`) whose sidecar's
    images are all there, unchanged: after a state loss, or for the run cache on a fresh clone (`only`: the
    names of the folders to look in, the others not read)."""
    records: list[HistoryRecord] = []
    base = output_dir / HISTORY
    if not base.is_dir():
        return records
    guarded = OutputFolder(output_dir)
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and (only is None or p.name in only)):
        try:
            sidecar = guarded.path(f"{HISTORY}/{folder.name}/{sidecar_name(stem)}")
            found = read_local(sidecar, name)
            files = [(guarded.path(f"{HISTORY}/{folder.name}/{i.file}"), i.sha256) for i in found.images]
        except (OSError, BadSidecar, UnsafePath):
            continue  # not a history folder reconciler wrote: left alone, not on record
        if not _check(files, cache)[0]:
            continue
        request = (found.request or {}).get("request")
        records.append(
            HistoryRecord(
                identity=found.identity,
                folder=display_path(folder, root),
                files=[FileRecord(path=display_path(p, root), sha256=h) for p, h in files],
                sidecar=FileRecord(path=display_path(sidecar, root), sha256=cache.hash(sidecar)),
                attributes={"type": found.task_type or "txt2img", **(request if isinstance(request, dict) else {})},
                task_id=found.task_id,
                seed=found.seed,
                replaced_at=found.written_at,
            )
        )
    return records
