"""Execute a Plan: uploads, trainings and generations in dependency order, state saved after every step.

The plan decides; this package only carries it out. Every step that changes the world (an upload, a
submitted task, a finished task, a downloaded image) is committed to the state before the next step relies
on it, and a task is recorded as "submitting" before its create call, so an apply killed at any instant
resumes without paying twice for a training (found by its deterministic name) and without losing a
generation (its task id is recorded the moment Novita accepts it; one whose submit got no answer follows
`on_unanswered_submit`). See docs/ARCHITECTURE.md, "Kill-safety".

    applier      the driver: order, failure isolation, forget/prune, the closing summary
    uploads      images, once per content hash, right before the training that needs them
    trainings    submit / adopt / resume a training and wait until its model serves
    generations  submit (throttled), wait, download, sidecar; adopt from disk
    context      what they share (state and committer, client, slots, throttles, stopping, polling with the
                 no-progress ceiling)
    commit       group commit of the state
    slots        the concurrency slots: submits and downloads first, uploads in their training's turn
    polling      when to look at a running task again, from Novita's estimate
    throttle     the images-per-minute limiter
    outcome      the result and the ways a resource ends without success
"""

from reconciler.apply.applier import Applier
from reconciler.apply.commit import Committer
from reconciler.apply.context import DEFAULT_IPM, GENERATION_STALL, TRAINING_STALL, ApplyOptions, Run, Watch
from reconciler.apply.outcome import ApplyResult, Deferred, Interrupted, ResourceFailed, Skipped, Stalled
from reconciler.apply.throttle import IpmLimiter

__all__ = [
    "DEFAULT_IPM",
    "GENERATION_STALL",
    "TRAINING_STALL",
    "Applier",
    "ApplyOptions",
    "ApplyResult",
    "Committer",
    "Deferred",
    "Interrupted",
    "IpmLimiter",
    "ResourceFailed",
    "Run",
    "Skipped",
    "Stalled",
    "Watch",
]
