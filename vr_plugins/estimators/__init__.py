"""Estimators: turn the scored (and verified) traces of a run directory into a training dataset.

The plugin contract (what a third-party estimator implements)
-------------------------------------------------------------
Register a :class:`vr_plugins.types.Estimator` from a ``register_estimators(register)`` hookimpl::

    register(Estimator(name="mine", build="my_pkg.my_mod:select", needs_verification=False))

``build`` resolves to a callable ``select(inputs: EstimatorInputs, options: BuildOptions) -> Selection``:

- ``inputs.questions``: ``prompt_idx`` (sorted ascending) and ``family`` per question;
- ``inputs.traces``: one entry per scored trace as numpy columns: ``prompt_idx``, ``seed``, ``q``
  (question position), ``think_tokens``, ``answer_tokens``, ``think_logp_prior``,
  ``think_logp_posterior``, ``answer_logp_prior``, ``valid`` / ``answer_valid`` masks and, when the run
  has verified rollouts (always when ``needs_verification``), ``n_rollouts``, ``n_correct``,
  ``first_correct`` (rollout_idx, -1 if none) and ``acc``;
- ``options``: ``max_think_tokens``, ``fallback_families``, ``seed``, ``resample``, ``log_weight`` and
  ``extra`` (free-form ``--option key=value`` pairs from the CLI);
- return a :class:`Selection`: per output row the question position, the trace index (-1 = keep the
  original reference example, source -1), the solution kind (reference solution or the trace's first
  correct rollout), the weight and average_correctness (NaN = null). The builder checks it, sorts it by
  prompt_idx, fetches the texts and writes the file; the "-mix" originals are added by the builder.

Helpers for the shared rules live in :mod:`vr_plugins.estimators.candidates` (``delta``, ``gml_score``,
``log_acc_score``, ``within_cap``, ``argmax_per_question``, ``softmax_per_question``). Text is never
passed to estimators: selection runs on scalar columns only, which is what keeps a full-scale build
fast and small.
"""

from vr_plugins.estimators.candidates import (SOLUTION_REFERENCE, SOLUTION_ROLLOUT, BuildOptions, EstimatorInputs,
                                              Selection, argmax_per_question, delta, gml_score, log_acc_score,
                                              softmax_per_question, within_cap)

__all__ = [
    "BuildOptions", "EstimatorInputs", "Selection", "SOLUTION_REFERENCE", "SOLUTION_ROLLOUT",
    "argmax_per_question", "softmax_per_question", "delta", "gml_score", "log_acc_score", "within_cap",
    "build_dataset", "load_inputs",
]


def __getattr__(name):  # lazy: the builder imports the registry
    if name in ("build_dataset", "load_inputs"):
        from vr_plugins.estimators import build

        return getattr(build, name)
    raise AttributeError(name)
