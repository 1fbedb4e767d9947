"""The live reporter's overall line (pure): done/total, elapsed, the longest remaining estimate."""

from __future__ import annotations

from reconciler.present.progress import Progress

PLAN = ["Dataset/photos", "LoraModel/a", "LoraModel/b", "Generation/g", "Generation/old"]


def test_nothing_done_yet() -> None:
    progress = Progress(PLAN, started=100.0)
    assert progress.line(100.0) == "0/4 done, 0s elapsed"


def test_done_counts_each_resource_once_and_the_longest_estimate_counts_down() -> None:
    progress = Progress(PLAN, started=100.0)
    progress.see("forgotten", "Generation/old", 101.0)
    progress.see("task_progress", "LoraModel/a", 110.0, eta=300)
    progress.see("task_progress", "LoraModel/b", 110.0, eta=120.0)
    progress.see("task_progress", "Generation/g", 110.0)  # generations give no estimate
    assert progress.line(170.0) == "1/4 done, 1m10s elapsed, longest remaining: LoraModel/a about 4m00s"
    progress.see("task_done", "LoraModel/a", 200.0)
    progress.see("task_done", "LoraModel/a", 201.0)  # a repeated event does not count twice
    assert progress.line(200.0) == "2/4 done, 1m40s elapsed, longest remaining: LoraModel/b about 30s"
    progress.see("task_failed", "LoraModel/b", 260.0)
    assert progress.line(400.0) == "3/4 done, 5m00s elapsed"


def test_an_estimate_never_goes_below_zero_and_odd_values_are_ignored() -> None:
    progress = Progress(PLAN, started=0.0)
    progress.see("task_progress", "LoraModel/a", 0.0, eta=10)
    progress.see("task_progress", "LoraModel/b", 0.0, eta="soon")
    progress.see("task_progress", "Generation/g", 0.0, eta=True)
    assert progress.line(60.0) == "0/4 done, 1m00s elapsed, longest remaining: LoraModel/a about 0s"
