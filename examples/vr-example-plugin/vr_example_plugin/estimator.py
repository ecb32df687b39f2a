"""Tempered self-normalised importance weights: w_k proportional to exp(beta * score_k).

beta = 1 is the built-in ``snis`` with GML log-weights; beta -> 0 gives uniform weights over the
candidates (the RFT-like end); beta -> infinity approaches the argmax of ``gml``. A knob for studying
how peaked the weights should be, read from ``vr-tools build --option beta=...``.
"""

import numpy as np

from vr_plugins.estimators import SOLUTION_REFERENCE, Selection, gml_score, softmax_per_question, within_cap
from vr_plugins.estimators.candidates import original_rows


def select(inputs, options):
    beta = float(options.extra.get("beta", 0.5))
    if not beta >= 0:
        raise ValueError(f"tempered_snis: beta must be >= 0, got {beta}")
    traces = inputs.traces
    score = gml_score(traces)
    cand = np.flatnonzero(within_cap(traces, options) & np.isfinite(score))
    cand = cand[np.lexsort((traces.seed[cand], traces.q[cand]))]
    weights = softmax_per_question(traces.q[cand], beta * score[cand])
    picked = Selection(q=traces.q[cand], trace=cand, solution=np.full(len(cand), SOLUTION_REFERENCE, np.int8),
                       weight=weights, average_correctness=np.full(len(cand), np.nan))
    missing = np.setdiff1d(np.arange(len(inputs.questions)), traces.q[cand])
    return Selection.concat([picked, original_rows(missing)])
