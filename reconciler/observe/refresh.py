"""Read the world: the whole training list, and the status of the tasks the state holds in flight (and of the
trainings it holds that the listing does not show: a listing may lag a create).

I/O through the Novita client only; returns the planner's plain `Account` value. `record_remote` (for
`reconciler refresh`) is pure: it writes what the refresh saw into a State.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

from reconciler.errors import NovitaError
from reconciler.novita import NovitaClient, TrainingList, TrainingTask
from reconciler.observe.facts import Account, AccountGeneration, AccountTraining
from reconciler.state import GenerationEntry, ModelEntry, State
from reconciler.status import NOT_FOUND, SUBMIT_UNRESOLVED, Status, generation_lost, training_status


class EarlyListing:
    """Every page of `GET /v3/training`, fetched on a thread of its own from the moment this is made, so the
    pages (one after another: each needs the previous page's cursor) arrive while the manifests load.

    `tasks()` waits for them (and raises what the fetch raised); `cancel()` abandons them (the manifests were
    invalid: nothing is planned). Either way the thread is done when it returns.
    """

    def __init__(self, make_client: Callable[[], NovitaClient]) -> None:
        self._loop = asyncio.new_event_loop()
        self._fetch = self._loop.create_task(self._list(make_client))
        self._tasks: TrainingList | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="training-list", daemon=True)
        self._thread.start()

    @staticmethod
    async def _list(make_client: Callable[[], NovitaClient]) -> TrainingList:
        async with make_client() as client:
            return await client.list_trainings()

    def _run(self) -> None:
        try:
            self._tasks = self._loop.run_until_complete(self._fetch)
        except BaseException as exc:  # handed to whoever asks for the tasks, in the main thread
            self._error = exc
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def tasks(self) -> TrainingList:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._tasks is not None
        return self._tasks

    def cancel(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop closed in between: the fetch is over
                self._loop.call_soon_threadsafe(self._fetch.cancel)
        self._thread.join()


def _in_flight(
    state: State, tasks: list[TrainingTask]
) -> tuple[list[tuple[str, str]], list[tuple[ModelEntry, str]], list[str]]:
    """What a refresh asks one status call each about: (task id, type) of the trainings the list shows running;
    (entry, task id) of the trainings the state holds that the list does not show (vanished, or not listed yet:
    a listing may lag a create); the ids of generations running."""
    listed = {t.task_id: t for t in tasks}
    trainings = [
        (e.task_id, e.task_type or "subject")
        for e in state.models()
        if e.status == Status.TRAINING
        and e.task_id in listed
        and listed[e.task_id].task_status.upper() in ("TRAINING", "QUEUING")
    ]
    unlisted = [
        (e, e.task_id)
        for e in state.models()
        if e.task_id and e.task_id not in listed and e.status in (Status.TRAINING, Status.SUCCEEDED)
    ]
    generations = [e.task_id for e in state.generations() if e.status == Status.RUNNING and e.task_id]
    return trainings, unlisted, generations


Progress = dict[str, tuple[float | None, float | None]]  # task id -> (progress_percent, eta_relative)


def _remote(
    tasks: TrainingList,
    progress: Progress,
    generations: dict[str, AccountGeneration],
    unlisted: list[AccountTraining] | None = None,
) -> Account:
    trainings = tuple(AccountTraining.listed(t, *progress.get(t.task_id, (None, None))) for t in tasks)
    return Account((*trainings, *(unlisted or ())), generations, pages=tasks.pages)


def settled(state: State, tasks: TrainingList) -> Account | None:
    """What a refresh would return from the training list `tasks` alone, when nothing is in flight (a converged
    project: no status call, so no connection is needed); None when some task needs a status call."""
    trainings, unlisted, generations = _in_flight(state, tasks)
    return None if trainings or unlisted or generations else _remote(tasks, {}, {})


async def refresh(client: NovitaClient, state: State, listing: TrainingList | None = None) -> Account:
    """Every page of `GET /v3/training` (unless `listing` already holds them: see EarlyListing), then one status
    call per training or generation in flight."""
    tasks = listing if listing is not None else await client.list_trainings()
    progress: Progress = {}
    generations: dict[str, AccountGeneration] = {}

    async def training_progress(task_id: str, task_type: str) -> None:
        status = await client.get_training(task_id, task_type)
        progress[task_id] = (status.progress_percent, status.eta_relative)

    async def generation_status(task_id: str) -> None:
        try:
            result = await client.task_result(task_id)
        except NovitaError as exc:
            if exc.status == 404:
                generations[task_id] = AccountGeneration(task_id, NOT_FOUND, exc.reason)
                return
            raise
        generations[task_id] = AccountGeneration(task_id, result.status, result.reason, result.progress_percent)

    unlisted: list[AccountTraining] = []

    async def not_listed(entry: ModelEntry, task_id: str) -> None:
        """A training the state holds that the listing does not show: vanished (404), or not listed yet (a
        listing may lag a create): asked by its id, so a lagging listing never looks like a lost training."""
        try:
            status = await client.get_training(task_id, entry.task_type or "subject")
        except NovitaError as exc:
            if exc.status == 404:
                return
            raise
        unlisted.append(
            AccountTraining(
                task_id=task_id,
                task_name=entry.task_name or "",
                task_type=entry.task_type or "subject",
                status=status.task_status,
                model_name=status.model_name,
                model_status=status.model_status_of(status.model_name),
                progress=status.progress_percent,
                eta=status.eta_relative,
            )
        )

    running_trainings, not_in_list, running_generations = _in_flight(state, tasks)
    calls = [training_progress(task_id, kind) for task_id, kind in running_trainings]
    calls += [not_listed(entry, task_id) for entry, task_id in not_in_list]
    calls += [generation_status(task_id) for task_id in running_generations]
    if calls:
        await asyncio.gather(*calls)
    return _remote(tasks, progress, generations, unlisted)


def record_remote(state: State, remote: Account, now: str) -> list[str]:
    """`reconciler refresh`: write into the state what finished or failed remotely. Pure; returns one line
    per entry that changed (an unchanged entry in flight is not a change)."""
    changed: list[str] = []
    for addr, entry in sorted(state.resources.items()):
        if isinstance(entry, ModelEntry) and entry.in_flight:
            if entry.status in SUBMIT_UNRESOLVED:  # the create got no answer: its name tells whether it landed
                task = remote.answer_to(entry.task_name or "", entry.prior_tasks)
            else:
                task = (remote.by_id(entry.task_id) if entry.task_id else None) or remote.live(entry.task_name or "")
            if task is None:
                continue
            before = (entry.status, entry.task_id, entry.model_name)
            entry.status = training_status(task.status, [task.model_status or ""])
            if entry.status == Status.SUCCEEDED:
                entry.task_id, entry.model_name = task.task_id, task.model_name
            elif entry.status == Status.FAILED:
                entry.reason = f"ended {task.status}"
            else:
                entry.task_id = task.task_id
            if (entry.status, entry.task_id, entry.model_name) != before:
                entry.updated_at = now
                changed.append(f"{addr}: {entry.status} ({task.describe()})")
        elif isinstance(entry, GenerationEntry) and entry.status == Status.RUNNING and entry.task_id:
            seen = remote.generations.get(entry.task_id)
            if seen is not None and generation_lost(seen.status):
                entry.status, entry.reason, entry.updated_at = Status.FAILED, seen.reason or seen.status, now
                changed.append(f"{addr}: failed ({entry.reason})")
    return changed
