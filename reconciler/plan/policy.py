"""Pure: what to do with a generation submit that got no answer.

Novita cannot list generation tasks, so when a txt2img/img2img submit gets no answer (any 5xx, a dropped
connection, a timeout, or an apply killed while it was on the wire) nobody can tell whether it ran:

    resubmit  submit it again (in the same apply after a short pause, or in the next apply after a kill); the
              plan shows it as `-/+ ... submitting again (may be paid twice)`, the apply summary, the JSON events
              and the state count it. A generation costs cents; a pipeline that needs a person costs more.
    hold      do not submit it again on its own: the plan warns, apply exits 1 until someone runs
              `reconciler apply --replace ADDR` (for an expensive generation).

Which one applies to a generation: `--on-unanswered-submit` (an explicit choice for this run) > the Generation's
`spec.on_unanswered_submit` > `apply.on_unanswered_submit` in reconciler.yaml > resubmit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reconciler.status import ON_UNANSWERED as CHOICES
from reconciler.status import OnUnanswered as Choice

__all__ = ["CHOICES", "DEFAULT", "Choice", "HasPolicy", "SubmitPolicy"]
DEFAULT: Choice = "resubmit"


class HasPolicy(Protocol):
    @property
    def on_unanswered_submit(self) -> Choice | None: ...


@dataclass(frozen=True)
class SubmitPolicy:
    """The run-wide choice (the flag, if given) and the project's default (reconciler.yaml, else resubmit)."""

    run: Choice | None = None
    project: Choice = DEFAULT

    def for_generation(self, gen: HasPolicy) -> Choice:
        return self.run or gen.on_unanswered_submit or self.project
