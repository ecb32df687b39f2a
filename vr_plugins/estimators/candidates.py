"""The shared pieces of every estimator: inputs, the selection result and the per-question math.

All functions work on whole columns (numpy), grouped by question: traces are sorted by question once and
per-question reductions use ``np.*.reduceat``, so 133,680 traces take milliseconds. The options
(:class:`BuildOptions`, re-exported here) are declared in :mod:`vr_plugins.estimators.options`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vr_plugins.estimators.inputs import Problems, Questions, Rollouts, Traces
from vr_plugins.estimators.options import ACC, CANDIDATES, BuildOptions
from vr_plugins.rundir import columns as C

#: kept for callers of the old names; the defaults are declared in :mod:`vr_plugins.estimators.options`
DEFAULT_MAX_THINK_TOKENS = CANDIDATES.max_think_tokens
DEFAULT_FALLBACK_FAMILIES = ACC.fallback_families

#: values of ``Selection.solution``
SOLUTION_REFERENCE = 0  # the question's reference_solution
SOLUTION_ROLLOUT = 1  # the first correct rollout (by rollout_idx) of the selected trace


@dataclass
class EstimatorInputs:
    """What ``build(inputs, options)`` receives: the questions and every scored trace, as columns.

    ``traces.q`` maps each trace to its question position; the verification columns
    (``traces.n_rollouts``, ``n_correct``, ``first_correct``, ``acc``) are filled when the run has
    verified files. ``problems`` holds the per-row rule counts (see docs/estimators.md).
    """

    questions: Questions
    traces: Traces
    problems: Problems
    rollouts: Rollouts | None = None


@dataclass
class Selection:
    """What an estimator returns: the training rows (without the "-mix" originals), as columns.

    One entry per output row, rows of a question contiguous and questions in ascending prompt_idx
    (``finalise`` sorts stably, so an estimator may emit them in any order).

    - ``q``: question position (``inputs.questions``);
    - ``trace``: trace index (``inputs.traces``), or -1 for the question's original reference example
      (written with source -1);
    - ``solution``: SOLUTION_REFERENCE (trace + reference solution) or SOLUTION_ROLLOUT (trace + the
      trace's first correct rollout; only for traces with ``first_correct >= 0``);
    - ``weight``: the per-example training weight (finite, >= 0);
    - ``average_correctness``: acc of the selected trace, NaN for null.
    """

    q: np.ndarray
    trace: np.ndarray
    solution: np.ndarray
    weight: np.ndarray
    average_correctness: np.ndarray

    def __len__(self) -> int:
        return len(self.q)

    @classmethod
    def concat(cls, parts: list[Selection]) -> Selection:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                     ("q", "trace", "solution", "weight", "average_correctness")))

    def finalise(self, inputs: EstimatorInputs) -> Selection:
        """Check the invariants (a plugin bug must not become a silent wrong dataset) and sort by question."""
        n = len(self.q)
        arrays = dict(q=np.asarray(self.q, np.int64), trace=np.asarray(self.trace, np.int64),
                      solution=np.asarray(self.solution, np.int8), weight=np.asarray(self.weight, np.float64),
                      average_correctness=np.asarray(self.average_correctness, np.float64))
        for name, arr in arrays.items():
            if arr.shape != (n,):
                raise ValueError(f"estimator selection: column {name!r} has shape {arr.shape}, expected ({n},)")
        t = arrays["trace"]
        if n and (arrays["q"].min() < 0 or arrays["q"].max() >= len(inputs.questions)):
            raise ValueError("estimator selection: question position out of range")
        if n and (t.min() < -1 or t.max() >= len(inputs.traces)):
            raise ValueError("estimator selection: trace index out of range")
        picked = t >= 0
        if np.any(inputs.traces.q[t[picked]] != arrays["q"][picked]):
            raise ValueError("estimator selection: a row pairs a question with another question's trace")
        w = arrays["weight"]
        if not np.all(np.isfinite(w) & (w >= 0)):
            raise ValueError("estimator selection: weights must be finite and >= 0")
        rollout = arrays["solution"] == SOLUTION_ROLLOUT
        if np.any(rollout & ~picked):
            raise ValueError("estimator selection: a rollout solution needs a selected trace")
        if np.any(rollout) and (inputs.traces.first_correct is None
                                or np.any(inputs.traces.first_correct[t[rollout]] < 0)):
            raise ValueError("estimator selection: a rollout solution needs a trace with a correct rollout")
        order = np.argsort(arrays["q"], kind="stable")
        return Selection(**{k: v[order] for k, v in arrays.items()})

    def source(self, inputs: EstimatorInputs) -> np.ndarray:
        """The dataset ``source`` column: the trace's seed, or -1 for the original example."""
        return np.where(self.trace >= 0, inputs.traces.seed[np.maximum(self.trace, 0)] if len(inputs.traces)
                        else -1, C.SOURCE_FALLBACK).astype(np.int64)


# --- per-trace quantities (docs/method.md section 3) ---------------------------------------------------
def delta(traces: Traces) -> np.ndarray:
    """delta_k = (think_logp_prior - think_logp_posterior) / think_tokens; NaN for invalid traces."""
    with np.errstate(invalid="ignore", divide="ignore"):
        d = (traces.think_logp_prior - traces.think_logp_posterior) / traces.think_tokens
    return np.where(traces.valid, d, np.nan)


def gml_score(traces: Traces) -> np.ndarray:
    """answer_logp_prior / answer_tokens + delta_k; NaN where either part is undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        a = traces.answer_logp_prior / traces.answer_tokens
    return np.where(traces.answer_valid, a, np.nan) + delta(traces)


def log_acc_score(traces: Traces) -> np.ndarray:
    """log rho_k = log acc_k + delta_k (rho_k = acc_k * exp(delta_k) in log space); -inf when acc_k = 0."""
    with np.errstate(divide="ignore"):
        return np.log(traces.acc) + delta(traces)


def within_cap(traces: Traces, options: BuildOptions) -> np.ndarray:
    """The length rule: a candidate needs think_tokens < max_think_tokens (strictly)."""
    return traces.think_tokens < options.max_think_tokens


def fallback_family_mask(questions: Questions, options: BuildOptions) -> np.ndarray:
    return np.isin(questions.family, list(options.fallback_families))


# --- grouped operations ---------------------------------------------------------------------------
def argmax_per_question(inputs: EstimatorInputs, score: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """For each question, the trace index with the largest ``score`` among ``mask``; -1 when none.

    Ties go to the lowest seed. NaN scores are never chosen (callers mask them; this is a guard).
    """
    traces = inputs.traces
    best = np.full(len(inputs.questions), -1, np.int64)
    idx = np.flatnonzero(mask & ~np.isnan(score))
    if len(idx) == 0:
        return best
    # sort by question, then score descending, then seed ascending: the first of each group wins
    order = idx[np.lexsort((traces.seed[idx], -score[idx], traces.q[idx]))]
    qs = traces.q[order]
    first = np.ones(len(order), bool)
    first[1:] = qs[1:] != qs[:-1]
    best[qs[first]] = order[first]
    return best


def softmax_per_question(q: np.ndarray, log_w: np.ndarray) -> np.ndarray:
    """Self-normalised weights exp(lw_k - logsumexp_j lw_j) within each question (log-sum-exp stable).

    ``q`` must be sorted (groups contiguous); entries with lw = -inf get weight 0; a group whose
    entries are all -inf would be 0/0 and must be removed by the caller.
    """
    if len(q) == 0:
        return np.zeros(0)
    starts = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
    sizes = np.diff(np.r_[starts, len(q)])
    m = np.maximum.reduceat(log_w, starts)
    if not np.all(np.isfinite(m)):
        raise ValueError("softmax_per_question: a question has no finite log weight")
    e = np.exp(log_w - np.repeat(m, sizes))
    return e / np.repeat(np.add.reduceat(e, starts), sizes)


def original_rows(q_positions: np.ndarray) -> Selection:
    """Rows that keep the original reference example (source -1, weight 1)."""
    n = len(q_positions)
    return Selection(q=np.asarray(q_positions, np.int64), trace=np.full(n, -1, np.int64),
                     solution=np.full(n, SOLUTION_REFERENCE, np.int8), weight=np.ones(n),
                     average_correctness=np.full(n, np.nan))


def picked_rows(inputs: EstimatorInputs, best: np.ndarray, solution: int, with_acc: bool) -> Selection:
    """One row per question whose ``best`` trace is >= 0."""
    qs = np.flatnonzero(best >= 0)
    t = best[qs]
    acc = inputs.traces.acc[t] if with_acc else np.full(len(t), np.nan)
    return Selection(q=qs, trace=t, solution=np.full(len(t), solution, np.int8), weight=np.ones(len(t)),
                     average_correctness=acc)


def questions_without_tests(questions: Questions) -> np.ndarray:
    """Per question position: flagged ``no_tests`` by ``prepare`` (a code question without unit tests).

    Such a question's rollouts are all graded "invalid tests", so an estimator that needs a correct
    rollout (acc, rft) falls back on it; build and report count those fallbacks. All False for
    questions files written without the column.
    """
    import pyarrow.parquet as pq

    flags = np.zeros(len(questions), bool)
    if C.NO_TESTS not in pq.read_schema(questions.path).names:
        return flags
    table = pq.read_table(questions.path, columns=[C.PROMPT_IDX, C.NO_TESTS])
    idx = table[C.PROMPT_IDX].to_numpy()
    value = np.asarray(table[C.NO_TESTS].fill_null(False).to_numpy(zero_copy_only=False), bool)
    pos = questions.positions(idx)
    flags[pos[pos >= 0]] = value[pos >= 0]
    return flags
