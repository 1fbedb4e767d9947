"""LoraModels: submit a training (after its images are up), adopt or resume one, wait until it serves.

A training is recorded as `submitting` before its create call, so after a kill its deterministic name
(`<name>-<8 hex>`) in the account's training list tells whether the create landed; a create with no answer
is resolved the same way before anything is sent again.
"""

from __future__ import annotations

import asyncio
import time

from reconciler.apply.context import Run
from reconciler.apply.outcome import Deferred, Interrupted, ResourceFailed, Skipped
from reconciler.apply.polling import Look
from reconciler.apply.uploads import Uploader
from reconciler.desired import DesiredModel
from reconciler.errors import AmbiguousSubmitError, NovitaError
from reconciler.novita import TrainingStatus, error_detail
from reconciler.plan import ResourceChange
from reconciler.remote import Remote, RemoteTraining
from reconciler.state import ModelEntry, now_iso
from reconciler.status import Status
from reconciler.text import duration


class Trainer:
    def __init__(self, run: Run, uploader: Uploader) -> None:
        self.run = run
        self.uploader = uploader
        self.tasks: dict[str, asyncio.Task[str | None]] = {}  # model name -> its work in this apply

    async def apply(self, change: ResourceChange) -> str | None:
        """Bring one model to SERVING; returns its trained model name (None with --no-wait)."""
        run = self.run
        model = run.desired.models[change.name]
        addr = model.address
        if change.action in ("create", "replace"):
            run.check_stop()
            assets = await self.uploader.upload_all(model)
            run.check_stop()
            async with run.slots:
                run.check_stop()
                entry = await self._submit(model, assets)
        else:  # adopt / resume
            known = run.state.model(model.name)
            if known is None or known.identity != model.identity:
                known = self._record(ModelEntry.of(model, Status.TRAINING, task_id=change.task_id))
            entry = known
            task_id = change.task_id or entry.task_id
            if task_id is None:
                task_id = await self._find(model)
                if task_id is None:
                    raise ResourceFailed(f"training {model.task_name} is not in the account any more; plan again")
            entry.task_id = task_id
            entry.status = Status.TRAINING
            if change.model_name:
                entry.status, entry.model_name = Status.SUCCEEDED, change.model_name
            entry.updated_at = now_iso()
            await run.commit()
            if change.action == "adopt":
                run.result.adopted += 1
                run.emit("adopted", addr, f"adopted training {model.task_name} ({task_id})", task_id=task_id)
            else:
                run.result.resumed += 1
            if change.model_name:
                run.emit(
                    "task_done",
                    addr,
                    f"training {model.task_name} done: {change.model_name}",
                    model_name=change.model_name,
                )
                return change.model_name
        if not run.options.wait:
            run.result.submitted_not_waited.append(addr)
            return None
        name = await self._wait(model, entry)
        if change.action in ("create", "replace"):
            run.result.trained += 1
        return name

    def _record(self, entry: ModelEntry) -> ModelEntry:
        self.run.state.put(entry)
        return entry

    async def _find(self, model: DesiredModel) -> str | None:
        """The task id of a live training with this model's name in the account, if any."""
        tasks = await self.run.client.list_trainings()
        live = Remote(tuple(RemoteTraining.listed(t) for t in tasks)).live(model.task_name)
        return live.task_id if live is not None else None

    async def _submit(self, model: DesiredModel, assets: dict[str, str]) -> ModelEntry:
        run = self.run
        entry = self._record(ModelEntry.of(model, Status.SUBMITTING))
        await run.commit()  # recorded before the POST: a kill after it is resolved by the task name
        task_id: str | None = None
        asset_rounds = 0
        while task_id is None:
            try:
                task_id = await run.client.create_training(
                    model.task_type,  # type: ignore[arg-type]
                    model.training_body(assets),
                )
            except AmbiguousSubmitError:
                # The create may or may not have landed: the deterministic name tells.
                task_id = await self._find(model)
                if task_id is not None:
                    run.emit(
                        "task_submitted",
                        model.address,
                        f"no answer to the submit, but {model.task_name} is in the "
                        "account: adopting it, not submitting again",
                    )
                    break
                task_id = await run.client.create_training(model.task_type, model.training_body(assets))  # type: ignore[arg-type]
            except NovitaError as exc:
                if exc.status == 400 and "assets_id" in str(exc) and asset_rounds <= len(assets):
                    # Novita does not know an asset: an upload a kill interrupted (recorded as pending), or one
                    # it no longer keeps (retention is undocumented). Upload again only what it names; if it
                    # names none, the unconfirmed ones, then all. A refused create costs nothing.
                    asset_rounds += 1
                    named = {h for h, a in assets.items() if a and a in str(exc)}
                    pending = {
                        h for h in assets if (rec := run.state.images.get(h)) is None or rec.status != "uploaded"
                    }
                    again = named or (pending if asset_rounds == 1 and pending else set(assets))
                    for h in again:
                        self.uploader.forget(h, assets[h])
                    run.emit(
                        "reupload",
                        model.address,
                        f"Novita does not know {len(again)} uploaded image(s): uploading them again",
                    )
                    assets = await self.uploader.upload_all(model)
                    continue
                entry.status, entry.reason = Status.FAILED, error_detail(exc)
                await run.commit()
                raise
        entry.task_id = task_id
        entry.status = Status.TRAINING
        entry.updated_at = now_iso()
        await run.commit()
        run.emit("task_submitted", model.address, f"training {model.task_name} submitted ({task_id})", task_id=task_id)
        return entry

    async def _wait(self, model: DesiredModel, entry: ModelEntry) -> str:
        run = self.run
        task_id = entry.task_id
        assert task_id is not None
        began = time.monotonic()

        async def look() -> TrainingStatus:
            return await run.client.get_training(task_id, model.task_type)

        async def settle(status: TrainingStatus) -> str | None:
            if status.is_done and status.model_name:
                entry.status, entry.model_name, entry.updated_at = Status.SUCCEEDED, status.model_name, now_iso()
                await run.commit()
                run.emit(
                    "task_done",
                    model.address,
                    f"training {model.task_name} done in {duration(time.monotonic() - began)}: {status.model_name}",
                    model_name=status.model_name,
                )
                return status.model_name
            if status.is_failed:
                entry.status, entry.reason, entry.updated_at = Status.FAILED, f"ended {status.task_status}", now_iso()
                await run.commit()
                raise ResourceFailed(f"training {model.task_name} ended {status.task_status} on Novita")
            if not status.is_pending:
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
                text += f" (eta {duration(status.eta_relative)})"
            run.emit(
                "task_progress",
                model.address,
                text,
                status=status.task_status,
                progress=status.progress_percent,
                eta=status.eta_relative,
            )
            return None

        def pace(status: TrainingStatus) -> Look:
            return Look(status.eta_relative, status.progress_percent)

        return await run.wait_for(look, settle, run.options.training_poll, pace)

    async def trained_name(self, name: str) -> str:
        """The trained model name a generation uses: wait for this apply's training, or take it from state."""
        task = self.tasks.get(name)
        if task is not None:
            try:
                model_name = await asyncio.shield(task)
            except (ResourceFailed, NovitaError) as exc:
                raise Skipped(f"LoraModel/{name} failed: {exc}") from None
            except (Skipped, Interrupted):
                raise Skipped(f"LoraModel/{name} did not run") from None
            if model_name is None:
                raise Deferred(f"LoraModel/{name} is still training (--no-wait); apply again to generate")
            return model_name
        entry = self.run.state.model(name)
        if entry is None or entry.status != Status.SUCCEEDED or not entry.model_name:
            raise Skipped(f"LoraModel/{name} has no trained model yet")
        return entry.model_name
