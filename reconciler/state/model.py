"""The state document: what reconciler has done and paid for. Pure data, read leniently.

`version`, `serial` (incremented on every write), `lineage` (a UUID fixed at creation), the uploaded images by
content hash, and one entry per resource address: a `DatasetEntry`, `ModelEntry` or `GenerationEntry`, each
built by its own constructor from the desired resource. It never holds the API key or a presigned URL.
Unknown fields are ignored (older and newer writers of the same version agree); a newer version, a corrupt or
truncated document is refused with the way to recover. Entries change by assignment (see `revision`), so a backend
can write only the entries that changed. See docs/ARCHITECTURE.md, "State model".
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import uuid
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError

from reconciler.errors import StateError
from reconciler.filenames import HISTORY, folder_problem, hash_problem, path_problem
from reconciler.status import RUNNING_REMOTELY, TRAINING_IN_FLIGHT, Status

if TYPE_CHECKING:
    from reconciler.desired.resources import DesiredDataset, DesiredGeneration, DesiredModel

STATE_VERSION = 1


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


_REVISION = "__revision__"  # a key beside the fields in an entry's __dict__: never dumped, never compared


class _Lenient(BaseModel):
    """Read leniently; every assignment to a field bumps the object's revision (see `revision`)."""

    model_config = ConfigDict(extra="ignore")

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        fields = self.__dict__
        fields[_REVISION] = fields.get(_REVISION, 0) + 1


def revision(obj: BaseModel) -> int:
    """How many times a field of `obj` was assigned since it was built.

    A backend that writes only what changed (PostgreSQL) compares (object, revision) per entry with what it last
    wrote. So entries are changed by assigning their fields (`entry.files = [...]`, `entry.status = ...`) or by
    putting a new object in `State.images` / `State.resources`, never by mutating a nested list or dict in place.
    """
    return int(obj.__dict__.get(_REVISION, 0))


class ImageRecord(_Lenient):
    """An image uploaded once per content hash; its assets_id is reused by every training."""

    assets_id: str
    format: str
    uploaded_at: str = ""
    # "pending": the upload URL was issued and the PUT may or may not have completed (a kill in between).
    # Used as uploaded; if Novita rejects it in a training create, the image is uploaded again.
    status: str = "uploaded"


class FileRecord(_Lenient):
    """A file a generation wrote, relative to the project folder, with its content hash."""

    path: str
    sha256: str


class HistoryRecord(_Lenient):
    """A generation's previous images, moved aside into `folder` when it was replaced: never overwritten.

    Kept (and shown in the gallery) until `apply --prune` removes the files."""

    identity: str  # the identity the images were generated for; "": files that stood in a write's way, kept
    folder: str  # <output>/history/<12 hex of identity>[-2, -3… on a clash], relative to the project folder
    files: list[FileRecord] = Field(default_factory=list)
    sidecar: FileRecord | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)  # the manifest-owned attributes they were made with
    task_id: str | None = None
    seed: str | None = None
    replaced_at: str = ""


class _Entry(_Lenient):
    """What every entry has: its identity hash, status and the manifest-owned attributes (for diffs)."""

    kind: str
    name: str
    identity: str
    status: Status = Status.SUCCEEDED
    attributes: dict[str, Any] = Field(default_factory=dict)
    updated_at: str = ""

    @property
    def address(self) -> str:
        return f"{self.kind}/{self.name}"


class DatasetEntry(_Entry):
    kind: Literal["Dataset"] = "Dataset"
    images: list[str] = Field(default_factory=list)  # content hashes in order

    @classmethod
    def of(cls, dataset: DesiredDataset) -> DatasetEntry:
        return cls(
            name=dataset.name,
            identity=dataset.identity,
            attributes=dataset.attributes(),
            images=[i.sha256 for i in dataset.images],
            updated_at=now_iso(),
        )


