"""Execute a Plan: uploads, trainings and generations in dependency order, state saved after every step.

The plan decides; this module only carries it out. Every step that changes the world (an upload, a
submitted task, a finished task, a downloaded image) is committed to the state file before the next
step relies on it, and a task is recorded as "submitting" before its create call, so an apply killed at
any instant resumes without paying twice: trainings by their deterministic name, generations by the
task id recorded the moment Novita accepted them.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import glob
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.desired import Desired, DesiredGeneration, DesiredImage, DesiredModel
from reconciler.errors import AmbiguousSubmitError, NovitaError
from reconciler.novita import NovitaClient, error_detail
from reconciler.outputs import SIDECAR_SUFFIX, add_png_parameters, image_path, remove_files, write_sidecar
from reconciler.plan import OutputFacts, Plan, ResourceChange
from reconciler.progress import Reporter, fmt_duration
from reconciler.state import FileRecord, ImageRecord, ResourceEntry, StateStore, now_iso

DEFAULT_IPM = {"txt2img": 20, "img2img": 10}
# Statuses Novita documents for a task still on its way; anything else ends the wait (never a hang).
TRAINING_PENDING = frozenset({"UNKNOWN", "QUEUING", "TRAINING", "SUCCESS"})  # SUCCESS: the model still deploying
GENERATION_PENDING = frozenset({"TASK_STATUS_QUEUED", "TASK_STATUS_PROCESSING", "TASK_STATUS_UNKNOWN"})


@dataclass
class ApplyOptions:
    parallelism: int = 8
    wait: bool = True
    prune: bool = False
    ipm: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_IPM))
    training_poll: float = 10.0
    generation_poll: float = 1.0


class ResourceFailed(Exception):
    """This resource failed; the message says why (with Novita's reason)."""


class Skipped(Exception):
    """Not attempted because something it needs failed or is still running."""


class Interrupted(Exception):
    """Ctrl-C: stop submitting."""


@dataclass
class ApplyResult:
    uploaded: int = 0
    trained: int = 0
    adopted: int = 0
    generated: int = 0
    images: int = 0
    resumed: int = 0
    forgotten: int = 0
    pruned: int = 0
    submitted_not_waited: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    still_running: list[str] = field(default_factory=list)
    interrupted: bool = False
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.interrupted

    def summary(self) -> str:
        head = "Apply complete" if self.ok else ("Apply interrupted" if self.interrupted else "Apply failed")
        text = (
            f"{head}: {self.uploaded} uploaded, {self.trained} trained, {self.adopted} adopted, "
            f"{self.generated} generated ({self.images} image{'s' if self.images != 1 else ''}), "
            f"{len(self.failed)} failed"
        )
        if self.skipped:
            text += f", {len(self.skipped)} skipped"
        return text + f" in {fmt_duration(self.elapsed)}."


class IpmLimiter:
    """Images-per-minute throttle over a sliding 60 s window, so a steady run meets no 429."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.events: collections.deque[tuple[float, int]] = collections.deque()
        self.lock = asyncio.Lock()

    async def acquire(self, n: int) -> None:
        if self.limit <= 0:
            return
        async with self.lock:
            while True:
                now = self.clock()
                while self.events and self.events[0][0] <= now - self.window:
                    self.events.popleft()
                used = sum(k for _, k in self.events)
                if used + n <= self.limit or not self.events:
                    self.events.append((now, n))
                    return
                await self.sleep(self.events[0][0] + self.window - now + 0.01)


class Committer:
    """Group commit: callers await until a state save that includes their change has reached the disk."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.lock = asyncio.Lock()
        self.requested = 0
        self.saved = 0

    async def commit(self) -> None:
        self.requested += 1
        mine = self.requested
        async with self.lock:
            if self.saved >= mine:
                return
            upto = self.requested
            text = self.store.render()  # serialise on the loop thread: nobody mutates state meanwhile
            await asyncio.to_thread(self.store.write, text)
            self.saved = upto


class Applier:
    def __init__(
        self,
        plan: Plan,
        desired: Desired,
        store: StateStore,
        client: NovitaClient,
        reporter: Reporter,
        options: ApplyOptions,
        project_root: Path,
        outputs: dict[str, OutputFacts] | None = None,
    ) -> None:
        self.plan = plan
        self.desired = desired
        self.store = store
        self.state = store.state
        self.client = client
        self.report = reporter
        self.options = options
        self.root = project_root
        self.outputs = outputs or {}
        self.result = ApplyResult()
        self.committer = Committer(store)
        self.slots = asyncio.Semaphore(max(1, options.parallelism))
        self.limiters = {kind: IpmLimiter(n) for kind, n in options.ipm.items()}
        self.stop = asyncio.Event()
        self._uploads: dict[str, asyncio.Future[str]] = {}
        self._models: dict[str, asyncio.Task[str | None]] = {}

    # ------------------------------------------------------------------------------------------ driver

    def interrupt(self) -> None:
        """Ctrl-C: stop submitting and stop waiting; what was submitted keeps running remotely."""
        self.stop.set()

    async def run(self) -> ApplyResult:
        began = time.monotonic()
        plan = self.plan
        self.report.emit(
            "apply_start",
            None,
            f"Applying {len(plan.changes)} change{'s' if len(plan.changes) != 1 else ''}.",
            changes=len(plan.changes),
        )
        for change in plan.changes:
            if change.kind == "Dataset":
                self._record_dataset(change)
            elif change.action == "forget":
                self._forget(change)
        await self.commit()
        for change in plan.changes:
            if change.kind == "LoraModel" and change.action != "forget":
                self._models[change.name] = asyncio.create_task(self._guard(change, self._model(change)))
        gens = [
            asyncio.create_task(self._guard(c, self._generation(c)))
            for c in plan.changes
            if c.kind == "Generation" and c.action != "forget"
        ]
        outcomes = await asyncio.gather(*self._models.values(), *gens, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, (ResourceFailed, Skipped, Interrupted, NovitaError)
            ):
                raise outcome  # a bug, not a resource failure: show the traceback
        await self.commit()
        self.result.interrupted = self.stop.is_set()
        self.result.still_running = sorted(
            f"{addr} ({e.task_name or e.task_id})"
            for addr, e in self.state.resources.items()
            if e.status in ("training", "running") or (e.status == "submitting" and e.kind == "LoraModel")
        )
        self.result.elapsed = time.monotonic() - began
        r = self.result
        self.report.emit(
            "apply_complete",
            None,
            r.summary(),
            uploaded=r.uploaded,
            trained=r.trained,
            adopted=r.adopted,
            generated=r.generated,
            images=r.images,
            failed=len(r.failed),
            skipped=len(r.skipped),
            resumed=r.resumed,
            forgotten=r.forgotten,
            pruned=r.pruned,
            submitted_not_waited=r.submitted_not_waited,
            elapsed_seconds=round(r.elapsed, 3),
        )
        return r

    async def _guard(self, change: ResourceChange, work: Awaitable[Any]) -> Any:
        """Run one resource; turn its failure into a result line instead of stopping the others."""
        try:
            return await work
        except Skipped as exc:
            self.result.skipped[change.address] = str(exc)
            self.report.emit("skipped", change.address, f"skipped: {exc}")
            raise
        except Interrupted:
            entry = self.state.resources.get(change.address)
            running = entry is not None and entry.status in ("training", "running")
            self.result.skipped[change.address] = (
                "interrupted while waiting (it keeps running on Novita)"
                if running
                else "interrupted before it was submitted"
            )
            raise
        except (ResourceFailed, NovitaError) as exc:
            message = str(exc)
            if isinstance(exc, NovitaError) and exc.status and not isinstance(exc, AmbiguousSubmitError):
                message = f"Novita rejected {change.address}: {error_detail(exc)}"
            self.result.failed[change.address] = message
            self.report.emit("task_failed", change.address, f"failed: {message}", reason=getattr(exc, "reason", ""))
            raise ResourceFailed(message) from exc

    async def commit(self) -> None:
        await self.committer.commit()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            return

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted()

    # ------------------------------------------------------------------------------------------ local

    def _record_dataset(self, change: ResourceChange) -> None:
        ds = self.desired.datasets[change.name]
        self.state.resources[change.address] = ResourceEntry(
            kind="Dataset",
            name=ds.name,
            identity=ds.identity,
            status="succeeded",
            attributes=ds.attributes(),
            images=[i.sha256 for i in ds.images],
            updated_at=now_iso(),
        )

    def _forget(self, change: ResourceChange) -> None:
        entry = self.state.resources.pop(change.address, None)
        self.result.forgotten += 1
        message = "forgotten"
        if entry is not None and entry.kind == "Generation" and self.options.prune and entry.files:
            removed, kept = remove_files([(self.root / f.path, f.sha256) for f in entry.files])
            if entry.output:
                sidecar = self.root / entry.output / f"{entry.name}{SIDECAR_SUFFIX}"
                sidecar.unlink(missing_ok=True)
            self.result.pruned += removed
            message += f"; pruned {removed} image{'s' if removed != 1 else ''}"
            if kept:
                message += f" (kept {kept} changed since they were written)"
        self.report.emit("forgotten", change.address, message)

    # ------------------------------------------------------------------------------------------ uploads

    async def _upload(self, image: DesiredImage) -> str:
        """The assets_id of an image: from state, from an upload under way, or uploaded now (once per hash)."""
        pending = self._uploads.get(image.sha256)
        if pending is not None:  # being uploaded by another training of this apply
            return await asyncio.shield(pending)
        known = self.state.images.get(image.sha256)
        if known is not None:
            return known.assets_id
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._uploads[image.sha256] = future

        async def record_ticket(assets_id: str) -> None:
            # Recorded before the bytes go out: a kill after the PUT completes then costs no second upload.
            self.state.images[image.sha256] = ImageRecord(
                assets_id=assets_id, format=image.format, uploaded_at=now_iso(), status="pending"
            )
            await self.commit()

        try:
            async with self.slots:
                self._check_stop()
                size = image.path.stat().st_size
                assets_id = await self.client.upload_image(image.path, image.format, on_ticket=record_ticket)
            self.state.images[image.sha256] = ImageRecord(
                assets_id=assets_id, format=image.format, uploaded_at=now_iso()
            )
            await self.commit()
            self.result.uploaded += 1
            self.report.emit(
                "upload", None, f"uploaded {image.display} ({size} bytes)", sha256=image.sha256, bytes=size
            )
            future.set_result(assets_id)
            return assets_id
        except BaseException as exc:
            self._uploads.pop(image.sha256, None)
            future.set_exception(exc if isinstance(exc, Exception) else Interrupted())
            raise

    async def _upload_all(self, model: DesiredModel) -> dict[str, str]:
        ids = await asyncio.gather(*(self._upload(i) for i in model.images))
        return {i.sha256: a for i, a in zip(model.images, ids, strict=True)}

    # ------------------------------------------------------------------------------------------ models

    def _model_entry(self, model: DesiredModel, status: str, task_id: str | None) -> ResourceEntry:
        entry = ResourceEntry(
            kind="LoraModel",
            name=model.name,
            identity=model.identity,
            status=status,
            attributes=model.attributes(),
            dataset=model.dataset,
            task_type=model.task_type,
            task_name=model.task_name,
            task_id=task_id,
            submitted_at=now_iso(),
            updated_at=now_iso(),
        )
        self.state.resources[model.address] = entry
        return entry

    async def _model(self, change: ResourceChange) -> str | None:
        model = self.desired.models[change.name]
        addr = model.address
        if change.action in ("create", "replace"):
            self._check_stop()
            assets = await self._upload_all(model)
            self._check_stop()
            async with self.slots:
                self._check_stop()
                entry = await self._submit_training(model, assets)
        else:  # adopt / resume
            entry = self.state.resources.get(addr) or self._model_entry(model, "training", change.task_id)
            if entry.identity != model.identity:
                entry = self._model_entry(model, "training", change.task_id)
            task_id = change.task_id or entry.task_id
            if task_id is None:
                task_id = await self._find_training(model)
                if task_id is None:
                    raise ResourceFailed(f"training {model.task_name} is not in the account any more; plan again")
            entry.task_id = task_id
            entry.status = "training"
            if change.model_name:
                entry.status, entry.model_name = "succeeded", change.model_name
            entry.updated_at = now_iso()
            await self.commit()
            if change.action == "adopt":
                self.result.adopted += 1
                self.report.emit("adopted", addr, f"adopted training {model.task_name} ({task_id})", task_id=task_id)
            else:
                self.result.resumed += 1
            if change.model_name:
                self.report.emit(
                    "task_done",
                    addr,
                    f"training {model.task_name} done: {change.model_name}",
                    model_name=change.model_name,
                )
                return change.model_name
        if not self.options.wait:
            self.result.submitted_not_waited.append(addr)
            return None
        name = await self._wait_training(model, entry)
        if change.action in ("create", "replace"):
            self.result.trained += 1
        return name

    async def _find_training(self, model: DesiredModel) -> str | None:
        tasks = await self.client.list_trainings()
        live = [t for t in tasks if t.task_name == model.task_name and not t.is_failed]
        live.sort(key=lambda t: (not t.is_done, -t.created_at))
        return live[0].task_id if live else None

    async def _submit_training(self, model: DesiredModel, assets: dict[str, str]) -> ResourceEntry:
        entry = self._model_entry(model, "submitting", None)
        await self.commit()  # recorded before the POST: a kill after it is resolved by the task name
        task_id: str | None = None
        asset_rounds = 0
        while task_id is None:
            try:
                task_id = await self.client.create_training(
                    model.task_type,  # type: ignore[arg-type]
                    model.training_body(assets),
                )
            except AmbiguousSubmitError:
                # The create may or may not have landed: the deterministic name tells.
                task_id = await self._find_training(model)
                if task_id is not None:
                    self.report.emit(
                        "task_submitted",
                        model.address,
                        f"no answer to the submit, but {model.task_name} is in the "
                        "account: adopting it, not submitting again",
                    )
                    break
                task_id = await self.client.create_training(model.task_type, model.training_body(assets))  # type: ignore[arg-type]
            except NovitaError as exc:
                if exc.status == 400 and "assets_id" in str(exc) and asset_rounds <= len(assets):
                    # Novita does not know an asset: an upload a kill interrupted (recorded as pending), or one
                    # it no longer keeps (retention is undocumented). Upload again only what it names; if it
                    # names none, the unconfirmed ones, then all. A refused create costs nothing.
                    asset_rounds += 1
                    named = {h for h, a in assets.items() if a and a in str(exc)}
                    pending = {
                        h for h in assets if (rec := self.state.images.get(h)) is None or rec.status != "uploaded"
                    }
                    again = named or (pending if asset_rounds == 1 and pending else set(assets))
                    for h in again:
                        # Only the record this create sent: a training sharing the image may have uploaded it
                        # again meanwhile, and that fresh upload must be reused, not repeated.
                        if (rec := self.state.images.get(h)) is not None and rec.assets_id == assets[h]:
                            del self.state.images[h]
                    self.report.emit(
                        "reupload",
                        model.address,
                        f"Novita does not know {len(again)} uploaded image(s): uploading them again",
                    )
                    assets = await self._upload_all(model)
                    continue
                entry.status, entry.reason = "failed", error_detail(exc)
                await self.commit()
                raise
        entry.task_id = task_id
        entry.status = "training"
        entry.updated_at = now_iso()
        await self.commit()
        self.report.emit(
            "task_submitted", model.address, f"training {model.task_name} submitted ({task_id})", task_id=task_id
        )
        return entry

    async def _wait_training(self, model: DesiredModel, entry: ResourceEntry) -> str:
        assert entry.task_id is not None
        began = time.monotonic()
        while True:
            if self.stop.is_set():
                raise Interrupted()
            status = await self.client.get_training(entry.task_id, model.task_type)
            if status.is_done and status.model_name:
                entry.status, entry.model_name, entry.updated_at = "succeeded", status.model_name, now_iso()
                await self.commit()
                self.report.emit(
                    "task_done",
                    model.address,
                    f"training {model.task_name} done in {fmt_duration(time.monotonic() - began)}: {status.model_name}",
                    model_name=status.model_name,
                )
                return status.model_name
            if status.is_failed:
                entry.status, entry.reason, entry.updated_at = "failed", f"ended {status.task_status}", now_iso()
                await self.commit()
                raise ResourceFailed(f"training {model.task_name} ended {status.task_status} on Novita")
            if status.task_status.upper() not in TRAINING_PENDING:
                raise ResourceFailed(
                    f"training {model.task_name}: Novita reports an unknown status {status.task_status!r}; "
                    "it stays recorded as training and the next apply checks it again"
                )
            if status.is_done:  # SUCCESS and SERVING, yet no model name to generate with
                raise ResourceFailed(
                    f"training {model.task_name}: Novita reports it SERVING but names no model; "
                    "it stays recorded as training and the next apply checks it again"
                )
            text = f"training {model.task_name} {status.task_status}"
            if status.task_status == "TRAINING" and status.progress_percent is not None:
                text += f" {status.progress_percent:.0f}%"
            if status.task_status == "SUCCESS":
                text += " (model deploying)"
            if status.eta_relative:
                text += f" (eta {fmt_duration(status.eta_relative)})"
            self.report.emit(
                "task_progress", model.address, text, status=status.task_status, progress=status.progress_percent
            )
            await self._pause(self.options.training_poll)

    async def _model_name(self, name: str) -> str:
        """The trained model name a generation uses: wait for this apply's training, or take it from state."""
        task = self._models.get(name)
        if task is not None:
            try:
                model_name = await asyncio.shield(task)
            except (ResourceFailed, NovitaError) as exc:
                raise Skipped(f"LoraModel/{name} failed: {exc}") from None
            except (Skipped, Interrupted):
                raise Skipped(f"LoraModel/{name} did not run") from None
            if model_name is None:
                raise Skipped(f"LoraModel/{name} is still training (--no-wait); apply again to generate")
            return model_name
        entry = self.state.resources.get(f"LoraModel/{name}")
        if entry is None or entry.status != "succeeded" or not entry.model_name:
            raise Skipped(f"LoraModel/{name} has no trained model yet")
        return entry.model_name

    # ------------------------------------------------------------------------------------------ generations

    async def _generation(self, change: ResourceChange) -> None:
        gen = self.desired.generations[change.name]
        names: dict[str, str | None] = {}
        for m in gen.lora_models:
            names[m] = await self._model_name(m)
        identity = gen.identity(names)
        assert identity is not None
        if change.action == "adopt":
            await self._adopt_generation(gen, identity, names)
            return
        if change.action in ("create", "replace"):
            self._check_stop()
            previous = self.state.resources.get(gen.address)
            old_files = list(previous.files) if previous is not None else []
            entry = await self._submit_generation(gen, identity, names)
        else:
            entry = self.state.resources[gen.address]
            old_files = []
            self.result.resumed += 1
        if not self.options.wait:
            self.result.submitted_not_waited.append(gen.address)
            return
        await self._collect_generation(gen, entry)
        keep = {f.path for f in entry.files}
        stale = [(self.root / f.path, f.sha256) for f in old_files if f.path not in keep]
        if stale:
            remove_files(stale)

    async def _submit_generation(
        self, gen: DesiredGeneration, identity: str, names: dict[str, str | None]
    ) -> ResourceEntry:
        init_b64 = None
        if gen.init_image is not None:
            init_b64 = base64.b64encode(gen.init_image.path.read_bytes()).decode("ascii")
        limiter = self.limiters.get(gen.task_type)
        async with self.slots:
            if limiter is not None:
                await limiter.acquire(gen.image_num)
            self._check_stop()
            request = gen.resolved_request(names)
            if gen.init_image is not None:
                request["init_image_sha256"] = gen.init_image.sha256
            entry = ResourceEntry(
                kind="Generation",
                name=gen.name,
                identity=identity,
                status="submitting",
                attributes=gen.attributes(names),
                request={"extra": gen.extra, "request": request},
                models={k: v for k, v in names.items() if v},
                output=gen.output_display,
                submitted_at=now_iso(),
                updated_at=now_iso(),
            )
            self.state.resources[gen.address] = entry
            await self.commit()
            body = gen.body({k: v for k, v in names.items() if v}, init_b64)
            try:
                task_id = await self.client.create_generation(gen.task_type, body)  # type: ignore[arg-type]
            except AmbiguousSubmitError as exc:
                raise ResourceFailed(
                    f"no answer from Novita to the {gen.task_type} submit ({exc}); it may or may not have "
                    "been accepted, and Novita cannot list generation tasks, so it is not submitted again on its "
                    f"own: run `reconciler apply --replace {gen.address}` to submit it again."
                ) from exc
            except NovitaError:
                entry.status = "failed"
                await self.commit()
                raise
        entry.task_id, entry.status, entry.updated_at = task_id, "running", now_iso()
        await self.commit()
        self.report.emit(
            "task_submitted",
            gen.address,
            f"{gen.task_type} submitted ({task_id}): {gen.image_num} image{'s' if gen.image_num != 1 else ''}",
            task_id=task_id,
        )
        return entry

    async def _collect_generation(self, gen: DesiredGeneration, entry: ResourceEntry) -> None:
        assert entry.task_id is not None
        while True:
            if self.stop.is_set():
                raise Interrupted()
            result = await self.client.task_result(entry.task_id)
            if result.is_done:
                break
            if result.is_failed:
                entry.status, entry.reason, entry.updated_at = "failed", result.reason or "no reason given", now_iso()
                await self.commit()
                raise ResourceFailed(f"{gen.task_type} task {entry.task_id} failed on Novita: {entry.reason}")
            if result.status.upper() not in GENERATION_PENDING:
                # Not a status Novita documents: stop waiting (no hang) but keep the task as running, so the next
                # apply checks it again instead of paying for a new one.
                raise ResourceFailed(
                    f"{gen.task_type} task {entry.task_id}: Novita reports an unknown status {result.status!r}; "
                    "it stays recorded as running and the next apply checks it again"
                )
            text = f"{gen.task_type} {result.status.removeprefix('TASK_STATUS_')}"
            if result.progress_percent:
                text += f" {result.progress_percent:.0f}%"
            self.report.emit("task_progress", gen.address, text, status=result.status)
            await self._pause(self.options.generation_poll)
        if not result.images:
            raise ResourceFailed(f"{gen.task_type} task {entry.task_id} succeeded without images")
        params = _parameters_text(gen, entry, result.seed)
        done = {f.path: f for f in entry.files}
        files: list[FileRecord] = []
        for index, image in enumerate(result.images):
            dest = image_path(gen, index, image.image_type or gen.image_type)
            _remove_partial_downloads(dest)
            rel = str(dest.relative_to(self.root)) if dest.is_relative_to(self.root) else str(dest)
            if rel in done and dest.is_file():
                files.append(done[rel])
                continue
            async with self.slots:
                got = await self.client.download_image(image.image_url, dest, expected_type=image.image_type)
            _public(dest)
            digest = add_png_parameters(dest, params) if got.format == "png" else got.sha256
            record = FileRecord(path=rel, sha256=digest)
            files.append(record)
            entry.files = [*[f for f in entry.files if f.path != rel], record]
            await self.commit()
            self.result.images += 1
            self.report.emit("image_written", gen.address, f"wrote {rel}", path=rel, sha256=digest)
        entry.files = files
        entry.seed = result.seed
        write_sidecar(
            gen,
            {
                "generation": gen.name,
                "identity": entry.identity,
                "task_id": entry.task_id,
                "task_type": gen.task_type,
                "request": entry.request,
                "seed": result.seed,
                "images": [{"file": Path(f.path).name, "sha256": f.sha256} for f in files],
                "written_at": now_iso(),
            },
        )
        entry.status, entry.updated_at = "succeeded", now_iso()
        await self.commit()
        self.result.generated += 1
        self.report.emit(
            "task_done", gen.address, f"{len(files)} image{'s' if len(files) != 1 else ''} in {gen.output_display}"
        )

    async def _adopt_generation(self, gen: DesiredGeneration, identity: str, names: dict[str, str | None]) -> None:
        facts = self.outputs.get(gen.address)
        if facts is None or facts.sidecar_identity != identity:
            raise ResourceFailed(f"its images in {gen.output_display} changed since the plan; plan again")
        self.state.resources[gen.address] = ResourceEntry(
            kind="Generation",
            name=gen.name,
            identity=identity,
            status="succeeded",
            attributes=gen.attributes(names),
            models={k: v for k, v in names.items() if v},
            output=gen.output_display,
            files=[FileRecord(path=p, sha256=h) for p, h in facts.sidecar_files],
            task_id=facts.sidecar_task_id,
            seed=facts.sidecar_seed,
            updated_at=now_iso(),
        )
        await self.commit()
        self.result.adopted += 1
        self.report.emit("adopted", gen.address, f"adopted {len(facts.sidecar_files)} images in {gen.output_display}")


def _remove_partial_downloads(dest: Path) -> None:
    """Remove the temporary files of downloads into `dest` that a killed apply left behind (`.NAME.*.part`);
    the state lock guarantees no other apply is writing them now."""
    for part in dest.parent.glob(f".{glob.escape(dest.name)}.*.part"):
        part.unlink(missing_ok=True)


def _public(path: Path) -> None:
    """Downloaded files get the usual permissions (the temporary file they came from was private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _parameters_text(gen: DesiredGeneration, entry: ResourceEntry, seed: str | None) -> str:
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
