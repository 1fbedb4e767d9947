"""Generation outputs on disk: what is there (for the planner), and writing images and sidecars.

Each generation's folder holds `<name>-<n>.<ext>` images and a `<name>.reconciler.json` sidecar with the
exact request, the seed, the identity hash and each image's sha256, so that after a state loss a
generation whose images are still on disk is adopted, not paid for again.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.desired import Desired, DesiredGeneration
from reconciler.files import atomic_write, display_path, remove_partials
from reconciler.hashing import HashCache, sha256_file
from reconciler.imagetype import file_extension
from reconciler.remote import OutputFacts, RemoteSidecar
from reconciler.state import GenerationEntry, State

if TYPE_CHECKING:
    from reconciler.outputs_remote import OutputsRemote, RemoteIndex

SIDECAR_SUFFIX = ".reconciler.json"


def sidecar_path(gen: DesiredGeneration) -> Path:
    return gen.output_dir / f"{gen.name}{SIDECAR_SUFFIX}"


def image_path(gen: DesiredGeneration, index: int, ext: str) -> Path:
    return gen.output_dir / f"{gen.name}-{index + 1}.{file_extension(ext)}"


def observe(
    desired: Desired,
    state: State,
    cache: HashCache,
    project_root: Path,
    remote: OutputsRemote | None = None,
) -> dict[str, OutputFacts]:
    """For every desired generation: are the files the state records intact, what the sidecar says, and (with an
    outputs remote) whether the remote holds them: two listings, plus one sidecar read per generation the state
    does not know (after a state loss)."""
    index = remote.index() if remote is not None else None
    facts: dict[str, OutputFacts] = {}
    for gen in desired.generations.values():
        entry = state.generation(gen.name)
        recorded = [(project_root / f.path, f.sha256) for f in entry.files] if entry else []
        intact, missing = _check(recorded, cache)
        sidecar = _read_sidecar(sidecar_path(gen))
        side_id = side_task = side_seed = None
        side_files: tuple[tuple[str, str], ...] = ()
        if sidecar is not None:
            files = [(gen.output_dir / str(i.get("file", "")), str(i.get("sha256", ""))) for i in sidecar["images"]]
            ok, _ = _check(files, cache)
            if ok and files:
                side_id = str(sidecar.get("identity") or "") or None
                side_task = sidecar.get("task_id")
                side_seed = sidecar.get("seed")
                side_files = tuple((display_path(p, project_root), h) for p, h in files)
        facts[gen.address] = OutputFacts(
            files_intact=bool(recorded) and intact,
            missing=missing,
            sidecar_identity=side_id,
            sidecar_files=side_files,
            sidecar_task_id=str(side_task) if side_task else None,
            sidecar_seed=str(side_seed) if side_seed is not None else None,
            **(_remote_facts(gen, entry, remote, index, project_root) if remote and index else {}),
        )
    return facts


def _remote_facts(
    gen: DesiredGeneration,
    entry: GenerationEntry | None,
    remote: OutputsRemote,
    index: RemoteIndex,
    project_root: Path,
) -> dict[str, Any]:
    """The remote's side of one generation: does it hold the state's run; if not, the runs it holds whose images
    are all there (candidates for adoption: the planner compares their identity with the desired one)."""
    held = entry is not None and bool(entry.files) and (gen.name, entry.identity) in index.sidecars
    if held and entry is not None and all(f.sha256 in index.hashes for f in entry.files):
        return {"remote": True, "in_remote": True}
    sidecars: list[RemoteSidecar] = []
    for identity in index.identities(gen.name):
        record = remote.read_sidecar(gen.name, identity) or {}
        files = [(str(i.get("file", "")), str(i.get("sha256", ""))) for i in record.get("images", [])]
        if files and all(h in index.hashes for _, h in files):
            shown = tuple((display_path(gen.output_dir / f, project_root), h) for f, h in files)
            task_id = str(record["task_id"]) if record.get("task_id") else None
            seed = str(record["seed"]) if record.get("seed") is not None else None
            sidecars.append(RemoteSidecar(identity, shown, task_id, seed))
    return {"remote": True, "in_remote": False, "remote_sidecars": tuple(sidecars)}


def _check(files: list[tuple[Path, str]], cache: HashCache) -> tuple[bool, int]:
    present = [p for p, _ in files if p.is_file()]
    hashes = cache.hash_many(present) if present else {}
    missing = sum(1 for p, h in files if hashes.get(p) != h)
    return missing == 0, missing


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        return None
    if not all(isinstance(i, dict) for i in data["images"]):
        return None
    return data


def write_sidecar(gen: DesiredGeneration, record: dict[str, Any]) -> None:
    """Atomically write the generation's sidecar (clearing the temporary file of a write a kill cut short;
    apply holds the state lock, so no other process is writing it)."""
    text = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    remove_partials(sidecar_path(gen))
    atomic_write(sidecar_path(gen), text)


def add_png_parameters(path: Path, text: str) -> str:
    """Insert a `parameters` tEXt chunk after IHDR (the convention image viewers read), atomically.

    Returns the new sha256. Non-PNG files are left as they are.
    """
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR":
        return sha256_file(path)
    ihdr_end = 8 + 8 + struct.unpack(">I", data[8:12])[0] + 4
    payload = b"parameters\x00" + text.encode("latin-1", "replace")
    chunk = struct.pack(">I", len(payload)) + b"tEXt" + payload
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + payload) & 0xFFFFFFFF)
    atomic_write(path, data[:ihdr_end] + chunk + data[ihdr_end:])
    return sha256_file(path)


def remove_files(files: list[tuple[Path, str]]) -> tuple[int, int]:
    """--prune: delete files whose content still has the recorded hash. Returns (removed, kept)."""
    removed = kept = 0
    for path, digest in files:
        try:
            if path.is_file() and sha256_file(path) == digest:
                path.unlink()
                removed += 1
            elif path.exists():
                kept += 1
        except OSError:
            kept += 1
    return removed, kept