class ModelEntry(_Entry):
    kind: Literal["LoraModel"] = "LoraModel"
    dataset: str | None = None
    task_type: str | None = None
    task_name: str | None = None
    task_id: str | None = None
    model_name: str | None = None  # the trained model, once SERVING
    reason: str | None = None  # why it failed, or what the last unanswered create got instead of an answer
    submitted_at: str | None = None
    finished_at: str | None = None  # when apply saw it serve: with submitted_at, how long trainings take
    matrix: str | None = None  # a matrix member: the matrix's name
    axes: list[tuple[str, Any]] = Field(default_factory=list)  # a member's (label, value), sorted by label
    # Tasks with this task name that were in the account before this submit: never taken for its answer.
    prior_tasks: list[str] = Field(default_factory=list)
    unanswered_submits: int = 0  # creates of this definition that got no answer (each resolved by name)

    @classmethod
    def of(
        cls,
        model: DesiredModel,
        status: Status,
        *,
        task_id: str | None = None,
        task_name: str | None = None,
        task_type: str | None = None,
        model_name: str | None = None,
        prior_tasks: list[str] | None = None,
        unanswered_submits: int = 0,
    ) -> ModelEntry:
        """The entry of `model` as defined now; `task_name`/`task_type` only when adopting a listed task."""
        now = now_iso()
        return cls(
            name=model.name,
            identity=model.identity,
            status=status,
            attributes=model.attributes(),
            dataset=model.dataset,
            task_type=task_type or model.task_type,
            task_name=task_name or model.task_name,
            task_id=task_id,
            model_name=model_name,
            submitted_at=now,
            updated_at=now,
            matrix=model.matrix,
            axes=list(model.axes),
            prior_tasks=prior_tasks or [],
            unanswered_submits=unanswered_submits,
        )

    @property
    def in_flight(self) -> bool:
        return self.status in TRAINING_IN_FLIGHT


class GenerationEntry(_Entry):
    kind: Literal["Generation"] = "Generation"
    request: dict[str, Any] | None = None  # the request as sent (init image as its hash, not bytes)
    models: dict[str, str] = Field(default_factory=dict)  # our LoraModel name -> trained model_name used
    output: str | None = None
    files: list[FileRecord] = Field(default_factory=list)
    task_id: str | None = None
    seed: str | None = None
    reason: str | None = None
    submitted_at: str | None = None
    history: list[HistoryRecord] = Field(default_factory=list)  # previous images, newest last
    matrix: str | None = None  # a matrix member: the matrix's name
    axes: list[tuple[str, Any]] = Field(default_factory=list)  # a member's (label, value), sorted by label
    unanswered_submits: int = 0  # submits of this definition that got no answer (each may have been paid for)
    resubmits: int = 0  # times it was submitted again after one of those (on_unanswered_submit: resubmit)

    @property
    def stem(self) -> str:
        """What its image and sidecar files are named after: a matrix member's are its matrix's name."""
        return self.matrix or self.name

    @classmethod
    def of(
        cls,
        gen: DesiredGeneration,
        identity: str,
        model_names: dict[str, str | None],
        status: Status,
        **fields: Any,
    ) -> GenerationEntry:
        """The entry of `gen` with its LoRAs resolved to `model_names`; `fields`: request, files, task_id, seed,
        and the unanswered_submits / resubmits counts carried over from an earlier submit of the same identity."""
        now = now_iso()
        return cls(
            name=gen.name,
            identity=identity,
            status=status,
            attributes=gen.attributes(model_names),
            models={k: v for k, v in model_names.items() if v},
            output=gen.output_display,
            matrix=gen.matrix,
            axes=list(gen.axes),
            submitted_at=now if status == Status.SUBMITTING else None,
            updated_at=now,
            **fields,
        )


class ForgottenEntry(_Entry):
    """A forgotten generation's files (images, history, sidecar), on record until `apply --prune` removes them.

    Its address is `Forgotten/<the generation's address>`: no manifest resource, the planner never forgets it; it
    is an entry (not a list beside them) so that every state backend keeps it like any other."""

    kind: Literal["Forgotten"] = "Forgotten"
    files: list[FileRecord] = Field(default_factory=list)
    forgotten_at: str = ""

    @property
    def owner(self) -> str:
        """The address of the generation these files were written by."""
        return self.name


class SpendRecord(_Lenient):
    """One apply's spend, read from the account's balance before and after it (USD; None: not read)."""

    started_at: str
    finished_at: str = ""
    balance_before: float | None = None
    balance_after: float | None = None
    estimate: float | None = None  # the plan's priced estimate, when the project has prices
    trainings: int = 0  # submitted by this apply
    images: int = 0
    outcome: str = ""  # how the apply ended: complete, failed, interrupted, timed out

    @property
    def spent(self) -> float | None:
        if self.balance_before is None or self.balance_after is None:
            return None
        return round(self.balance_before - self.balance_after, 6)


LEDGER = "Ledger/applies"
LEDGER_KEEP = 500  # the most recent applies kept


