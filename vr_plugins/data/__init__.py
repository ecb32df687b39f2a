"""The data steps between trainings: prepare, sample, score, rollout (docs/data_steps.md).

Each step reads and writes the run directory (docs/run_directory.md) through :mod:`vr_plugins.rundir`: inputs are
validated before anything is written, parameters go to the manifest, outputs are written in resumable
parts per shard and merged by prompt_idx. torch, transformers and vLLM are imported only inside the
functions that need them, so ``vr-tools --help`` and ``prepare`` stay light.
"""
