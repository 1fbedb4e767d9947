"""Figures: every suite records one line; they are printed at the end of the pytest run (with or without -s)."""

from __future__ import annotations

from typing import Any

import pytest

FIGURES: list[str] = []


def record_figure(line: str) -> None:
    FIGURES.append(line)
    print(line)  # also in the test's captured output


@pytest.fixture
def figure() -> Any:
    return record_figure


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