class LedgerEntry(_Entry):
    """What each apply spent, newest last, at `Ledger/applies`: an entry, so every state backend keeps it; no
    manifest resource, the planner never forgets it."""

    kind: Literal["Ledger"] = "Ledger"
    applies: list[SpendRecord] = Field(default_factory=list)


ResourceEntry = Annotated[
    DatasetEntry | ModelEntry | GenerationEntry | ForgottenEntry | LedgerEntry, Field(discriminator="kind")
]
_ENTRY = TypeAdapter(ResourceEntry)


def parse_entry(data: dict[str, Any]) -> ResourceEntry:
    """One entry from its JSON object (lenient, like the whole state)."""
    return _ENTRY.validate_python(data)


@dataclass(frozen=True)
class SkippedEntry:
    """A state entry that failed a check when it was read: left out, as if it were not recorded."""

    address: str
    field: str  # which of its fields, e.g. `files[0].path`
    problem: str
    entry: ResourceEntry | None = dataclass_field(default=None, compare=False)  # as read: what `state pull` prints


def entry_problem(entry: ResourceEntry) -> tuple[str, str] | None:
    """(field, what is wrong) for an entry whose files a write could not trust (paths and hashes, see
    `reconciler.filenames`), or None. Every backend's entries pass here when read: the state may be shared."""
    checks: list[tuple[str, str | None]] = []
    if isinstance(entry, GenerationEntry):
        checks.append(("identity", hash_problem(entry.identity)))
        output = entry.output
        if output is not None:
            checks.append(("output", folder_problem(output)))
        elif entry.files or entry.history:
            checks.append(("output", "it records files but no output folder"))
        checks += _files_problems("files", entry.files, output)
        for n, record in enumerate(entry.history):
            where = f"history[{n}]"
            # its own history folder, or one a run it took over by a move left in its old output folder
            parent = record.folder.rpartition("/")[0]
            folder_ok = parent == HISTORY or parent.endswith(f"/{HISTORY}")
            # "" is a file that stood in the way of a write and was kept: no run of ours is known for it
            checks.append((f"{where}.identity", hash_problem(record.identity) if record.identity else None))
            checks.append(
                (f"{where}.folder", folder_problem(record.folder) or (None if folder_ok else "not in history/"))
            )
            checks += _files_problems(f"{where}.files", record.files, record.folder)
            if record.sidecar is not None:
                checks += _files_problems(f"{where}.sidecar", [record.sidecar], record.folder, plain=False)
    elif isinstance(entry, ForgottenEntry):
        checks += _files_problems("files", entry.files, None, plain=False)
    return next(((name, problem) for name, problem in checks if problem is not None), None)


def _files_problems(
    where: str, files: list[FileRecord], folder: str | None, *, plain: bool = True
) -> list[tuple[str, str | None]]:
    """Each file: a path in `folder` (any project path when None) with a plain name (an image's when `plain`)."""
    found: list[tuple[str, str | None]] = []
    for n, f in enumerate(files):
        at = f"{where}[{n}]" if where.endswith("files") else where
        found.append((f"{at}.path", path_problem(f.path, folder=folder, sidecar=not plain)))
        found.append((f"{at}.sha256", hash_problem(f.sha256)))
    return found


