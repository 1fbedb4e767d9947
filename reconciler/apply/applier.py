"""The applier: carries out a Plan in dependency order, one resource's failure never stopping the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from reconciler.apply.context import ApplyOptions, Run
from reconciler.apply.copies import Copier
from reconciler.apply.generations import Generator
from reconciler.apply.outcome import ApplyResult, Deferred, Interrupted, ResourceFailed, Skipped, Stalled
from reconciler.apply.trainings import Trainer
from reconciler.apply.uploads import Uploader
from reconciler.desired.resources import Desired
from reconciler.errors import AmbiguousSubmitError, NovitaError
from reconciler.novita import NovitaClient, error_detail
from reconciler.observe.facts import OutputFacts
from reconciler.outputs.folders import forget_outputs, prune
from reconciler.outputs.store import OutputsRemote
from reconciler.plan.planner import Plan, ResourceChange
from reconciler.present.progress import Reporter
from reconciler.state import DatasetEntry, ForgottenEntry, GenerationEntry, ModelEntry, State, now_iso
from reconciler.state.backend import Store
from reconciler.status import RUNNING_REMOTELY, SUBMIT_UNRESOLVED
from reconciler.text import plural

T = TypeVar("T")


class Applier:
    """`await Applier(...).run()` applies the plan and returns what it did; `interrupt()` is Ctrl-C."""

    def __init__(
        self,
        plan: Plan,
        desired: Desired,
        store: Store,
        client: NovitaClient,
        reporter: Reporter,
        options: ApplyOptions,
        project_root: Path,
        outputs: dict[str, OutputFacts] | None = None,
        outputs_remote: OutputsRemote | None = None,
        finishing: Callable[[ApplyResult, State], str | None] | None = None,
    ) -> None:
        self.plan = plan
        self.finishing = finishing  # run last, before the closing line (the gallery refresh); returns a note
        self.run_ = Run(desired, store, client, reporter, options, project_root, outputs or {}, outputs_remote)
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
                outcome, (ResourceFailed, Skipped, Stalled, Interrupted, NovitaError, asyncio.CancelledError)
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
        result.still_running = sorted(
            f"{e.address} ({(e.task_name if isinstance(e, ModelEntry) else None) or e.task_id})"
            for e in run.state.running_remotely()
        )
        result.elapsed = time.monotonic() - began
        run.emit("apply_complete", None, result.summary(), **result.counts())
        return result

    async def _guard(self, change: ResourceChange, work: Awaitable[T]) -> T:
        """Run one resource; turn its failure into a result line instead of stopping the others."""
        run = self.run_
        try:
            return await work
        except Deferred as exc:
            run.result.deferred[change.address] = str(exc)
            run.emit("deferred", change.address, f"left for the next apply: {exc}")
            raise
        except Skipped as exc:
            run.result.skipped[change.address] = str(exc)
            run.emit("skipped", change.address, f"skipped: {exc}")
            raise
        except Stalled as exc:
            run.result.stalled[change.address] = str(exc)
            run.emit("stalled", change.address, f"stalled: {exc}")
            raise
        except (Interrupted, asyncio.CancelledError):
            if change.address in run.finished:  # stopped after its work was recorded: nothing left to do
                raise Interrupted() from None
            entry = run.state.entry(change.address)
            why = "the deadline (--timeout) passed" if run.stopped == "timeout" else "interrupted"
            if entry is not None and entry.status in RUNNING_REMOTELY:
                where = "while waiting (it keeps running on Novita)"
            elif entry is not None and entry.status in SUBMIT_UNRESOLVED:
                where = "while submitting it (the next apply resolves it)"
            else:
                where = "before it was submitted"
            run.result.stopped[change.address] = f"{why} {where}"
            raise Interrupted() from None
        except (ResourceFailed, NovitaError) as exc:
            message = str(exc)
            if isinstance(exc, NovitaError) and exc.status and not isinstance(exc, AmbiguousSubmitError):
                message = f"Novita rejected {change.address}: {error_detail(exc)}"
            run.result.failed[change.address] = message
            run.emit("task_failed", change.address, f"failed: {message}", reason=getattr(exc, "reason", ""))
            raise ResourceFailed(message) from exc

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
