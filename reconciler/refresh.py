"""Read the world: the whole training list, and the status of the tasks the state holds in flight.

I/O through the Novita client only; returns the planner's plain `Remote` value.
"""

from __future__ import annotations

import asyncio
import math

from reconciler.errors import NovitaError
from reconciler.novita import NovitaClient, TrainedModel
from reconciler.plan import Remote, RemoteGeneration, RemoteTraining
from reconciler.state import State

TRAINING_IN_FLIGHT = ("submitting", "training")

PAGE_SIZE = 100


async def refresh(client: NovitaClient, state: State) -> Remote:
    """Every page of `GET /v3/training`, then one status call per training or generation in flight."""
    tasks = await client.list_trainings()
    progress: dict[str, tuple[float | None, float | None]] = {}

    flying = [e for e in state.resources.values() if e.kind == "LoraModel" and e.status == "training" and e.task_id]
    listed = {t.task_id: t for t in tasks}

    async def training_progress(task_id: str, task_type: str) -> None:
        status = await client.get_training(task_id, task_type)
        progress[task_id] = (status.progress_percent, status.eta_relative)

    generations: dict[str, RemoteGeneration] = {}

    async def generation_status(task_id: str) -> None:
        try:
            result = await client.task_result(task_id)
        except NovitaError as exc:
            if exc.status == 404:
                generations[task_id] = RemoteGeneration(task_id, "NOT_FOUND", exc.reason)
                return
            raise
        generations[task_id] = RemoteGeneration(task_id, result.status, result.reason, result.progress_percent)

    calls = [
        training_progress(e.task_id, e.task_type or "subject")
        for e in flying
        if e.task_id in listed and listed[e.task_id].task_status in ("TRAINING", "QUEUING")
    ]
    calls += [
        generation_status(e.task_id)
        for e in state.resources.values()
        if e.kind == "Generation" and e.status == "running" and e.task_id
    ]
    if calls:
        await asyncio.gather(*calls)

    trainings = tuple(
        RemoteTraining(
            task_id=t.task_id,
            task_name=t.task_name,
            task_type=t.task_type,
            status=t.task_status,
            created_at=t.created_at,
            model_name=t.model_name,
            model_status=_model_status(t.models, t.model_name),
            progress=progress.get(t.task_id, (None, None))[0],
            eta=progress.get(t.task_id, (None, None))[1],
        )
        for t in tasks
    )
    return Remote(trainings, generations, pages=max(1, math.ceil(len(tasks) / PAGE_SIZE)))


def _model_status(models: list[TrainedModel], name: str | None) -> str | None:
    for m in models:
        if m.model_name == name:
            return str(m.model_status) or None
    return None


def record_remote(state: State, remote: Remote, now: str) -> list[str]:
    """`reconciler refresh`: write into the state what finished or failed remotely. Pure; returns one line
    per entry that changed (an unchanged entry in flight is not a change)."""
    changed: list[str] = []
    for addr, entry in sorted(state.resources.items()):
        before = (entry.status, entry.task_id, entry.model_name)
        if entry.kind == "LoraModel" and entry.status in TRAINING_IN_FLIGHT:
            task = (remote.by_id(entry.task_id) if entry.task_id else None) or next(
                (t for t in remote.named(entry.task_name or "") if not t.failed), None
            )
            if task is None:
                continue
            if task.succeeded:
                entry.status, entry.task_id, entry.model_name = "succeeded", task.task_id, task.model_name
            elif task.failed:
                entry.status, entry.reason = "failed", f"ended {task.status}"
            else:
                entry.status, entry.task_id = "training", task.task_id
            if (entry.status, entry.task_id, entry.model_name) != before:
                entry.updated_at = now
                changed.append(f"{addr}: {entry.status} ({task.describe()})")
        elif entry.kind == "Generation" and entry.status == "running" and entry.task_id:
            seen = remote.generations.get(entry.task_id)
            if seen is not None and seen.status in ("TASK_STATUS_FAILED", "NOT_FOUND"):
                entry.status, entry.reason, entry.updated_at = "failed", seen.reason or seen.status, now
                changed.append(f"{addr}: failed ({entry.reason})")
    return changed
