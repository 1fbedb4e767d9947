"""Pure: an apply's outcomes in words, for its events, its summary line and the CLI's closing lines."""

from __future__ import annotations

from reconciler.apply.outcome import (
    ApplyResult,
    BadRecord,
    Blocked,
    Cause,
    ClientError,
    CopySourceLost,
    Failed,
    Held,
    NoImages,
    NoModelName,
    NotInAccount,
    OutputsChanged,
    OutputsStoreFailed,
    Postponed,
    Rejected,
    Stopped,
    Stuck,
    Task,
    TaskEnded,
    Unanswered,
    Unfunded,
    UnknownStatus,
    UploadFailed,
)
from reconciler.text import duration, plural


def task(task: Task) -> str:
    """`training alice-v1-0123abcd`, `txt2img task 8f3e…`."""
    return f"training {task.ref}" if task.kind == "training" else f"{task.kind} task {task.ref}"


def cause(why: Cause, address: str) -> str:
    """Why the resource at `address` failed."""
    match why:
        case Rejected(detail):
            return f"Novita rejected {address}: {detail}"
        case ClientError(message):
            return message
        case UploadFailed(image, detail):
            return f"could not upload {image}: {detail}"
        case TaskEnded(t, status) if t.kind == "training":
            return f"{task(t)} ended {status} on Novita"
        case TaskEnded(t, reason):
            return f"{task(t)} failed on Novita: {reason}"
        case UnknownStatus(t, status):
            recorded = "training" if t.kind == "training" else "running"
            return (
                f"{task(t)}: Novita reports an unknown status {status!r}; "
                f"it stays recorded as {recorded} and the next apply checks it again"
            )
        case NoModelName(t):
            return (
                f"{task(t)}: Novita reports it SERVING but names no model; "
                "it stays recorded as training and the next apply checks it again"
            )
        case NoImages(t):
            return f"{task(t)} succeeded without images"
        case NotInAccount(t):
            return f"{task(t)} is not in the account any more; plan again"
        case Unanswered(t, attempts, _) if t.kind == "training":
            return (
                f"no answer to {attempts} submits of {t.ref}, and the account does not list it; "
                "it stays recorded as unanswered: the next apply looks it up again before submitting"
            )
        case Unanswered(t, attempts, last):
            return (
                f"no answer from Novita to {attempts} {t.kind} submits (last: {last}); each may have been "
                "accepted. The next apply submits it again (on_unanswered_submit: resubmit)."
            )
        case Held(task_type, why_not):
            return (
                f"no answer from Novita to the {task_type} submit ({why_not}); it may or may not have been "
                "accepted, and Novita cannot list generation tasks, so it is held (on_unanswered_submit: hold), "
                f"not submitted again on its own: run `reconciler apply --replace {address}` to submit it again."
            )
        case OutputsChanged(output):
            return f"its images in {output} changed since the plan; plan again"
        case BadRecord(detail) | OutputsStoreFailed(detail):
            return detail
        case CopySourceLost(owner, _, True):
            return f"{owner}, whose images it copies, did not finish"
        case CopySourceLost(_, str() as path, _):
            return f"{path} changed or vanished since the plan; plan again"
        case CopySourceLost(owner, None, False):
            return f"the images of {owner} it copies are no longer where they were; plan again"
    raise AssertionError(why)  # pragma: no cover - every cause is worded above


def skipped(outcome: Blocked | Unfunded) -> str:
    """Why a resource was not attempted."""
    return unfunded(outcome) if isinstance(outcome, Unfunded) else blocked(outcome)


def unfunded(outcome: Unfunded) -> str:
    if outcome.refused is None:
        return "not submitted: the account's balance ran out earlier in this apply; top up and apply again"
    return f"refused for want of balance ({outcome.refused}); top up and apply again"


UNFUNDED = (
    "Novita refused a submit for want of balance (BILLING_BALANCE_NOT_ENOUGH): no more paid work was submitted; "
    "what was already running was collected and the state is saved. Top up the account and apply again: it "
    "submits only what is missing."
)


def blocked(outcome: Blocked) -> str:
    """Why a resource was skipped."""
    if isinstance(outcome.because, Unfunded):
        return f"{outcome.needs} was not submitted ({unfunded(outcome.because)})"
    if isinstance(outcome.because, Failed):
        return f"{outcome.needs} failed: {cause(outcome.because.cause, outcome.needs)}"
    if isinstance(outcome.because, Blocked):
        return f"{outcome.needs} was skipped ({blocked(outcome.because)})"
    return f"{outcome.needs} has no trained model yet"


def postponed(outcome: Postponed) -> str:
    """Why a resource is left for the next apply."""
    if outcome.stalled:
        return f"{outcome.needs} is still training (no progress lately, see above)"
    return f"{outcome.needs} is still training (--no-wait); apply again to generate"


def stuck(outcome: Stuck) -> str:
    return (
        f"{task(outcome.task)}: no progress for {duration(outcome.idle)} (still {outcome.where}); stopped waiting: "
        "it stays recorded as in flight and the next apply checks it again"
    )


def stopped(outcome: Stopped) -> str:
    why = "the deadline (--timeout) passed" if outcome.by == "timeout" else "interrupted"
    where = {
        "waiting": "while waiting (it keeps running on Novita)",
        "submitting": "while submitting it (the next apply resolves it)",
        "before-submit": "before it was submitted",
    }[outcome.at]
    return f"{why} {where}"


def head(result: ApplyResult) -> str:
    return f"Apply {result.ending}"


def summary(result: ApplyResult) -> str:
    """The closing line: `Apply complete: 3 uploaded, 1 trained, … in 11m02s.`"""
    text = (
        f"{head(result)}: {result.uploaded} uploaded, {result.trained} trained, {result.adopted} adopted, "
        f"{result.generated} generated ({plural(result.images, 'image')}), {len(result.failed)} failed"
    )
    if result.moved or result.copied:
        text += f", {result.moved} moved, {result.copied} copied (free)"
    if result.skipped:
        text += f", {len(result.skipped)} skipped"
    if result.stalled:
        text += f", {len(result.stalled)} stalled"
    if result.deferred:
        text += f", {len(result.deferred)} left for the next apply (waiting for trainings in flight)"
    if result.pruned:
        text += f", {result.pruned} pruned"
    if result.resubmitted:
        text += f", {len(result.resubmitted)} resubmitted after no answer (may be paid twice)"
    return text + f" in {duration(result.elapsed)}."
