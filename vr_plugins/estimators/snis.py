"""Self-normalised importance weights over all K traces of a question (soft weights or resampling).

log w_k (``options.log_weight``):
- ``gml`` (default): the GML score, answer_logp_prior/answer_tokens + delta_k (per-token normalised, so
  weights are not degenerate on long traces);
- ``iwae``: the exact multi-trace bound's log rho_k = think_logp_prior + answer_logp_prior -
  think_logp_posterior (sums over tokens; usually puts almost all weight on one trace);
- ``acc``: log acc_k + delta_k (needs verified rollouts).
Candidates follow the shared rule (think_tokens < cap, finite log w; acc_k > 0 for ``acc``).
rho~_k = exp(lw_k - logsumexp_j lw_j). Each candidate is a row (trace + reference solution) with
weight rho~_k, so a question's rows sum to 1 (use with ``use_sample_weights: true``). With
``options.resample = M`` instead, M traces are drawn with replacement by rho~ (numpy Generator seeded
with (options.seed, prompt_idx): independent of row order and sharding), each row weight 1/M.
Questions without a candidate keep their original example (source -1, weight 1).

Its options (``log_weight``, ``resample``, ``seed``) are :class:`SnisOptions`, declared with their help in
:mod:`vr_plugins.estimators.options`; ``options`` is the :class:`BuildOptions` that includes them.
"""

from __future__ import annotations

import numpy as np

from vr_plugins.estimators.candidates import (SOLUTION_REFERENCE, BuildOptions, EstimatorInputs, Selection,
                                              delta, gml_score, log_acc_score, original_rows,
                                              softmax_per_question, within_cap)
from vr_plugins.estimators.options import LOG_WEIGHTS, EstimatorOptionError, SnisOptions


def log_weights(inputs: EstimatorInputs, kind: str) -> np.ndarray:
    traces = inputs.traces
    if kind == "gml":
        return gml_score(traces)
    if kind == "iwae":
        lw = traces.think_logp_prior + traces.answer_logp_prior - traces.think_logp_posterior
        return np.where(traces.valid & traces.answer_valid, lw, np.nan)
    if kind == "acc":
        if not traces.has_verification:
            raise EstimatorOptionError("snis log_weight 'acc' needs verified rollouts (run rollout and verify first)")
        return log_acc_score(traces)
    raise EstimatorOptionError(f"snis: unknown log_weight {kind!r}; choose one of {', '.join(LOG_WEIGHTS)}")


def normalised_weights(inputs: EstimatorInputs, options: BuildOptions) -> tuple[np.ndarray, np.ndarray]:
    """(candidate trace indices sorted by question then seed, their self-normalised weights)."""
    traces = inputs.traces
    lw = log_weights(inputs, options.log_weight)
    cand = np.flatnonzero(within_cap(traces, options) & np.isfinite(lw))
    cand = cand[np.lexsort((traces.seed[cand], traces.q[cand]))]
    return cand, softmax_per_question(traces.q[cand], lw[cand])


def select(inputs: EstimatorInputs, options: BuildOptions) -> Selection:
    traces = inputs.traces
    cand, w = normalised_weights(inputs, options)
    acc = traces.acc
    if options.resample:
        m = int(options.resample)
        if m < 1:
            raise EstimatorOptionError(f"snis: resample must be >= 1, got {m}")
        qs = traces.q[cand]
        starts = np.flatnonzero(np.r_[True, qs[1:] != qs[:-1]]) if len(qs) else np.zeros(0, np.int64)
        ends = np.r_[starts[1:], len(qs)]
        picks = []
        for a, b in zip(starts, ends):
            rng = np.random.default_rng([options.seed, int(inputs.questions.prompt_idx[qs[a]])])
            draws = rng.choice(b - a, size=m, replace=True, p=w[a:b] / w[a:b].sum())
            picks.append(cand[a:b][np.sort(draws)])
        chosen = np.concatenate(picks) if picks else np.zeros(0, np.int64)
        rows = Selection(q=traces.q[chosen], trace=chosen, solution=np.full(len(chosen), SOLUTION_REFERENCE, np.int8),
                         weight=np.full(len(chosen), 1.0 / m), average_correctness=acc[chosen])
    else:
        rows = Selection(q=traces.q[cand], trace=cand, solution=np.full(len(cand), SOLUTION_REFERENCE, np.int8),
                         weight=w, average_correctness=acc[cand])
    has = np.zeros(len(inputs.questions), bool)
    has[traces.q[cand]] = True
    return Selection.concat([rows, original_rows(np.flatnonzero(~has))])


def effective_sample_size(inputs: EstimatorInputs, options: BuildOptions) -> np.ndarray:
    """Per question with a candidate: ESS = 1 / sum_k rho~_k^2 (1 = one trace dominates, K = uniform)."""
    cand, w = normalised_weights(inputs, options)
    qs = inputs.traces.q[cand]
    if len(qs) == 0:
        return np.zeros(0)
    starts = np.flatnonzero(np.r_[True, qs[1:] != qs[:-1]])
    return 1.0 / np.add.reduceat(w * w, starts)


__all__ = ["SnisOptions", "LOG_WEIGHTS", "select", "log_weights", "normalised_weights", "effective_sample_size", "delta"]
