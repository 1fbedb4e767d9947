"""Pure: the free actions a run cache hit turns a paid one into. A plan never pays for an identity the project holds.

- move: the generation's own run (its entry, or the entry of a resource that left the manifests in this very plan:
  a rename, a matrix member's new address) is written into its declared folder and leaves the old one;
- copy: a run held elsewhere (another resource with the same request, a history folder, a forgotten record, an
  output folder's sidecar, the outputs remote, or a generation this plan pays for) is copied into it;
- adopt (LoraModel): a training of the same identity, by the 8 hex its task name carries.

A request with `seed: -1` is a random draw: only its own run (its own records, or the record of the resource it
was renamed or moved from) stands for it, never another resource's draw of the same request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from reconciler.desired.resources import DesiredGeneration
from reconciler.observe.runcache import Holding, RunCache, TrainingHolding
from reconciler.plan import reasons as r


@dataclass
class Lookups:
    """What the look-ups of one plan share: the cache, the retiring records already claimed by a move (each is
    one run, moved once), and the identities this plan pays for (address of the change that pays)."""

    cache: RunCache = field(default_factory=RunCache)
    claimed: set[str] = field(default_factory=set)
    planned: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Free:
    """A look-up's answer: the action and where it comes from."""

    action: Literal["move", "copy"]
    source: Holding
    reason: r.Reason


def random_draw(gen: DesiredGeneration) -> bool:
    return int(gen.request.get("seed", -1)) == -1


def find_generation(
    look: Lookups, gen: DesiredGeneration, identity: str, desired_has: Callable[[str], bool]
) -> Free | None:
    """The free way to hold `identity` in `gen`'s declared folder, or None (it is paid). Claims what it moves."""
    draw = random_draw(gen)
    for h in sorted(look.cache.generation(identity), key=lambda h: h.owner != gen.address):  # its own run first
        retiring = h.source == "state" and h.owner != gen.address and not desired_has(h.owner)
        own = h.owner == gen.address
        if h.source in ("state", "folder") and own and h.where == gen.output_display:
            continue  # its own files where they belong: the caller judged them (adopted, or the policy decides)
        if retiring and h.owner in look.claimed:
            continue
        if draw and not (own or retiring):
            continue  # another resource's random draw is not this one's
        if h.source == "state" and (own or retiring):
            look.claimed.add(h.owner)
            paid(look, gen, identity)  # a twin of it copies it from here once moved
            return Free("move", h, _move_reason(gen, h, own))
        return Free("copy", h, _copy_reason(h))
    paying = look.planned.get(identity)
    if paying is not None and not draw:
        source = Holding(identity, "plan", paying, (), "")
        return Free("copy", source, r.CopiedFromThisPlan(paying))
    paid(look, gen, identity)
    return None


def paid(look: Lookups, gen: DesiredGeneration, identity: str | None) -> None:
    """Note that this plan pays for (or moves) `identity` into `gen`: a later generation with the same request
    copies it from there once done."""
    if identity is not None and not random_draw(gen):
        look.planned.setdefault(identity, gen.address)


def _move_reason(gen: DesiredGeneration, h: Holding, own: bool) -> r.RunMoved:
    return r.RunMoved(h.owner, own, len(h.files), h.where, gen.output_display, gen.stem)


def _copy_reason(h: Holding) -> r.RunCopied:
    return r.RunCopied(h.source, h.owner, len(h.files), h.where)


def find_training(cache: RunCache, identity: str, own_task: str) -> TrainingHolding | None:
    """A training of `identity` the project already has under another task name (a renamed LoraModel), if any.
    Its own task name is looked up by the planner as before."""
    return next((t for t in cache.training(identity) if t.task_name != own_task), None)
