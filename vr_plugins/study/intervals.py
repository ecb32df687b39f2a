"""95 % confidence intervals for a paired difference of accuracies, over seeds and questions.

The study's comparisons are paired twice: every arm of a seed is evaluated on the same held-out
questions, and every seed's arms share that seed's randomness up to the point where they differ. The
data of one comparison is therefore a matrix ``D`` of shape (S seeds, Q questions): ``D[s, q]`` = the
arm's fraction of correct samples on question q in seed s minus the baseline's. Its grand mean is the
accuracy difference (every question has the same number of samples).

Two intervals, because they answer two questions:

- ``t`` over seeds: the S per-seed differences ``D.mean(1)`` and Student's t with S - 1 degrees of
  freedom. It holds the question set fixed (the population is "training runs on these questions"); its
  width is what the power calculation of docs/study.md is about.
- the two-way bootstrap: seeds and questions resampled with replacement, independently, ``reps`` times
  (percentile interval). It also treats the questions as a sample from the task, so it is at least as
  wide; it is the interval the study's verdicts use.
"""

from __future__ import annotations

import math

import numpy as np

#: Student's t, two-sided 95 % (the 0.975 quantile), for 1..30 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
_Z975 = 1.959964


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t: the table up to 30 degrees of freedom, then the Cornish-Fisher
    expansion to second order, ``z + (z^3 + z) / (4 df) + (5 z^5 + 16 z^3 + 3 z) / (96 df^2)`` (within
    0.001 of the exact value beyond 30; tests/test_study_intervals.py checks it against scipy)."""
    if df < 1:
        raise ValueError(f"t975 needs at least one degree of freedom, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def seeds_for_half_width(sd_seed: float, half_width: float, max_seeds: int = 1000) -> int | None:
    """The fewest seeds whose t interval over seeds is at most ``half_width`` wide on each side, for a
    per-seed difference with standard deviation ``sd_seed`` (the power calculation's formula)."""
    for seeds in range(2, max_seeds + 1):
        if t975(seeds - 1) * sd_seed / math.sqrt(seeds) <= half_width:
            return seeds
    return None


def paired_interval(diff: np.ndarray, reps: int = 4000, rng_seed: int = 0) -> dict:
    """Point estimate and both 95 % intervals of the mean of ``diff`` (S seeds x Q questions).

    Naive equivalent of the bootstrap (one replicate)::

        seeds = rng.choice(S, S); questions = rng.choice(Q, Q)
        estimate = diff[seeds][:, questions].mean()

    done here for all replicates at once with index arrays."""
    diff = np.asarray(diff, dtype=float)
    if diff.ndim != 2 or diff.shape[0] < 2 or diff.shape[1] < 1:
        raise ValueError(f"paired_interval needs at least 2 seeds x 1 question, got shape {diff.shape}")
    n_seeds, n_questions = diff.shape
    per_seed = diff.mean(axis=1)  # (S,)
    mean = float(per_seed.mean())
    sd_seed = float(per_seed.std(ddof=1))
    half = t975(n_seeds - 1) * sd_seed / math.sqrt(n_seeds)
    rng = np.random.default_rng(rng_seed)
    seeds = rng.integers(0, n_seeds, size=(reps, n_seeds))  # (reps, S)
    questions = rng.integers(0, n_questions, size=(reps, n_questions))  # (reps, Q)
    # the mean over the resampled cells = the mean over the resampled seeds of each seed's mean over the
    # resampled questions, so each replicate needs only an (S,) vector, never the (S, Q) resampled matrix
    by_question = np.stack([diff[:, q].mean(axis=1) for q in questions])  # (reps, S): each seed's mean
    estimates = np.take_along_axis(by_question, seeds, axis=1).mean(axis=1)  # (reps,)
    low, high = np.percentile(estimates, [2.5, 97.5])
    return {"mean": mean, "seeds": n_seeds, "questions": n_questions, "sd_seed": sd_seed,
            "t_low": mean - half, "t_high": mean + half, "boot_low": float(low), "boot_high": float(high),
            "higher": int((per_seed > 0).sum()), "lower": int((per_seed < 0).sum()), "reps": reps}
