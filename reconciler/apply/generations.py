"""Generations: submit (throttled to the account's images per minute), wait, download, write the sidecar.

A generation is recorded as `submitting` before its create call and as `running` with its task id the
moment Novita accepts it; each downloaded image is committed as it lands, and the sidecar beside the images
records the identity, so a generation is adopted from disk after a state loss.

A submit that gets no answer (any 5xx, a dropped connection, a timeout) cannot be resolved: Novita cannot list
generation tasks. It is recorded `unanswered` (with a count in the state) and the generation's
`on_unanswered_submit` policy decides (`reconciler.plan.policy`): `resubmit` submits it again after a short pause
(at most a few times in one apply; counted in the summary and the events as possibly paid twice), `hold` leaves
it for a person (`apply --replace`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
from typing import Any

from reconciler.apply.context import SUBMIT_ATTEMPTS, Run
from reconciler.apply.outcome import (
    BadRecord,
    Held,
    NoImages,
    OutputsChanged,
    OutputsStoreFailed,
    ResourceFailed,
    Submitted,
    Succeeded,
    Task,
    Unanswered,
    UnknownStatus,
)
from reconciler.apply.polling import Look
from reconciler.apply.trainings import Trainer
from reconciler.desired.hashing import HashCache, sha256_file
from reconciler.desired.resources import DesiredGeneration
from reconciler.errors import AmbiguousSubmitError, NovitaError, RemoteError
from reconciler.files import display_path, remove_partials
from reconciler.novita import TaskResult
from reconciler.outputs.folders import (
    OldOutputs,
    add_png_parameters,
    image_path,
    move_aside,
    recorded_history,
    write_sidecar,
)
from reconciler.outputs.guard import UnsafePath
from reconciler.outputs.place import make_room
from reconciler.outputs.sidecar import BadSidecar, Sidecar
from reconciler.plan.changes import ResourceChange
from reconciler.plan.policy import Choice
from reconciler.present.wording import generation_status
from reconciler.state import FileRecord, GenerationEntry, HistoryRecord, now_iso
from reconciler.status import SUBMIT_UNRESOLVED, Status
from reconciler.text import plural


def run_entry(
    gen: DesiredGeneration, identity: str, names: dict[str, str | None], status: Status, **fields: Any
) -> GenerationEntry:
    """The state entry of a run this apply makes, by submitting it or by copying a paid one: it records the request
    (what a sidecar's identity is recomputed from)."""
    return GenerationEntry.of(gen, identity, names, status, request=gen.recorded_request(names), **fields)


class Generator:
    def __init__(self, run: Run, trainer: Trainer) -> None:
        self.run = run
        self.trainer = trainer

    async def apply(self, change: ResourceChange) -> None:
        try:
            await self._apply(change)
        except (UnsafePath, BadSidecar) as exc:  # a record read from the remote or a shared state failed a check
            raise ResourceFailed(BadRecord(str(exc))) from exc
        except RemoteError as exc:  # the outputs remote failed: the images stay on disk, the next apply stores them
            raise ResourceFailed(OutputsStoreFailed(str(exc))) from exc

    async def _apply(self, change: ResourceChange) -> None:
        run = self.run
        gen = run.desired.generations[change.name]
        names: dict[str, str | None] = {}
        for m in gen.lora_models:
            names[m] = await self.trainer.trained_name(m)
        identity = gen.identity(names)
        assert identity is not None
        if change.action == "adopt":
            await self._adopt(gen, identity, names)
            return
        if change.action in ("create", "replace"):
            run.check_stop()
            history = await self._move_to_history(gen)
            entry = await self._submit(gen, identity, names, history)
        else:
            found = run.state.generation(gen.name)
            assert found is not None, f"resume of {gen.address} without a state entry"
            entry = found
            run.result.resumed += 1
        if not run.options.wait:
            run.result.outcomes[gen.address] = Submitted()
            return
        await self._collect(gen, entry)

    async def _move_to_history(self, gen: DesiredGeneration) -> list[HistoryRecord]:
        """The images the generation has now move into its history folder (recorded before anything else
        happens), so the new ones never overwrite paid images. Returns its whole history."""
        run = self.run
        previous = run.state.generation(gen.name)
        records = list(previous.history) if previous is not None else []
        old: OldOutputs | None = None
        if previous is not None and previous.files:
            folder = run.root / previous.output if previous.output else gen.output_dir
            old = OldOutputs(folder, previous.stem, previous.identity, list(previous.files))
        elif previous is None:
            facts = run.outputs.get(gen.address)
            if facts is not None and facts.sidecar_files and facts.sidecar_identity:
                files = [FileRecord(path=p, sha256=h) for p, h in facts.sidecar_files]
                old = OldOutputs(
                    gen.output_dir, gen.stem, facts.sidecar_identity, files, facts.sidecar_task_id, facts.sidecar_seed
                )
        record = move_aside(run.root, previous, old) if old is not None else None
        if record is None:
            return records
        records.append(record)
        run.result.moved_to_history += len(record.files)
        if previous is not None:
            previous.history, previous.files, previous.updated_at = records, [], now_iso()
            await run.commit()
        run.emit(
            "history",
            gen.address,
            f"moved {plural(len(record.files), 'image')} to {record.folder}",
            folder=record.folder,
        )
        return records

    async def _submit(
        self, gen: DesiredGeneration, identity: str, names: dict[str, str | None], history: list[HistoryRecord]
    ) -> GenerationEntry:
        """Submit the generation (recorded `submitting` first), within the images-per-minute budget; a submit without
        an answer follows its `on_unanswered_submit` policy."""
        run = self.run
        init_b64 = None
        if gen.init_image is not None:
            init_b64 = base64.b64encode(gen.init_image.path.read_bytes()).decode("ascii")
        limiter = run.limiters.get(gen.task_type)
        policy = run.options.policy.for_generation(gen)
        previous = run.state.generation(gen.name)
        same = previous if previous is not None and previous.identity == identity else None
        # The plan's "-/+ ... submit got no answer: submitting again" (or a --replace of a held one).
        again = same is not None and same.status in SUBMIT_UNRESOLVED
        counts = _counts(same)
        attempts = 0
        while True:
            attempts += 1
            # the images-per-minute budget before a slot: a generation queued here must not hold back downloads
            grant = await limiter.acquire(gen.image_num) if limiter is not None else None
            async with run.slots:
                run.check_stop()
                entry = self._record_submitting(gen, identity, names, history, counts, again=again)
                post = functools.partial(
                    run.client.create_generation,
                    gen.task_type,  # type: ignore[arg-type]  # the manifest's task type, validated
                    gen.body({k: v for k, v in names.items() if v}, init_b64),
                )
                try:
                    # the throttle's minute starts once the state was saved, right before the POST
                    sent = functools.partial(limiter.sent, grant) if limiter is not None else None
                    task_id = await run.create(post, then=sent)
                    break
                except AmbiguousSubmitError as exc:
                    await self._unanswered(gen, entry, exc, policy, attempts)
                    counts, again = _counts(entry), True
                except NovitaError as exc:
                    await run.refused(entry, previous, exc)
            delays = run.options.unanswered_delays
            await run.pause(delays[min(attempts, len(delays)) - 1] if delays else 0.0)  # outside the slot
        await run.accepted(entry, task_id, Status.RUNNING)
        run.emit(
            "task_submitted",
            gen.address,
            f"{gen.task_type} submitted ({task_id}): {plural(gen.image_num, 'image')}",
            task_id=task_id,
        )
        return entry

    def _record_submitting(
        self,
        gen: DesiredGeneration,
        identity: str,
        names: dict[str, str | None],
        history: list[HistoryRecord],
        counts: dict[str, int],
        *,
        again: bool,
    ) -> GenerationEntry:
        """The entry of this submit, `submitting`, in the state (committed by the create, before the POST); a submit
        again after one without an answer is counted and said (it may be paid twice)."""
        run = self.run
        entry = run_entry(gen, identity, names, Status.SUBMITTING, history=history, **counts)
        if again:
            entry.resubmits += 1
            run.result.resubmitted.append(gen.address)
            run.emit(
                "resubmitted",
                gen.address,
                "the previous submit got no answer: submitting again (may be paid twice)",
                unanswered_submits=entry.unanswered_submits,
            )
        run.state.put(entry)
        return entry

    async def _unanswered(
        self, gen: DesiredGeneration, entry: GenerationEntry, exc: AmbiguousSubmitError, policy: Choice, attempts: int
    ) -> None:
        """A submit got no answer: record it (a kill now resolves the same way), then raise unless the policy
        says to submit again and this apply has tries left. Novita cannot list generation tasks: nobody can tell."""
        run = self.run
        cause = await run.unanswered(entry, exc)
        if policy == "hold":
            raise ResourceFailed(Held(gen.task_type, cause)) from exc
        if attempts >= SUBMIT_ATTEMPTS:
            raise ResourceFailed(Unanswered(Task(gen.task_type, ""), attempts, cause)) from exc
        message = f"no answer to the {gen.task_type} submit ({cause}): it may or may not have run"
        run.emit("unanswered", gen.address, message, reason=exc.reason)

    async def _collect(self, gen: DesiredGeneration, entry: GenerationEntry) -> None:
        """Wait for the task, download its images (each committed as it lands), write the sidecar, store the run in
        the outputs remote if there is one, and only then record it done."""
        run = self.run
        result = await self._wait(gen, entry)
        files = await self._download(gen, entry, result)
        entry.files = files
        entry.seed = result.seed
        sidecar = Sidecar.of_run(gen, entry, result.seed)
        write_sidecar(gen, sidecar)
        if run.outputs_remote is not None:
            # before it counts as done: a kill in between stores again on the next apply, never generates again
            on_disk = [(run.root / f.path, f.sha256) for f in files]
            async with run.slots:
                sent = await asyncio.to_thread(run.outputs_remote.store_run, gen.name, entry.identity, on_disk, sidecar)
            run.emit("stored", gen.address, f"stored {plural(sent, 'image')} in the outputs remote", images=sent)
        entry.status, entry.updated_at = Status.SUCCEEDED, now_iso()
        run.finished.add(gen.address)  # done, even if a stop cuts the commit below (the final save has it)
        run.result.generated += 1
        run.result.outcomes[gen.address] = Succeeded()
        run.emit("task_done", gen.address, f"{plural(len(files), 'image')} in {gen.output_display}")
        await run.commit()

    async def _wait(self, gen: DesiredGeneration, entry: GenerationEntry) -> TaskResult:
        """Poll the task until it succeeded with images; raises when it failed or Novita's answer makes no sense."""
        run = self.run
        task_id = entry.task_id
        assert task_id is not None
        task = Task(gen.task_type, task_id)

        async def look() -> TaskResult:
            return await run.client.task_result(task_id)

        async def settle(result: TaskResult) -> TaskResult | None:
            if result.is_done:
                return result
            if result.is_failed:
                reason = result.reason or "no reason given"
                await run.task_failed(entry, reason, task, reason)
            if not result.is_pending:
                # Not a status Novita documents: stop waiting (no hang) but keep the task as running, so the next
                # apply checks it again instead of paying for a new one.
                raise ResourceFailed(UnknownStatus(task, result.status))
            text = f"{gen.task_type} {progress(result)}"
            run.emit("task_progress", gen.address, text, status=result.status)
            return None

        def progress(result: TaskResult) -> str:
            return generation_status(result.status, result.progress_percent)

        result = await run.wait_for(
            look,
            settle,
            run.options.generation,
            lambda result: Look(result.eta, result.progress_percent),
            progress=progress,
            what=task,
        )
        if not result.images:
            raise ResourceFailed(NoImages(task))
        return result

    async def _download(self, gen: DesiredGeneration, entry: GenerationEntry, result: TaskResult) -> list[FileRecord]:
        """Each image into its path (with the parameters in a PNG's text chunk), committed as it lands; an image an
        earlier apply already wrote and recorded is kept."""
        run = self.run
        params = parameters_text(gen, entry, result.seed)
        done = {f.path: f for f in entry.files}
        files: list[FileRecord] = []
        for index, image in enumerate(result.images):
            dest = image_path(gen, index, image.image_type or gen.image_type)
            remove_partials(dest)
            rel = display_path(dest, run.root)
            if rel in done and dest.is_file():
                files.append(done[rel])
                continue
            aside = make_room(dest)  # never over paid bytes: whatever is in the way goes to history, on record
            if aside is not None:
                kept = FileRecord(path=display_path(aside, run.root), sha256=sha256_file(aside))
                folder = display_path(aside.parent, run.root)
                entry.history = [*entry.history, HistoryRecord(identity="", folder=folder, files=[kept])]
            async with run.slots:
                got = await run.client.download_image(image.image_url, dest, expected_type=image.image_type)
            digest = add_png_parameters(dest, params) if got.format == "png" else got.sha256
            record = FileRecord(path=rel, sha256=digest)
            files.append(record)
            entry.files = [*[f for f in entry.files if f.path != rel], record]
            await run.commit()
            run.result.images += 1
            run.emit("image_written", gen.address, f"wrote {rel}", path=rel, sha256=digest)
        return files

    async def _adopt(self, gen: DesiredGeneration, identity: str, names: dict[str, str | None]) -> None:
        run = self.run
        facts = run.outputs.get(gen.address)
        stored = next((r for r in facts.remote_sidecars if r.identity == identity), None) if facts else None
        if facts is not None and facts.sidecar_identity == identity:
            files, task_id, seed, where = facts.sidecar_files, facts.sidecar_task_id, facts.sidecar_seed, "in"
        elif stored is not None and run.outputs_remote is not None:
            files, task_id, seed, where = stored.files, stored.task_id, stored.seed, "from the outputs remote into"
        else:
            raise ResourceFailed(OutputsChanged(gen.output_display))
        previous = run.state.generation(gen.name)
        entry = GenerationEntry.of(
            gen,
            identity,
            names,
            Status.SUCCEEDED,
            files=[FileRecord(path=p, sha256=h) for p, h in files],
            task_id=task_id,
            seed=seed,
            history=list(previous.history) if previous is not None else await self._found_history(gen),
        )
        if stored is not None and facts is not None and facts.sidecar_identity != identity:
            assert run.outputs_remote is not None
            # fetched (every byte checked) before it is recorded: a bad object fails it with nothing on record
            async with run.slots:
                await asyncio.to_thread(run.outputs_remote.pull_run, entry, run.root)
        run.state.put(entry)
        await run.commit()
        run.finished.add(gen.address)
        run.adopted(gen.address, f"adopted {plural(len(files), 'image')} {where} {gen.output_display}")

    async def _found_history(self, gen: DesiredGeneration) -> list[HistoryRecord]:
        """Adopting after a state loss: the history folders on disk go back on record (prune and the gallery).
        Hashing them runs on a thread, so the other resources' downloads and polls go on meanwhile."""
        found = functools.partial(recorded_history, self.run.root, gen.output_dir, gen.stem, gen.name, HashCache(None))
        return await asyncio.to_thread(found)


def _counts(entry: GenerationEntry | None) -> dict[str, int]:
    """The unanswered submits and resubmits a new entry carries over from `entry` (same identity), or none."""
    return {
        "unanswered_submits": entry.unanswered_submits if entry else 0,
        "resubmits": entry.resubmits if entry else 0,
    }


def parameters_text(gen: DesiredGeneration, entry: GenerationEntry, seed: str | None) -> str:
    """A1111-style parameters, the text chunk image viewers show."""
    req = (entry.request or {}).get("request", {})
    lines = [str(req.get("prompt", ""))]
    if req.get("negative_prompt"):
        lines.append(f"Negative prompt: {req['negative_prompt']}")
    settings = [
        f"Steps: {req.get('steps')}",
        f"Sampler: {req.get('sampler_name')}",
        f"CFG scale: {req.get('guidance_scale')}",
        f"Seed: {seed if seed is not None else req.get('seed')}",
        f"Size: {req.get('width')}x{req.get('height')}",
        f"Model: {req.get('model_name')}",
    ]
    loras = req.get("loras") or []
    if loras:
        settings.append("Lora: " + ", ".join(f"{lo['model_name']}:{lo['strength']}" for lo in loras))
    settings.append(f"Generation: {gen.address} ({entry.task_id})")
    lines.append(", ".join(settings))
    return "\n".join(lines)
