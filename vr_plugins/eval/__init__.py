"""Evaluation: the paper's benchmarks as SkyThought tasks, a CPU runner and the result summary.

- the task handlers (subclasses of SkyThought 0.1.0's handlers with its evaluation defects fixed) are in
  the SkyThought adapter, :mod:`vr_plugins.hosts.skythought.handlers`, which registers them into SkyThought;
- :mod:`vr_plugins.eval.tasks`: task lookup by name (the registry's ``EvalTask`` objects -> handler);
- :mod:`vr_plugins.eval.data`: ``VR_EVAL_DATA_DIR`` local data and the pickle-free LiveCodeBench decoder;
- :mod:`vr_plugins.eval.models`: which model ids / local checkpoints get the reasoning prompt and prefill;
- :mod:`vr_plugins.eval.local`: ``evaluate_local`` (transformers generation on CPU, same handlers);
- :mod:`vr_plugins.eval.summary`: result folders -> one avg@n table;
- :mod:`vr_plugins.eval.protocol`: the paper's protocol as ``skythought evaluate`` command lines.

Nothing here imports SkyThought (only ``vr_plugins.hosts`` does), nor torch or transformers at package import
time.
"""
