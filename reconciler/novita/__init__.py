"""The only package that speaks HTTP: Novita's training, generation and storage endpoints, typed and retried.

Two httpx clients: one for the API (carries `Authorization`), one for presigned storage URLs (never does).
Every httpx failure is translated here into the error family of `reconciler.errors`:

    NovitaError              the API or storage answered with an error, or the answer made no sense
    ├── NovitaTransportError no answer at all (connect/read/protocol errors) after every retry
    └── AmbiguousSubmitError a paid create call whose outcome is unknown (see below)

An HTTP error's message reads `Novita <METHOD> <path>: <status> <REASON>: <message>` (long or non-JSON bodies
cut to ~300 chars); `.status`, `.reason` and `.message` (Novita's own text) are attributes, and
`error_detail(err)` gives `<status> <REASON>: <message>` for the caller's own prefix. The API key appears in no
message, repr or log line; presigned URLs are logged with their signatures replaced by `***`.

Retries (exponential backoff, full jitter, `Retry-After` honoured): reads, upload tickets, uploads and
downloads are retried on 429, 5xx and transport errors. A paid create (`create_training`, `create_generation`)
is retried only when nothing can have been created: a 429, or a failure before the request was sent (connect
errors, pool timeouts). Every other failure after a create may have reached Novita, and a gateway may have
made the task before failing to answer (a 500 `CREATE_TASK_FAILED`, a 502, a 503), so it raises
`AmbiguousSubmitError`: any 5xx whatever its reason, a dropped or reset connection, a timeout, an unreadable
body, or a 200 without a `task_id`. The client never resubmits those itself; the caller resolves them:

- training: the task name is deterministic (`<name>-<8 hex>`), so look it up in `list_trainings()` (every page,
  a few times over several seconds, since a listing may lag a create); adopt the task if it is there, submit
  again only if it is not;
- generation: Novita has no list API for async tasks, so nobody can tell; the caller applies the project's
  `on_unanswered_submit` policy (submit again, counted as possibly paid twice, or hold it for a person) and
  records what happened in the state.

`halt()` (Ctrl-C): no call waits to retry any more; a request already on the wire still gets its answer.
"""

from reconciler.novita.client import DEFAULT_BASE_URL, USER_AGENT, NovitaClient
from reconciler.novita.models import (
    DownloadedImage,
    ResultImage,
    RetryInfo,
    TaskResult,
    TrainedModel,
    TrainingList,
    TrainingStatus,
    TrainingTask,
)
from reconciler.novita.wire import error_detail, normalize_extension, redact_url, unanswered_cause

__all__ = [
    "DEFAULT_BASE_URL",
    "USER_AGENT",
    "DownloadedImage",
    "NovitaClient",
    "ResultImage",
    "RetryInfo",
    "TaskResult",
    "TrainedModel",
    "TrainingList",
    "TrainingStatus",
    "TrainingTask",
    "error_detail",
    "normalize_extension",
    "redact_url",
    "unanswered_cause",
]
