"""Read the world: the whole training list, and the status of the tasks the state holds in flight.

I/O through the Novita client only; returns the planner's plain `Remote` value. `record_remote` (for
`reconciler refresh`) is pure: it writes what the refresh saw into a State.
"""

from __future__ import annotations

import asyncio
import math

from reconciler.errors import NovitaError
from reconciler.novita import NovitaClient
from reconciler.remote import Remote, RemoteGeneration, RemoteTraining
from reconciler.state import GenerationEntry, ModelEntry, State
from reconciler.status import NOT_FOUND, Status, generation_lost

PAGE_SIZE = 100


async def refresh(client: NovitaClient, state: State) -> Remote:
    """Every page of `GET /v3/training`, then one status call per training or generation in flight."""
    tasks = await client.list_trainings()
    listed = {t.task_id: t for t in tasks}
    progress: dict[str, tuple[float | None, float | None]] = {}
    generations: dict[str, RemoteGeneration] = {}

    async def training_progress(task_id: str, task_type: str) -> None:
        status = await client.get_training(task_id, task_type)
        progress[task_id] = (status.progress_percent, status.eta_relative)

    async def generation_status(task_id: str) -> None:
        try:
            result = await client.task_result(task_id)
        except NovitaError as exc:
            if exc.status == 404:
                generations[task_id] = RemoteGeneration(task_id, NOT_FOUND, exc.reason)
                return
            raise
        generations[task_id] = RemoteGeneration(task_id, result.status, result.reason, result.progress_percent)

    calls = [
        training_progress(e.task_id, e.task_type or "subject")
        for e in state.models()
        if e.status == Status.TRAINING
        and e.task_id in listed
        and listed[e.task_id].task_status.upper() in ("TRAINING", "QUEUING")
    ]
    calls += [generation_status(e.task_id) for e in state.generations() if e.status == Status.RUNNING and e.task_id]
    if calls:
        await asyncio.gather(*calls)

    trainings = tuple(RemoteTraining.listed(t, *progress.get(t.task_id, (None, None))) for t in tasks)
    return Remote(trainings, generations, pages=max(1, math.ceil(len(tasks) / PAGE_SIZE)))


def record_remote(state: State, remote: Remote, now: str) -> list[str]:
    """`reconciler refresh`: write into the state what finished or failed remotely. Pure; returns one line
    per entry that changed (an unchanged entry in flight is not a change)."""
    changed: list[str] = []
    for addr, entry in sorted(state.resources.items()):
        if isinstance(entry, ModelEntry) and entry.in_flight:
            task = (remote.by_id(entry.task_id) if entry.task_id else None) or remote.live(entry.task_name or "")
            if task is None:
                continue
            before = (entry.status, entry.task_id, entry.model_name)
            if task.succeeded:
                entry.status, entry.task_id, entry.model_name = Status.SUCCEEDED, task.task_id, task.model_name
            elif task.failed:
                entry.status, entry.reason = Status.FAILED, f"ended {task.status}"
            else:
                entry.status, entry.task_id = Status.TRAINING, task.task_id
            if (entry.status, entry.task_id, entry.model_name) != before:
                entry.updated_at = now
                changed.append(f"{addr}: {entry.status} ({task.describe()})")
        elif isinstance(entry, GenerationEntry) and entry.status == Status.RUNNING and entry.task_id:
            seen = remote.generations.get(entry.task_id)
            if seen is not None and generation_lost(seen.status):
                entry.status, entry.reason, entry.updated_at = Status.FAILED, seen.reason or seen.status, now
                changed.append(f"{addr}: failed ({entry.reason})")
    return changed
