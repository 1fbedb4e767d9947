"""Free actions: a generation's run copied or moved into its declared folder from where the project holds it.

Each image is hash-checked at its source and written through `outputs.place` (atomic, never over other content:
the folder's current images first move to its history, as before a paid run). The state is committed once the
images and the sidecar are in place; a move then removes its sources (still hash-checked). A kill at any point
leaves every image in at least one recorded place: the next plan finds it again by its identity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from reconciler.apply.context import Run
from reconciler.apply.generations import Generator, run_entry
from reconciler.apply.outcome import BadRecord, CopySourceLost, ResourceFailed
from reconciler.desired.hashing import sha256_file
from reconciler.desired.resources import DesiredGeneration
from reconciler.errors import StateError
from reconciler.filenames import SIDECAR_SUFFIX, path_problem
from reconciler.files import display_path
from reconciler.observe.runcache import Holding
from reconciler.outputs.folders import image_path, write_sidecar
from reconciler.outputs.guard import UnsafePath
from reconciler.outputs.place import place_file
from reconciler.outputs.sidecar import BadSidecar, Sidecar, read_local
from reconciler.plan.changes import ResourceChange
from reconciler.state import FileRecord, GenerationEntry, HistoryRecord, now_iso
from reconciler.status import Status
from reconciler.text import plural


class Copier:
    def __init__(self, run: Run, generator: Generator, paying: Mapping[str, asyncio.Task[None]]) -> None:
        self.run = run
        self.generator = generator
        self.paying = paying  # address -> the work of a generation this apply pays for (a "plan" source)

    async def apply(self, change: ResourceChange) -> None:
        try:
            await self._apply(change)
        except UnsafePath as exc:  # the record it moves from names a folder nothing may be written in or out of
            assert change.source is not None
            raise StateError(
                f"the state's entry {change.source.owner} (output): {exc.problem}; nothing was written"
            ) from None

    async def _apply(self, change: ResourceChange) -> None:
        run = self.run
        gen = run.desired.generations[change.name]
        names: dict[str, str | None] = {m: await self.generator.trainer.trained_name(m) for m in gen.lora_models}
        identity = gen.identity(names)
        assert identity is not None and change.source is not None
        source = await self._source(change.source, gen.address)
        run.check_stop()
        own = change.action == "move" and source.owner == gen.address
        retiring = change.action == "move" and not own
        history = [] if own else await self.generator._move_to_history(gen)
        previous = run.state.generation(gen.name)
        if own and previous is not None:
            history = list(previous.history)
        old = run.state.entry(source.owner) if retiring else None
        if isinstance(old, GenerationEntry):
            history = [*old.history, *history]
        files, displaced = await asyncio.to_thread(self._write, gen, source)
        if displaced:
            history.append(displaced)
        entry = run_entry(
            gen,
            identity,
            names,
            Status.SUCCEEDED,
            files=files,
            task_id=source.task_id,
            seed=source.seed,
            history=history,
        )
        sidecar = Sidecar.of_run(gen, entry, entry.seed)
        write_sidecar(gen, sidecar)
        run.state.put(entry)
        if retiring:
            run.state.resources.pop(source.owner, None)
        await run.commit()
        run.finished.add(gen.address)
        if change.action == "move":
            was = old if isinstance(old, GenerationEntry) else previous
            await asyncio.to_thread(self._remove_sources, source, files, was)
        if run.outputs_remote is not None:
            on_disk = [(run.root / f.path, f.sha256) for f in files]
            async with run.slots:
                await asyncio.to_thread(run.outputs_remote.store_run, gen.name, identity, on_disk, sidecar)
        verb = "moved" if change.action == "move" else "copied"
        if change.action == "move":
            run.result.moved += 1
        else:
            run.result.copied += 1
        where = "the outputs remote" if source.source == "remote" else source.where
        text = f"{verb} {plural(len(files), 'image')} from {where} to {gen.output_display}"
        if where == gen.output_display:
            text = f"{verb} {plural(len(files), 'image')} within {where} (now named after {gen.stem})"
        run.emit(verb, gen.address, text)

    async def _source(self, source: Holding, me: str) -> Holding:
        """Where the images are now. A resource this apply changes is copied from once its work is done (a run it
        pays for, or one it moves; its current images may have moved to its history meanwhile): the run is then
        found on record again by its identity, wherever it went."""
        work = self.paying.get(source.owner) if source.owner != me else None  # its own run: nothing to wait for
        if work is not None:
            try:
                await asyncio.shield(work)
            except Exception as exc:
                if source.source == "plan":
                    raise ResourceFailed(CopySourceLost(source.owner, unfinished=True)) from exc
        if source.source == "remote" or (source.source != "plan" and await asyncio.to_thread(self._intact, source)):
            return source
        found = await asyncio.to_thread(self._on_record, source.identity)
        if found is None:
            raise ResourceFailed(CopySourceLost(source.owner))
        return found

    def _intact(self, source: Holding) -> bool:
        root = self.run.root
        return all((p := inside(root, path)).is_file() and sha256_file(p) == h for path, h in source.files)

    def _on_record(self, identity: str) -> Holding | None:
        """A run of `identity` the state records now, current or in a history, with every file intact."""
        for e in self.run.state.generations():
            runs = [Holding(identity, "state", e.address, _pairs(e.files), e.output or "", e.task_id, e.seed)]
            runs = runs if e.identity == identity and e.files else []
            runs += [
                Holding(identity, "history", e.address, _pairs(r.files), r.folder, r.task_id, r.seed)
                for r in e.history
                if r.identity == identity and r.files
            ]
            found = next((h for h in runs if self._intact(h)), None)
            if found is not None:
                return found
        return None

    def _write(self, gen: DesiredGeneration, source: Holding) -> tuple[list[FileRecord], HistoryRecord | None]:
        """Write every image of `source` into the generation's folder, hash-checked; what was in the way is kept."""
        run = self.run
        files: list[FileRecord] = []
        aside: list[FileRecord] = []
        for index, (path, digest) in enumerate(source.files):
            dest = image_path(gen, index, Path(path).suffix.lstrip(".") or gen.image_type)
            if source.source == "remote":
                assert run.outputs_remote is not None
                moved = run.outputs_remote.fetch_to(digest, dest)
            else:
                src = inside(run.root, path)
                if not src.is_file() or sha256_file(src) != digest:
                    raise ResourceFailed(CopySourceLost(source.owner, path))
                moved = place_file(dest, src, digest)[1]
            if moved is not None:
                aside.append(FileRecord(path=display_path(moved, run.root), sha256=sha256_file(moved)))
            files.append(FileRecord(path=display_path(dest, run.root), sha256=digest))
        if not aside:
            return files, None
        folder = Path(aside[0].path).parent.as_posix()
        return files, HistoryRecord(identity="", folder=folder, files=aside, replaced_at=now_iso())

    def _remove_sources(self, source: Holding, kept: list[FileRecord], old: GenerationEntry | None) -> None:
        """After a move is recorded: its sources go (only those still holding the recorded bytes), and the old
        folder's sidecar of that run."""
        root = self.run.root
        written = {f.path for f in kept}
        for path, digest in source.files:
            src = inside(root, path)
            if path not in written and src.is_file() and sha256_file(src) == digest:
                src.unlink()
        if old is not None and old.output:
            sidecar = inside(root, f"{old.output}/{old.stem}{SIDECAR_SUFFIX}")
            if display_path(sidecar, root) not in written and _records(sidecar, old.name, source.identity):
                sidecar.unlink()


def _pairs(files: list[FileRecord]) -> tuple[tuple[str, str], ...]:
    return tuple((f.path, f.sha256) for f in files)


def _records(sidecar: Path, generation: str, identity: str) -> bool:
    """The sidecar there is the one of this run (checked as any sidecar read from disk)."""
    try:
        return read_local(sidecar, generation).identity == identity
    except (OSError, BadSidecar):
        return False


def inside(root: Path, path: str) -> Path:
    """A file of the project a record names (`<folder>/<name>`, relative), checked before it is read or removed: a
    record is input, never a way out of the project (BadRecord names the path and what is wrong)."""
    problem = path_problem(path)
    if problem is not None:
        raise ResourceFailed(BadRecord(f"a recorded run names {problem}; nothing was copied or removed"))
    return root / path
