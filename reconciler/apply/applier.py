"""The applier: carries out a Plan in dependency order, one resource's failure never stopping the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from reconciler.apply.context import Run
from reconciler.apply.copies import Copier
from reconciler.apply.generations import Generator
from reconciler.apply.outcome import (
    ApplyResult,
    Cause,
    ClientError,
    Deferred,
    Failed,
    Interrupted,
    OutputsStoreFailed,
    Rejected,
    ResourceFailed,
    Skipped,
    Stalled,
    StillRunning,
    Stopped,
    StopPoint,
)
from reconciler.apply.trainings import Trainer
from reconciler.apply.uploads import Uploader
from reconciler.errors import AmbiguousSubmitError, NovitaError, RemoteError
from reconciler.novita import error_detail
from reconciler.outputs.folders import forget_outputs, prune
from reconciler.plan.changes import Plan, ResourceChange
from reconciler.present import outcome as words
from reconciler.state import DatasetEntry, ForgottenEntry, GenerationEntry, ModelEntry, State, now_iso
from reconciler.status import RUNNING_REMOTELY, SUBMIT_UNRESOLVED
from reconciler.text import plural

T = TypeVar("T")


def failure_cause(error: ResourceFailed | NovitaError | RemoteError) -> Cause:
    """Why a resource failed: its own cause, the outputs remote's failure, Novita's refusal (an answer with a
    status), or the client's error."""
    if isinstance(error, ResourceFailed):
        return error.cause
    if isinstance(error, RemoteError):
        return OutputsStoreFailed(str(error))
    if error.status and not isinstance(error, AmbiguousSubmitError):
        return Rejected(error_detail(error))
    return ClientError(str(error))


