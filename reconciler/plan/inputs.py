"""Pure: what every decision of a plan reads: the manifests, the state, the account and the outputs on disk."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.desired.resources import Desired
from reconciler.observe.facts import Account, OutputFacts
from reconciler.plan.freeactions import Lookups
from reconciler.plan.policy import SubmitPolicy
from reconciler.state import State


@dataclass(frozen=True)
class Inputs:
    desired: Desired
    state: State
    account: Account | None  # None: planned offline (`--no-refresh`), the state is trusted as it is
    outputs: Mapping[str, OutputFacts] = field(default_factory=dict)  # by Generation address
    replace: frozenset[str] = frozenset()  # addresses `--replace` forces to be trained or generated again
    policy: SubmitPolicy = field(default_factory=SubmitPolicy)
    look: Lookups = field(default_factory=Lookups)  # the run cache, and what this plan's look-ups claimed

    def has(self, addr: str) -> bool:
        """A resource of the manifests."""
        return self.desired.has(addr)
