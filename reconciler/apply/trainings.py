"""LoraModels: submit a training (after its images are up), adopt or resume one, wait until it serves.

A training is recorded as `submitting` before its create call, so after a kill its deterministic name
(`<name>-<8 hex>`) in the account's training list tells whether the create landed. A create with no answer (any
5xx, a dropped connection, a timeout) is recorded `unanswered` and resolved the same way before anything is sent
again: the name is looked up in every page of the listing, at once and a few times over several seconds (a
listing may lag a create); found, it is this model's training (even if it FAILED); not found, it is submitted
again. Tasks of the same name that existed before the submit (`prior_tasks`) are never taken for its answer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from reconciler.apply.context import SUBMIT_ATTEMPTS, Run
from reconciler.apply.outcome import Deferred, Interrupted, ResourceFailed, Skipped, Stalled
from reconciler.apply.polling import Look
from reconciler.apply.uploads import Uploader
from reconciler.desired.resources import DesiredModel
from reconciler.errors import AmbiguousSubmitError, NovitaError
from reconciler.novita import TrainingStatus, unanswered_cause
from reconciler.observe.facts import Account, AccountTraining
from reconciler.plan.planner import ResourceChange
from reconciler.state import ModelEntry, now_iso
from reconciler.status import SUBMIT_UNRESOLVED, Status
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
        submitted = False  # by this apply (counted as trained once it serves)
        if change.action in ("create", "replace"):
            run.check_stop()
            entry = await self._resolve_unanswered(model) if change.action == "create" else None
            if entry is None:
                assets = await self.uploader.upload_all(model)
                run.check_stop()
                async with run.slots:
                    run.check_stop()
                    entry = await self._submit(model, assets, change)
                submitted = True
            else:
                run.result.resumed += 1
        else:  # adopt / resume
            known = run.state.model(model.name)
            if known is None or known.identity != model.identity:
                entry_of = ModelEntry.of(model, Status.TRAINING, task_id=change.task_id, task_name=change.task_name)
                known = self._record(entry_of)
            entry = known
            task_id = change.task_id or entry.task_id
            if task_id is None:
                found = await self._look_up(model, entry.prior_tasks)
                if found is None:
                    raise ResourceFailed(f"training {model.task_name} is not in the account any more; plan again")
                task_id = found.task_id
            entry.task_id = task_id
            entry.status = Status.TRAINING
            if change.model_name:
                entry.status, entry.model_name = Status.SUCCEEDED, change.model_name
            entry.updated_at = now_iso()
            await run.commit()
            shown = entry.task_name or model.task_name  # a training adopted by identity keeps its own task name
            if change.action == "adopt":
                run.result.adopted += 1
                run.emit("adopted", addr, f"adopted training {shown} ({task_id})", task_id=task_id)
            else:
                run.result.resumed += 1
            if change.model_name:
                run.emit(
                    "task_done",
                    addr,
                    f"training {shown} done: {change.model_name}",
                    model_name=change.model_name,
                )
                return change.model_name
        if not run.options.wait:
            run.result.submitted_not_waited.append(addr)
            return None
        name = await self._wait(model, entry)
        if submitted:
            run.result.trained += 1
        return name

    def _record(self, entry: ModelEntry) -> ModelEntry:
        self.run.state.put(entry)
        return entry

    async def _look_up(self, model: DesiredModel, prior: list[str]) -> AccountTraining | None:
        """The training a create of this model made, if the account lists it (every page): at once, then again
        after each of `unanswered_delays` (a listing may lag a create). Tasks in `prior` were there before."""
        run = self.run
        for delay in (0.0, *run.options.unanswered_delays):
            if delay:
                await run.pause(delay)
            tasks = await run.client.list_trainings()
            found = Account(tuple(AccountTraining.listed(t) for t in tasks)).answer_to(model.task_name, prior)
            if found is not None:
                return found
        return None

    async def _resolve_unanswered(self, model: DesiredModel) -> ModelEntry | None:
        """An earlier create of this very definition got no answer (or an apply was killed while it was on the
        wire): look its name up before anything is sent again. The entry of the task it made, or None."""
        run = self.run
        entry = run.state.model(model.name)
        if entry is None or entry.identity != model.identity or entry.status not in SUBMIT_UNRESOLVED:
            return None
        run.emit("lookup", model.address, f"an earlier submit of {model.task_name} got no answer: looking it up")
        found = await self._look_up(model, entry.prior_tasks)
        if found is None:
            waited = duration(sum(run.options.unanswered_delays))
            run.emit(
                "lookup",
                model.address,
                f"{model.task_name} is not in the account (looked {len(run.options.unanswered_delays) + 1} times over "
                f"{waited}): submitting it again",
            )
            return None
        return await self._take(model, entry, found)

    async def _take(self, model: DesiredModel, entry: ModelEntry, task: AccountTraining) -> ModelEntry:
        """The unanswered create did make `task`: record it as this model's training, never submit again."""
        run = self.run
        entry.task_id, entry.updated_at = task.task_id, now_iso()
        if task.failed:
            entry.status, entry.reason = Status.FAILED, f"ended {task.status}"
            await run.commit()
            raise ResourceFailed(f"training {task.task_name} ended {task.status} on Novita")
        entry.status, entry.reason = Status.TRAINING, None
        await run.commit()
        run.emit(
            "task_submitted",
            model.address,
            f"no answer to the submit, but {task.task_name} is in the account ({task.task_id}): "
            "taking it, not submitting again",
            task_id=task.task_id,
        )
        return entry

    async def _prior_tasks(self, model: DesiredModel, change: ResourceChange) -> list[str]:
        """Tasks with this task name the account held before this submit (a --replace of a trained model, a
        retrain after FAILED): a look-up after an unanswered create must not take one of them for its answer."""
        known = change.known_tasks
        if known is None:  # planned offline: ask now, before the create
            tasks = await self.run.client.list_trainings()
            known = tuple(t.task_id for t in tasks if t.task_name == model.task_name)
        prior = set(known)
        previous = self.run.state.model(model.name)
        if previous is not None:
            prior.update(previous.prior_tasks if previous.identity == model.identity else ())
            if previous.task_id and previous.task_name == model.task_name:
                prior.add(previous.task_id)
        return sorted(prior)

    async def _submit(self, model: DesiredModel, assets: dict[str, str], change: ResourceChange) -> ModelEntry:
        run = self.run
        previous = run.state.model(model.name)
        unanswered = previous.unanswered_submits if previous and previous.identity == model.identity else 0
        prior = await self._prior_tasks(model, change)
        entry = self._record(ModelEntry.of(model, Status.SUBMITTING, prior_tasks=prior, unanswered_submits=unanswered))
        task_id: str | None = None
        asset_rounds = 0
        attempts = 0
        while task_id is None:
            attempts += 1
            body = model.training_body(assets)

            async def create(body: dict[str, Any] = body) -> str:
                await run.commit()  # recorded `submitting` before the POST: a kill after it is resolved by name
                return await run.client.create_training(model.task_type, body)  # type: ignore[arg-type]

            try:
                task_id = await run.submitting(create)
            except AmbiguousSubmitError as exc:
                # The create may or may not have landed (a gateway may make the task, then answer 5xx or drop):
                # the deterministic name tells. Recorded first, so a kill during the look-up resolves the same way.
                entry.status, entry.reason = Status.UNANSWERED, f"no answer: {unanswered_cause(exc)}"
                entry.unanswered_submits += 1
                entry.updated_at = now_iso()
                await run.commit()
                run.check_stop()
                run.emit(
                    "unanswered",
                    model.address,
                    f"no answer to the submit of {model.task_name} ({unanswered_cause(exc)}): looking it up by name "
                    "before anything is sent again",
                    reason=exc.reason,
                )
                found = await self._look_up(model, entry.prior_tasks)
                if found is not None:
                    return await self._take(model, entry, found)
                if attempts >= SUBMIT_ATTEMPTS:
                    raise ResourceFailed(
                        f"no answer to {attempts} submits of {model.task_name}, and the account does not list it; "
                        "it stays recorded as unanswered: the next apply looks it up again before submitting"
                    ) from exc
                run.emit(
                    "lookup",
                    model.address,
                    f"{model.task_name} is not in the account after the look-ups: submitting it again",
                )
                entry.status = Status.SUBMITTING
                continue
            except NovitaError as exc:
                if exc.status == 400 and "assets_id" in str(exc) and asset_rounds <= len(assets):
                    # Novita does not know an asset: an upload a kill interrupted (recorded as pending), or one
                    # it no longer keeps (retention is undocumented). Upload again only what it names; if it
                    # names none, the unconfirmed ones, then all. A refused create costs nothing.
                    asset_rounds += 1
                    attempts -= 1
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
                await run.refused(entry, previous, exc)
        entry.task_id = task_id
        entry.status = Status.TRAINING
        entry.reason = None
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
                run.finished.add(model.address)  # done, even if a stop cuts the commit below (the final save has it)
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

        def progress(status: TrainingStatus) -> str:
            where = status.task_status
            if status.task_status == "TRAINING" and status.progress_percent is not None:
                where += f" {status.progress_percent:.0f}%"
            deploying = status.model_status_of(status.model_name)
            return where + (f", model {deploying}" if deploying else "")

        return await run.wait_for(
            look,
            settle,
            run.options.training_poll,
            pace,
            progress=progress,
            stall_after=run.options.training_stall,
            what=f"training {model.task_name}",
        )

    async def trained_name(self, name: str) -> str:
        """The trained model name a generation uses: wait for this apply's training, or take it from state."""
        task = self.tasks.get(name)
        if task is not None:
            try:
                model_name = await asyncio.shield(task)
            except (ResourceFailed, NovitaError) as exc:
                raise Skipped(f"LoraModel/{name} failed: {exc}") from None
            except Stalled:
                raise Deferred(f"LoraModel/{name} is still training (no progress lately, see above)") from None
            except Interrupted:  # stopped while waiting for the model: this generation was stopped too, not skipped
                raise Interrupted() from None
            except Skipped as exc:
                raise Skipped(f"LoraModel/{name} was skipped ({exc})") from None
            if model_name is None:
                raise Deferred(f"LoraModel/{name} is still training (--no-wait); apply again to generate")
            return model_name
        entry = self.run.state.model(name)
        if entry is None or entry.status != Status.SUCCEEDED or not entry.model_name:
            if entry is not None and entry.in_flight and not self.run.options.wait:
                raise Deferred(f"LoraModel/{name} is still training (--no-wait); apply again to generate")
            raise Skipped(f"LoraModel/{name} has no trained model yet")
        return entry.model_name
