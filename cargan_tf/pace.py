"""How long a run takes: a short measured warm-up turned into a duration estimate, or into the
number of steps that fit a minutes budget.

The warm-up starts after a session's first step (which pays for tracing and compiling), or with
a lazy R1 penalty after both the plain and the R1 step have run once (each compiles its own
graph: counting the second compile made photo64's estimate 25% long at batch 32), and ends at
the first epoch end at least WARMUP_STEPS later, so the pace it measures is wall-clock time per
step *including* what happens between steps: epoch-end grids, checkpoints, plots.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta

WARMUP_STEPS = 20  # at least this many steps after the first, and an epoch end


class Pace:
    """Wall-clock seconds per step, measured from a session's second step on.

    pace = Pace(); after every step: pace.step_done(step) (the global step count after it);
    at an epoch end: if pace.ready(step): pace.seconds_per_step(step).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic, r1_every: int = 0):
        self.clock = clock
        self.r1_every = r1_every  # > 1: every r1_every-th step is a second compiled step
        self._start: int | None = None  # the session's first step (0-based)
        self._first: tuple[float, int] | None = None  # (time, step) after the compile steps

    def step_done(self, step: int) -> None:
        if self._start is None:
            self._start = step - 1
        if self._first is None and step - self._start >= self.compile_steps():
            self._first = (self.clock(), step)

    def compile_steps(self) -> int:
        """How many of the session's first steps trace and compile: 1, or with a lazy R1
        penalty (step % r1_every == 0), as many as it takes to run both kinds of step once."""
        if self.r1_every <= 1 or self._start is None:
            return 1
        first_r1 = (-self._start) % self.r1_every  # steps before the session's first R1 step
        return 2 if first_r1 == 0 else first_r1 + 1

    def ready(self, step: int) -> bool:
        return self._first is not None and step - self._first[1] >= WARMUP_STEPS

    def measured_steps(self, step: int) -> int:
        return 0 if self._first is None else step - self._first[1]

    def seconds_per_step(self, step: int) -> float:
        if not self.ready(step):
            raise RuntimeError("the warm-up is not over yet")
        start, first = self._first
        return (self.clock() - start) / (step - first)


def steps_for_minutes(minutes: float, seconds_per_step: float, done: int) -> int:
    """Total steps of a run budgeted `minutes` at this pace (never fewer than `done`)."""
    return max(done, math.floor(minutes * 60.0 / seconds_per_step))


def duration(seconds: float) -> str:
    """'45 s', '12 min', '2 h 05 min'."""
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def estimate_line(seconds_per_step: float, measured: int, steps_left: int,
                  now: datetime | None = None) -> str:
    """What `train` prints once the warm-up is over."""
    now = now or datetime.now()
    left = seconds_per_step * steps_left
    finish = (now + timedelta(seconds=left)).strftime("%H:%M")
    return (f"pace: {seconds_per_step:.3f} s a step over {measured} steps (grids and "
            f"checkpoints included): about {duration(left)} for the {steps_left:,} steps "
            f"left, done around {finish}")


__all__ = ["Pace", "WARMUP_STEPS", "steps_for_minutes", "duration", "estimate_line"]
