"""GML estimator (docs/method.md section 3): the geometric mean of token likelihoods.

score_k = answer_logp_prior / answer_tokens + delta_k over candidates (think_tokens < cap, finite
scores); the argmax trace (ties: lowest seed) + the reference solution; no candidate: the original
reference example (source -1). average_correctness is null.
"""

from __future__ import annotations

import numpy as np

from vr_plugins.estimators.candidates import (SOLUTION_REFERENCE, BuildOptions, EstimatorInputs, Selection,
                                              argmax_per_question, gml_score, original_rows, picked_rows,
                                              within_cap)


def gml_best(inputs: EstimatorInputs, options: BuildOptions) -> np.ndarray:
    """Per question, the trace index GML keeps, or -1 (also used by acc's fallback families)."""
    score = gml_score(inputs.traces)
    return argmax_per_question(inputs, score, within_cap(inputs.traces, options) & np.isfinite(score))


def select(inputs: EstimatorInputs, options: BuildOptions) -> Selection:
    best = gml_best(inputs, options)
    return Selection.concat([picked_rows(inputs, best, SOLUTION_REFERENCE, with_acc=False),
                             original_rows(np.flatnonzero(best < 0))])
