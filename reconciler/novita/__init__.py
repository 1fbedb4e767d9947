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
downloads are retried on 429, 5xx and transport errors. Creates are retried only when nothing can have
been created: 429, a failure before the request was sent (connect errors, pool timeouts), 500
`CREATE_TASK_FAILED`, and 503 (the server says it did not handle the request). Any other failure after a
create may have reached the server raises `AmbiguousSubmitError`. How the caller resolves it:

- training: the task name is deterministic (`<name>-<8 hex>`), so look it up in `list_trainings()`;
  adopt the task if it is there, submit again if it is not;
- generation: Novita has no list API for async tasks, so the caller records the attempt as ambiguous
  in state and reports it; it must not resubmit silently (that could pay twice).
"""

from reconciler.novita.client import DEFAULT_BASE_URL, USER_AGENT, NovitaClient, error_detail
from reconciler.novita.models import (
    DownloadedImage,
    ResultImage,
    RetryInfo,
    TaskResult,
    TrainedModel,
    TrainingStatus,
    TrainingTask,
)
from reconciler.novita.wire import normalize_extension, redact_url

__all__ = [
    "DEFAULT_BASE_URL",
    "USER_AGENT",
    "DownloadedImage",
    "NovitaClient",
    "ResultImage",
    "RetryInfo",
    "TaskResult",
    "TrainedModel",
    "TrainingStatus",
    "TrainingTask",
    "error_detail",
    "normalize_extension",
    "redact_url",
]
