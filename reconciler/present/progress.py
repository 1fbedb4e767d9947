"""Apply's progress: one event stream, three views (live terminal, one line per event, JSON lines).

Reporters only display; they never decide. The applier calls `emit(event, address, message, **data)`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterable
from typing import Any, Protocol, TextIO

from reconciler.text import duration, plural, size


class Reporter(Protocol):
    def emit(self, event: str, address: str | None = None, message: str = "", **data: Any) -> None: ...

    def close(self) -> None: ...


def write_line(out: TextIO | None, text: str) -> TextIO | None:
    """Print one line; the stream to use next time, None once the reader went away (`apply | head`, a closed
    stdout): the apply goes on, its progress goes nowhere, and what is left in the buffer is dropped, so
    Python's own flush at exit meets no broken pipe either."""
    if out is None:
        return None
    try:
        print(text, file=out, flush=True)
        return out
    except (ValueError, OSError):  # BrokenPipeError is an OSError
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
        return None


class LineReporter:
    """CI: one timestamped line per event."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out: TextIO | None = out or sys.stdout
        self._last_progress: dict[str, str] = {}

    def emit(self, event: str, address: str | None = None, message: str = "", **data: Any) -> None:
        if event == "task_progress" and address is not None:
            if self._last_progress.get(address) == message:
                return
            self._last_progress[address] = message
        if event == "apply_complete":  # the closing line stands on its own, as in Terraform
            self.out = write_line(self.out, f"\n{message}")
            return
        stamp = time.strftime("%H:%M:%S")
        text = f"{stamp} {address} {message}" if address else f"{stamp} {message}"
        self.out = write_line(self.out, text)

    def close(self) -> None:
        pass


class JsonReporter:
    """`--json`: one JSON object per line per event, for CI tools."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out: TextIO | None = out or sys.stdout

    def emit(self, event: str, address: str | None = None, message: str = "", **data: Any) -> None:
        record = {"ts": round(time.time(), 3), "event": event, "address": address, "message": message, **data}
        self.out = write_line(self.out, json.dumps(record, ensure_ascii=False, default=str))

    def close(self) -> None:
        pass


# a resource's last event
FINISHED = frozenset({"task_done", "task_failed", "adopted", "skipped", "deferred", "stalled", "forgotten"})


class Progress:
    """The overall line above the live table: done/total, elapsed, and the longest remaining estimate.

    Pure: fed events and the time they arrived; `total` counts the plan's trainings, generations and forgets
    (a dataset's uploads have their own row)."""

    def __init__(self, addresses: Iterable[str], started: float) -> None:
        self.pending = {a for a in addresses if not a.startswith("Dataset/")}
        self.total = len(self.pending)
        self.started = started
        self.etas: dict[str, tuple[float, float]] = {}  # address → (eta in seconds, when it was said)

    def see(self, event: str, address: str | None, now: float, eta: Any = None) -> None:
        if address is None:
            return
        if event in FINISHED:
            self.pending.discard(address)
            self.etas.pop(address, None)
        elif event == "task_progress" and isinstance(eta, int | float) and not isinstance(eta, bool) and eta > 0:
            self.etas[address] = (float(eta), now)

    def line(self, now: float) -> str:
        done = self.total - len(self.pending)
        text = f"{done}/{self.total} done, {duration(now - self.started)} elapsed"
        left = {a: eta - (now - said) for a, (eta, said) in self.etas.items() if a in self.pending}
        if left:
            longest = max(left, key=lambda a: (left[a], a))
            text += f", longest remaining: {longest} about {duration(max(left[longest], 0.0))}"
        return text


class LiveReporter:
    """A terminal: the overall progress line, then a live table of uploads and of each training and
    generation; events printed above."""

    QUIET = frozenset({"task_progress", "upload"})

    def __init__(self, addresses: Iterable[str] = ()) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=False)
        self.rows: dict[str, str] = {}
        self.uploaded = 0
        self.upload_bytes = 0
        self.started = time.monotonic()
        self.progress = Progress(addresses, self.started)
        # Rich asks `_render` for the table at each refresh (4 a second), so events only change the rows
        self.live = Live(console=self.console, refresh_per_second=4, transient=True, get_renderable=self._render)
        self.live.start()

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("progress", self.progress.line(time.monotonic()))
        if self.uploaded:
            table.add_row("uploads", f"{plural(self.uploaded, 'image')}, {size(self.upload_bytes)}")
        for address, status in self.rows.items():
            table.add_row(address, Text(status))
        return table

    def emit(self, event: str, address: str | None = None, message: str = "", **data: Any) -> None:
        self.progress.see(event, address, time.monotonic(), data.get("eta"))
        if event == "upload":
            self.uploaded += 1
            self.upload_bytes += int(data.get("bytes", 0))
        elif address is not None:
            self.rows[address] = message
        if event == "apply_complete":
            self.live.stop()
            self.console.print(f"\n{message}", markup=False, highlight=False)
        elif event not in self.QUIET:
            from rich.text import Text

            line = Text(time.strftime("%H:%M:%S") + " ", style="dim")
            line.append(f"{address} " if address else "", style="bold")
            line.append(message)
            self.console.print(line, highlight=False)

    def close(self) -> None:
        self.live.stop()
