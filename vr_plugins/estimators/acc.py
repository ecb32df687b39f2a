"""Acc estimator (docs/method.md section 3): accuracy of the prior's continuations times the trace ratio.

rho_k = acc_k * exp(delta_k), compared as log acc_k + delta_k. A candidate needs think_tokens < cap,
acc_k > 0 and a finite delta_k. The argmax trace (ties: lowest seed) + its first correct rollout (by
rollout_idx). Questions of a fallback family (default ``ruc``) without a candidate take the GML choice
(trace + reference solution); every other question without a candidate keeps its original example
(source -1). average_correctness = acc_k of the selected trace (null for originals).
"""

from __future__ import annotations

import numpy as np

from vr_plugins.estimators.candidates import (SOLUTION_REFERENCE, SOLUTION_ROLLOUT, BuildOptions,
                                              EstimatorInputs, Selection, argmax_per_question,
                                              fallback_family_mask, log_acc_score, original_rows,
                                              picked_rows, within_cap)
from vr_plugins.estimators.gml import gml_best


def acc_best(inputs: EstimatorInputs, options: BuildOptions) -> np.ndarray:
    traces = inputs.traces
    score = log_acc_score(traces)
    mask = within_cap(traces, options) & (traces.acc > 0) & np.isfinite(score)
    return argmax_per_question(inputs, score, mask)


def select(inputs: EstimatorInputs, options: BuildOptions) -> Selection:
    best = acc_best(inputs, options)
    fallback = np.where((best < 0) & fallback_family_mask(inputs.questions, options), gml_best(inputs, options), -1)
    keep_original = (best < 0) & (fallback < 0)
    return Selection.concat([
        picked_rows(inputs, best, SOLUTION_ROLLOUT, with_acc=True),
        picked_rows(inputs, fallback, SOLUTION_REFERENCE, with_acc=True),
        original_rows(np.flatnonzero(keep_original)),
    ])
