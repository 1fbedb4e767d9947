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
import functools
import time

from reconciler.apply.context import SUBMIT_ATTEMPTS, Run
from reconciler.apply.outcome import (
    Blocked,
    Deferred,
    Failed,
    Interrupted,
    NoModelName,
    NotInAccount,
    Postponed,
    ResourceFailed,
    Skipped,
    Stalled,
    Submitted,
    Succeeded,
    Task,
    Unanswered,
    UnknownStatus,
)
from reconciler.apply.polling import Look
from reconciler.apply.uploads import Uploader
from reconciler.desired.resources import DesiredModel
from reconciler.errors import AmbiguousSubmitError, NovitaError
from reconciler.novita import TrainingStatus
from reconciler.observe.facts import Account, AccountTraining
from reconciler.plan.changes import ResourceChange
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
                    raise ResourceFailed(NotInAccount(Task.training(model.task_name)))
                task_id = found.task_id
            entry.task_id = task_id
            entry.status = Status.TRAINING
            if change.model_name:
                entry.status, entry.model_name = Status.SUCCEEDED, change.model_name
            entry.updated_at = now_iso()
            await run.commit()
            shown = entry.task_name or model.task_name  # a training adopted by identity keeps its own task name
            if change.action == "adopt":
                run.adopted(addr, f"adopted training {shown} ({task_id})", task_id=task_id)
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
            run.result.outcomes[addr] = Submitted()
            return None
        name = await self._wait(model, entry)
        if submitted:
            run.result.trained += 1
        run.result.outcomes.setdefault(addr, Succeeded())  # adopted in flight, then waited for: stays adopted
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
            await run.task_failed(entry, f"ended {task.status}", Task.training(task.task_name), task.status)
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
        """Create the training (recorded `submitting` first); an unanswered create is looked up by name before it
        is sent again, an asset Novita does not know is uploaded again."""
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
            post = functools.partial(run.client.create_training, model.task_type, body)  # type: ignore[arg-type]
            try:
                task_id = await run.create(post)
            except AmbiguousSubmitError as exc:
                found = await self._after_no_answer(model, entry, exc, attempts)
                if found is not None:
                    return found
            except NovitaError as exc:
                if not (exc.status == 400 and "assets_id" in str(exc) and asset_rounds <= len(assets)):
                    await run.refused(entry, previous, exc)
                asset_rounds += 1
                attempts -= 1  # a refused create costs nothing
                assets = await self._upload_again(model, assets, exc, first_round=asset_rounds == 1)
        await run.accepted(entry, task_id, Status.TRAINING)
        run.emit("task_submitted", model.address, f"training {model.task_name} submitted ({task_id})", task_id=task_id)
        return entry

    async def _after_no_answer(
        self, model: DesiredModel, entry: ModelEntry, exc: AmbiguousSubmitError, attempts: int
    ) -> ModelEntry | None:
        """The create may or may not have landed (a gateway may make the task, then answer 5xx or drop): the
        deterministic name tells. Recorded first, so a kill during the look-up resolves the same way. The entry of
        the task it made, or None to submit again (raises once this apply is out of tries)."""
        run = self.run
        cause = await run.unanswered(entry, exc)
        run.check_stop()
        run.emit(
            "unanswered",
            model.address,
            f"no answer to the submit of {model.task_name} ({cause}): looking it up by name "
            "before anything is sent again",
            reason=exc.reason,
        )
        found = await self._look_up(model, entry.prior_tasks)
        if found is not None:
            return await self._take(model, entry, found)
        if attempts >= SUBMIT_ATTEMPTS:
            raise ResourceFailed(Unanswered(Task.training(model.task_name), attempts, cause)) from exc
        run.emit(
            "lookup", model.address, f"{model.task_name} is not in the account after the look-ups: submitting it again"
        )
        entry.status = Status.SUBMITTING
        return None

    async def _upload_again(
        self, model: DesiredModel, assets: dict[str, str], exc: NovitaError, *, first_round: bool
    ) -> dict[str, str]:
        """Novita does not know an asset: an upload a kill interrupted (recorded as pending), or one it no longer
        keeps (retention is undocumented). Upload again only what it names; if it names none, the unconfirmed ones
        (on the first round), then all."""
        run = self.run
        named = {h for h, a in assets.items() if a and a in str(exc)}
        pending = {h for h in assets if (rec := run.state.images.get(h)) is None or rec.status != "uploaded"}
        again = named or (pending if first_round and pending else set(assets))
        for h in again:
            self.uploader.forget(h, assets[h])
        run.emit(
            "reupload", model.address, f"Novita does not know {len(again)} uploaded image(s): uploading them again"
        )
        return await self.uploader.upload_all(model)

    async def _wait(self, model: DesiredModel, entry: ModelEntry) -> str:
        run = self.run
        task_id = entry.task_id
        assert task_id is not None
        began = time.monotonic()

        async def look() -> TrainingStatus:
            return await run.client.get_training(task_id, model.task_type)

        async def settle(status: TrainingStatus) -> str | None:
            return await self._settle(model, entry, status, began)

        return await run.wait_for(
            look,
            settle,
            run.options.training,
            lambda status: Look(status.eta_relative, status.progress_percent),
            progress=_how_far,
            what=Task.training(model.task_name),
        )

    async def _settle(self, model: DesiredModel, entry: ModelEntry, status: TrainingStatus, began: float) -> str | None:
        """One look at the training: its model name once it serves, None while it runs; raises when it failed."""
        run = self.run
        task = Task.training(model.task_name)
        if status.is_done and status.model_name:
            entry.status, entry.model_name, entry.updated_at = Status.SUCCEEDED, status.model_name, now_iso()
            entry.finished_at = entry.updated_at  # how long it took teaches the plan's estimate
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
            await run.task_failed(entry, f"ended {status.task_status}", task, status.task_status)
        if not status.is_pending:
            raise ResourceFailed(UnknownStatus(task, status.task_status))
        if status.is_done:  # SUCCESS and SERVING, yet no model name to generate with
            raise ResourceFailed(NoModelName(task))
        run.emit(
            "task_progress",
            model.address,
            _progress_line(model, status),
            status=status.task_status,
            progress=status.progress_percent,
            eta=status.eta_relative,
        )
        return None

    async def trained_name(self, name: str) -> str:
        """The trained model name a generation uses: wait for this apply's training, or take it from state."""
        needs = f"LoraModel/{name}"
        task = self.tasks.get(name)
        if task is not None:
            try:
                model_name = await asyncio.shield(task)
            except ResourceFailed as exc:  # the model's own failure (its _guard turned any error into this)
                raise Skipped(Blocked(needs, Failed(exc.cause))) from None
            except Stalled:
                raise Deferred(Postponed(needs, stalled=True)) from None
            except Interrupted:  # stopped while waiting for the model: this generation was stopped too, not skipped
                raise Interrupted() from None
            except Skipped as exc:
                raise Skipped(Blocked(needs, exc.outcome)) from None
            if model_name is None:
                raise Deferred(Postponed(needs))
            return model_name
        entry = self.run.state.model(name)
        if entry is None or entry.status != Status.SUCCEEDED or not entry.model_name:
            if entry is not None and entry.in_flight and not self.run.options.wait:
                raise Deferred(Postponed(needs))
            raise Skipped(Blocked(needs))
        return entry.model_name


def _progress_line(model: DesiredModel, status: TrainingStatus) -> str:
    """`training alice-v1-0123abcd TRAINING 45% (eta 3m10s)`, the line of a progress event."""
    text = f"training {model.task_name} {status.task_status}"
    if status.task_status == "TRAINING" and status.progress_percent is not None:
        text += f" {status.progress_percent:.0f}%"
    if status.task_status == "SUCCESS":
        text += " (model deploying)"
    if status.eta_relative:
        text += f" (eta {duration(status.eta_relative)})"
    return text


def _how_far(status: TrainingStatus) -> str:
    """How far a training got, for the no-progress ceiling: `TRAINING 45%`, `SUCCESS, model DEPLOYING`."""
    where = status.task_status
    if status.task_status == "TRAINING" and status.progress_percent is not None:
        where += f" {status.progress_percent:.0f}%"
    deploying = status.model_status_of(status.model_name)
    return where + (f", model {deploying}" if deploying else "")