class Applier:
    """`await Applier(plan, Run(...)).run()` applies the plan and returns what it did; `interrupt()` is Ctrl-C."""

    def __init__(
        self, plan: Plan, run: Run, finishing: Callable[[ApplyResult, State], str | None] | None = None
    ) -> None:
        self.plan = plan
        self.finishing = finishing  # run last, before the closing line (the gallery refresh); returns a note
        self.run_ = run
        self.uploader = Uploader(self.run_)
        self.trainer = Trainer(self.run_, self.uploader)
        self.generator = Generator(self.run_, self.trainer)

    @property
    def result(self) -> ApplyResult:
        return self.run_.result

    def interrupt(self) -> None:
        """Ctrl-C (or SIGTERM): stop submitting and stop waiting, at once; what was submitted keeps running
        remotely. A second call also abandons the creates still on the wire."""
        self.run_.stop("interrupt")

    async def run(self) -> ApplyResult:
        run, plan = self.run_, self.plan
        began = time.monotonic()
        deadline = None
        if run.options.timeout is not None:
            deadline = asyncio.get_running_loop().call_later(run.options.timeout, run.stop, "timeout")
        pruning = f" and pruning {plural(len(plan.prunable), 'file')}" if plan.prune and plan.prunable else ""
        text = f"Applying {plural(len(plan.changes), 'change')}{pruning}."
        run.emit("apply_start", None, text, changes=len(plan.changes))
        await run.billing.start(run)
        for change in plan.changes:
            if change.kind == "Dataset":
                run.state.put(DatasetEntry.of(run.desired.datasets[change.name]))
            elif change.action == "forget":
                self._forget(change)
        if plan.prune:
            self._prune()
        await run.commit()
        for change in plan.changes:
            if change.kind == "LoraModel" and change.action != "forget":
                self.trainer.tasks[change.name] = run.spawn(self._guard(change, self.trainer.apply(change)))
        first: dict[str, asyncio.Task[None]] = {}  # what a copy of this plan's own run waits for
        copier = Copier(run, self.generator, first)
        for c in plan.changes:
            if c.kind == "Generation" and c.action not in ("forget", "copy"):
                work = copier.apply(c) if c.action == "move" else self.generator.apply(c)
                first[c.address] = run.spawn(self._guard(c, work))
        copies = [run.spawn(self._guard(c, copier.apply(c))) for c in plan.changes if c.action == "copy"]
        gens = [*first.values(), *copies]
        outcomes = await asyncio.gather(*self.trainer.tasks.values(), *gens, return_exceptions=True)
        if deadline is not None:
            deadline.cancel()
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, (ResourceFailed, Skipped, Deferred, Stalled, Interrupted, NovitaError, asyncio.CancelledError)
            ):
                raise outcome  # a bug, not a resource failure: show the traceback
        await run.commit()
        result = run.result
        if self.finishing is not None and run.stopped is None:
            note = self.finishing(result, run.state)
            if note:
                run.emit("gallery", None, note)
        result.interrupted = run.stopped == "interrupt"
        result.timed_out = run.stopped == "timeout"
        running = (
            StillRunning(e.address, (e.task_name if isinstance(e, ModelEntry) else None) or e.task_id or "")
            for e in run.state.running_remotely()
        )
        result.still_running = sorted(running, key=lambda r: f"{r.address} ({r.task})")
        await run.billing.finish(run, plan.estimate.cost if plan.estimate is not None else None)
        result.elapsed = time.monotonic() - began
        run.emit("apply_complete", None, words.summary(result), **result.counts())
        return result

    async def _guard(self, change: ResourceChange, work: Awaitable[T]) -> T:
        """Run one resource; turn its failure into its outcome instead of stopping the others."""
        run, address = self.run_, change.address
        try:
            return await work
        except Deferred as exc:
            run.result.outcomes[address] = exc.outcome
            run.emit("deferred", address, f"left for the next apply: {words.postponed(exc.outcome)}")
            raise
        except Skipped as exc:
            run.result.outcomes[address] = exc.outcome
            run.emit("skipped", address, f"skipped: {words.skipped(exc.outcome)}")
            raise
        except Stalled as exc:
            run.result.outcomes[address] = exc.outcome
            run.emit("stalled", address, f"stalled: {words.stuck(exc.outcome)}")
            raise
        except (Interrupted, asyncio.CancelledError):
            if address in run.finished:  # stopped after its work was recorded: nothing left to do
                raise Interrupted() from None
            run.result.outcomes[address] = Stopped(run.stopped or "interrupt", self._stopped_at(address))
            raise Interrupted() from None
        except (ResourceFailed, NovitaError, RemoteError) as exc:  # RemoteError: the outputs remote failed
            cause = failure_cause(exc)
            run.result.outcomes[address] = Failed(cause)
            reason = exc.reason if isinstance(exc, NovitaError) else ""
            run.emit("task_failed", address, f"failed: {words.cause(cause, address)}", reason=reason)
            raise ResourceFailed(cause) from exc

    def _stopped_at(self, address: str) -> StopPoint:
        entry = self.run_.state.entry(address)
        if entry is not None and entry.status in RUNNING_REMOTELY:
            return "waiting"
        if entry is not None and entry.status in SUBMIT_UNRESOLVED:
            return "submitting"
        return "before-submit"

    def _forget(self, change: ResourceChange) -> None:
        """Drop the entry; a generation's files stay on disk and on record (a ForgottenEntry) until pruned."""
        run = self.run_
        entry = run.state.resources.pop(change.address, None)
        run.result.forgotten += 1
        if isinstance(entry, GenerationEntry):
            files = forget_outputs(run.root, entry)
            earlier = run.state.entry(f"Forgotten/{change.address}")
            if isinstance(earlier, ForgottenEntry):  # forgotten before, added again, forgotten again
                files = list({f.path: f for f in [*earlier.files, *files]}.values())
            if files:
                run.state.put(
                    ForgottenEntry(name=change.address, identity=entry.identity, files=files, forgotten_at=now_iso())
                )
        run.emit("forgotten", change.address, "forgotten")

    def _prune(self) -> None:
        """`apply --prune`: remove exactly the files the plan listed, if their content is unchanged."""
        run = self.run_
        removed, changed = prune(run.root, run.state, self.plan.prunable)  # changed since the plan
        kept = changed + len(self.plan.prune_kept)
        run.result.pruned += removed
        message = f"pruned {plural(removed, 'file')}"
        if kept:
            message += f" (kept {kept} changed since they were written)"
        run.emit("pruned", None, message, removed=removed, kept=kept)
