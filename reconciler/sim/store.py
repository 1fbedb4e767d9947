"""The simulator's data folder: account.json (atomic temp+rename), uploaded assets, outputs, requests.jsonl."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


class Store:
    """Files under one data folder; the Account is the only caller. Layout:

    account.json        the whole account (assets, trainings, generations, secrets), rewritten atomically
    assets/<id>.<ext>   uploaded training images
    outputs/<task>/<i>.<ext>  rendered output images (cached; they can always be redrawn)
    requests.jsonl      the request log, one JSON object per line, appended
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "assets").mkdir(exist_ok=True)
        (root / "outputs").mkdir(exist_ok=True)

    def load(self) -> dict[str, Any] | None:
        path = self.root / "account.json"
        if not path.exists():
            return None
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def save(self, data: dict[str, Any]) -> None:
        self._atomic_write(self.root / "account.json", json.dumps(data, separators=(",", ":")).encode())

    def write_asset(self, name: str, data: bytes) -> None:
        self._atomic_write(self.root / "assets" / name, data)

    def read_asset(self, name: str) -> bytes | None:
        path = self.root / "assets" / name
        return path.read_bytes() if path.exists() else None

    def read_output(self, task_id: str, name: str) -> bytes | None:
        path = self.root / "outputs" / task_id / name
        return path.read_bytes() if path.exists() else None

    def write_output(self, task_id: str, name: str, data: bytes) -> None:
        (self.root / "outputs" / task_id).mkdir(exist_ok=True)
        self._atomic_write(self.root / "outputs" / task_id / name, data)

    def append_request(self, record: dict[str, Any]) -> None:
        with (self.root / "requests.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")

    @staticmethod
    def _atomic_write(path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
