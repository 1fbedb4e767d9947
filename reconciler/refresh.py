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
