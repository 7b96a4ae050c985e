"""A late learning-rate decay: both Adam rates fall linearly to ~0 over the end of a run.

Why: a GAN at a constant rate keeps orbiting its equilibrium, and annealing the rates at the
end is a common way to let G and D settle. Measured on photo64cpu (BENCHMARKS.md, "Late
learning-rate decay"), it did not help: with an EMA of G the decay to ~0 ended worse than
constant rates, so no preset uses it. The factor depends only on the step and the run's length,
so a resumed run, or one whose length a --minutes warm-up set, follows the same schedule.
"""
from __future__ import annotations


def lr_factor(step: int, total_steps: int, decay_from: float) -> float:
    """The learning rates' multiplier for the step taken after `step` steps of a run of
    `total_steps`: 1 until decay_from * total_steps, then falling linearly so the last step
    runs at 1 / (steps in the decay) of the rate. decay_from 0 (or no known length): 1."""
    if not decay_from or total_steps <= 0:
        return 1.0
    start = int(decay_from * total_steps)
    if step < start:
        return 1.0
    return max(total_steps - step, 1) / max(total_steps - start, 1)