class State(_Lenient):
    version: int = STATE_VERSION
    serial: int = 0
    lineage: str = Field(default_factory=lambda: str(uuid.uuid4()))
    images: dict[str, ImageRecord] = Field(default_factory=dict)
    resources: dict[str, ResourceEntry] = Field(default_factory=dict)
    _skipped: list[SkippedEntry] = PrivateAttr(default_factory=list)

    @property
    def skipped(self) -> list[SkippedEntry]:
        """The entries left out when it was read, because they failed a check (`entry_problem`)."""
        return self._skipped

    def screen(self) -> State:
        """Leave out (into `skipped`) every entry that fails `entry_problem`; returns the state itself."""
        for address, entry in list(self.resources.items()):
            problem = entry_problem(entry)
            if problem is not None:
                del self.resources[address]
                self._skipped.append(SkippedEntry(address, *problem, entry))
        return self

    def as_stored(self) -> State:
        """A copy with the skipped entries back in their places: the document as the backend holds it."""
        if not self._skipped:
            return self
        held = {**self.resources, **{s.address: s.entry for s in self._skipped if s.entry is not None}}
        return self.model_copy(update={"resources": dict(sorted(held.items()))})

    def entry(self, address: str) -> ResourceEntry | None:
        return self.resources.get(address)

    def dataset(self, name: str) -> DatasetEntry | None:
        entry = self.resources.get(f"Dataset/{name}")
        return entry if isinstance(entry, DatasetEntry) else None

    def model(self, name: str) -> ModelEntry | None:
        entry = self.resources.get(f"LoraModel/{name}")
        return entry if isinstance(entry, ModelEntry) else None

    def generation(self, name: str) -> GenerationEntry | None:
        entry = self.resources.get(f"Generation/{name}")
        return entry if isinstance(entry, GenerationEntry) else None

    def put(self, entry: ResourceEntry) -> ResourceEntry:
        self.resources[entry.address] = entry
        return entry

    def models(self) -> list[ModelEntry]:
        return [e for e in self.resources.values() if isinstance(e, ModelEntry)]

    def generations(self) -> list[GenerationEntry]:
        return [e for e in self.resources.values() if isinstance(e, GenerationEntry)]

    def forgotten(self) -> list[ForgottenEntry]:
        return [e for e in self.resources.values() if isinstance(e, ForgottenEntry)]

    @property
    def listed(self) -> dict[str, ResourceEntry]:
        """The resources as listings show them: every entry but the ledger of applies (`state history` shows it)."""
        return {a: e for a, e in self.resources.items() if not isinstance(e, LedgerEntry)}

    def ledger(self) -> LedgerEntry | None:
        entry = self.resources.get(LEDGER)
        return entry if isinstance(entry, LedgerEntry) else None

    def running_remotely(self) -> list[ModelEntry | GenerationEntry]:
        """Tasks Novita accepted that have not finished, and trainings whose submit may have landed."""
        return [
            e
            for e in self.resources.values()
            if isinstance(e, ModelEntry | GenerationEntry)
            and (e.status in RUNNING_REMOTELY or (isinstance(e, ModelEntry) and e.in_flight))
        ]


class _Sharing:
    """The object hook of one state's parse: equal image records (`file`, `sha256`, `caption`, strings or null)
    become one object and content hashes are shared (`sys.intern`, as the stat cache's are). A photo's record
    stands in its Dataset's attributes and again in every LoraModel trained on it: a 50,000-photo state is held
    in half the memory, at no cost a no-op plan can measure. Nothing read from the state is changed in place."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str, str | None], dict[str, Any]] = {}

    def __call__(self, obj: dict[str, Any]) -> dict[str, Any]:
        if len(obj) == 3:
            file, sha, caption = obj.get("file"), obj.get("sha256"), obj.get("caption", 0)
            if type(file) is str and type(sha) is str and (caption is None or type(caption) is str):
                obj["sha256"] = sys.intern(sha)
                return self._records.setdefault((file, sha, caption), obj)
        images = obj.get("images")
        if type(images) is list and images and type(images[0]) is str:  # a Dataset's hashes, in order
            images[:] = [sys.intern(h) if type(h) is str else h for h in images]
        return obj


def parse_state(raw: bytes, name: str) -> State:
    """The state in `raw` (the bytes of a state document called `name` in messages), or a StateError."""
    hint = f"It was not modified. Restore it from {name}.backup or from version control."
    # Each form is let go of once the next is made (bytes, text, JSON, model): a large state is held at most
    # twice at a time, not four times.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateError(f"{name}: the state file is not UTF-8 text. {hint}") from exc
    del raw
    try:
        data = json.loads(text, object_hook=_Sharing())
    except json.JSONDecodeError as exc:
        cut = exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated string")
        what = "truncated" if cut else "corrupt"
        raise StateError(
            f"{name}: the state file is {what} (invalid JSON at line {exc.lineno}, column {exc.colno}). {hint}"
        ) from exc
    del text
    if not isinstance(data, dict):
        raise StateError(f"{name}: the state file is not a JSON object. {hint}")
    version = data.get("version")
    if not isinstance(version, int):
        raise StateError(f"{name}: the state file has no version number. {hint}")
    if version > STATE_VERSION:
        raise StateError(
            f"{name}: the state file has version {version}, newer than this reconciler understands "
            f"(version {STATE_VERSION}). Upgrade reconciler; the file was not modified."
        )
    try:
        return State.model_validate(data).screen()
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise StateError(f"{name}: the state file is invalid at {loc}: {first['msg']}. {hint}") from exc
