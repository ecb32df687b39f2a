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
- ``options``: a :class:`BuildOptions`: ``max_think_tokens``, ``fallback_families``, ``seed``, ``resample``,
  ``log_weight`` (each built-in estimator's options, declared with their help in
  :mod:`vr_plugins.estimators.options`) and ``extra`` (free-form ``--option key=value`` pairs from the CLI;
  a plugin declares its options as a dataclass and reads them with ``from_extra(MyOptions, options.extra)``);
- return a :class:`Selection`: per output row the question position, the trace index (-1 = keep the
  original reference example, source -1), the solution kind (reference solution or the trace's first
  correct rollout), the weight and average_correctness (NaN = null). The builder checks it, sorts it by
  prompt_idx, fetches the texts and writes the file; the "-mix" originals are added by the builder.

Helpers for the shared rules live in :mod:`vr_plugins.estimators.candidates` (``delta``, ``gml_score``,
``log_acc_score``, ``within_cap``, ``argmax_per_question``, ``softmax_per_question``). Text is never
passed to estimators: selection runs on scalar columns only, which is what keeps a full-scale build
fast and small.
"""

import importlib

#: public name -> the submodule that defines it; imported on first use, so that importing the light
#: ``vr_plugins.estimators.options`` (the pipeline config does) does not load numpy, pyarrow and the registry
_PUBLIC = {
    **dict.fromkeys(["BuildOptions", "EstimatorInputs", "Selection", "SOLUTION_REFERENCE", "SOLUTION_ROLLOUT",
                     "argmax_per_question", "softmax_per_question", "delta", "gml_score", "log_acc_score",
                     "within_cap"], "candidates"),
    **dict.fromkeys(["build_dataset", "load_inputs"], "build"),
    **dict.fromkeys(["CandidateOptions", "AccOptions", "SnisOptions", "EstimatorOptionError", "from_extra"],
                    "options"),
}
__all__ = list(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(f"vr_plugins.estimators.{_PUBLIC[name]}"), name)
    raise AttributeError(f"module 'vr_plugins.estimators' has no attribute {name!r}")
