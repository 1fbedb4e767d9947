"""The applier: carries out a Plan in dependency order, one resource's failure never stopping the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from reconciler.apply.context import ApplyOptions, Run
from reconciler.apply.generations import Generator
from reconciler.apply.outcome import ApplyResult, Deferred, Interrupted, ResourceFailed, Skipped
from reconciler.apply.trainings import Trainer
from reconciler.apply.uploads import Uploader
from reconciler.desired import Desired
from reconciler.errors import AmbiguousSubmitError, NovitaError
from reconciler.novita import NovitaClient, error_detail
from reconciler.outputs import SIDECAR_SUFFIX, remove_files
from reconciler.outputs_remote import OutputsRemote
from reconciler.plan import Plan, ResourceChange
from reconciler.progress import Reporter
from reconciler.remote import OutputFacts
from reconciler.state import DatasetEntry, GenerationEntry, ModelEntry
from reconciler.state.backend import Store
from reconciler.status import RUNNING_REMOTELY
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
    ) -> None:
        self.plan = plan
        self.run_ = Run(desired, store, client, reporter, options, project_root, outputs or {}, outputs_remote)
        self.uploader = Uploader(self.run_)
        self.trainer = Trainer(self.run_, self.uploader)
        self.generator = Generator(self.run_, self.trainer)

    @property
    def result(self) -> ApplyResult:
        return self.run_.result

    def interrupt(self) -> None:
        """Ctrl-C: stop submitting and stop waiting; what was submitted keeps running remotely."""
        self.run_.stop.set()

    async def run(self) -> ApplyResult:
        run, plan = self.run_, self.plan
        began = time.monotonic()
        run.emit("apply_start", None, f"Applying {plural(len(plan.changes), 'change')}.", changes=len(plan.changes))
        for change in plan.changes:
            if change.kind == "Dataset":
                run.state.put(DatasetEntry.of(run.desired.datasets[change.name]))
            elif change.action == "forget":
                self._forget(change)
        await run.commit()
        for change in plan.changes:
            if change.kind == "LoraModel" and change.action != "forget":
                self.trainer.tasks[change.name] = asyncio.create_task(self._guard(change, self.trainer.apply(change)))
        gens = [
            asyncio.create_task(self._guard(c, self.generator.apply(c)))
            for c in plan.changes
            if c.kind == "Generation" and c.action != "forget"
        ]
        outcomes = await asyncio.gather(*self.trainer.tasks.values(), *gens, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, (ResourceFailed, Skipped, Interrupted, NovitaError)
            ):
                raise outcome  # a bug, not a resource failure: show the traceback
        await run.commit()
        result = run.result
        result.interrupted = run.stop.is_set()
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
        except Interrupted:
            entry = run.state.entry(change.address)
            running = entry is not None and entry.status in RUNNING_REMOTELY
            run.result.skipped[change.address] = (
                "interrupted while waiting (it keeps running on Novita)"
                if running
                else "interrupted before it was submitted"
            )
            raise
        except (ResourceFailed, NovitaError) as exc:
            message = str(exc)
            if isinstance(exc, NovitaError) and exc.status and not isinstance(exc, AmbiguousSubmitError):
                message = f"Novita rejected {change.address}: {error_detail(exc)}"
            run.result.failed[change.address] = message
            run.emit("task_failed", change.address, f"failed: {message}", reason=getattr(exc, "reason", ""))
            raise ResourceFailed(message) from exc

    def _forget(self, change: ResourceChange) -> None:
        run = self.run_
        entry = run.state.resources.pop(change.address, None)
        run.result.forgotten += 1
        message = "forgotten"
        if isinstance(entry, GenerationEntry) and run.options.prune and entry.files:
            removed, kept = remove_files([(run.root / f.path, f.sha256) for f in entry.files])
            if entry.output:
                sidecar = run.root / entry.output / f"{entry.name}{SIDECAR_SUFFIX}"
                sidecar.unlink(missing_ok=True)
            run.result.pruned += removed
            message += f"; pruned {plural(removed, 'image')}"
            if kept:
                message += f" (kept {kept} changed since they were written)"
        run.emit("forgotten", change.address, message)
