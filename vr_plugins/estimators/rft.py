"""RFT baseline (rejection-sampling fine-tuning): every correct trace, uniform weights.

A trace is kept when think_tokens < cap (and > 0, not truncated by the scorer) and at least one of its rollouts verified correct; its row is
the trace + its first correct rollout (as in acc), weight 1.0. Questions with no correct trace get no
row (the mix still contains their originals). A question's total weight is thus its number of correct
traces: the accuracy bias of RFT that the paper contrasts with the variational weights.
"""

from __future__ import annotations

import numpy as np

from vr_plugins.estimators.candidates import SOLUTION_ROLLOUT, BuildOptions, EstimatorInputs, Selection, within_cap


def select(inputs: EstimatorInputs, options: BuildOptions) -> Selection:
    traces = inputs.traces
    keep = np.flatnonzero(within_cap(traces, options) & (traces.think_tokens > 0) & ~traces.truncated
                        & (traces.n_correct > 0))
    keep = keep[np.lexsort((traces.seed[keep], traces.q[keep]))]
    n = len(keep)
    return Selection(q=traces.q[keep], trace=keep, solution=np.full(n, SOLUTION_ROLLOUT, np.int8),
                     weight=np.ones(n), average_correctness=traces.acc[keep])
