"""When to look at a running task again, from what the last look said. Pure: the caller draws the jitter.

Novita says how long a training has left (`extra.eta_relative`) and how far it is (`progress_percent`); an
image task says the same (`eta`, `progress_percent`). The next look comes at a fraction of the time left,
bounded (a long training is not asked every second, a short one is not overshot by a fixed 10 s), with a
little jitter so many tasks submitted together do not poll in step. A look with no estimate (none given, or
the estimate ran out while the task still runs) backs off from the shortest interval. When Novita says the
task ends within the shortest interval, the next look may come sooner (a quarter of it), so a task that ends
in a moment is not overshot by a whole interval. `--poll-interval`
replaces all of this with a fixed interval.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Look:
    """What one status read said, as far as pacing the next one goes."""

    eta: float | None = None  # seconds Novita estimates are left; None or 0: no estimate
    progress: float | None = None  # percent done, 0-100
    elapsed: float = 0.0  # seconds since waiting for this task began


@dataclass(frozen=True)
class PollPolicy:
    low: float  # never look again sooner than this
    high: float  # nor later than this
    fraction: float = 0.5  # of the time Novita says is left
    backoff: float = 1.5  # growth per look with no estimate, from `low`
    jitter: float = 0.1  # +/- this share of the interval
    fixed: float | None = None  # --poll-interval: always this, nothing else

    @classmethod
    def every(cls, seconds: float) -> PollPolicy:
        """A fixed interval (`--poll-interval`)."""
        return cls(seconds, seconds, fixed=seconds)

    def estimate(self, look: Look) -> float | None:
        """Seconds left by Novita's estimate, else by the progress so far; None when neither says."""
        if look.eta is not None and look.eta > 0:
            return look.eta
        if look.progress is not None and 0 < look.progress < 100 and look.elapsed > 0:
            return look.elapsed * (100 - look.progress) / look.progress
        return None

    def next(self, look: Look, misses: int, draw: float) -> float:
        """Seconds until the next look. `misses`: looks in a row without an estimate before this one;
        `draw`: a uniform random number in [0, 1) for the jitter."""
        if self.fixed is not None:
            return self.fixed
        left = self.estimate(look)
        base = self.fraction * left if left is not None else self.low * self.backoff**misses
        floor = self.low / 4 if left is not None and left <= self.low else self.low  # the end is near
        base = min(max(base, floor), self.high)
        return min(max(base * (1 + self.jitter * (2 * draw - 1)), floor), self.high)


TRAINING = PollPolicy(low=1.0, high=30.0)
GENERATION = PollPolicy(low=0.25, high=2.0)
SIM_TRAINING = PollPolicy(low=0.1, high=1.0)  # --sim: the simulator's trainings take seconds
SIM_GENERATION = PollPolicy(low=0.05, high=0.25)
