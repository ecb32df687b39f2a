"""Where a stage's commands run: the cluster layout of a config and the checks made before any work.

A stage's steps are launcher-independent (their fingerprint is what ``RUN/pipeline.json`` records), so a
run may move from ``local`` to ``torchrun`` or ``slurm`` without redoing finished stages. A launcher turns
each step into the processes of its layout, by the step's ``role``:

- ``train``: ``llamafactory-cli train`` with LLaMA-Factory's torchrun variables (FORCE_TORCHRUN, NNODES,
  NODE_RANK, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT), one launcher per node;
- ``gpu`` / ``cpu``: a data step, one process per shard (``--shard i/N``; the shard that finishes last
  merges the shard files), one shard per GPU group of ``tensor_parallel_size`` GPUs for ``gpu`` steps;
- ``eval``: one process per evaluation step: per (model, benchmark) with SkyThought, per benchmark for every
  model together with the local backend (``vr-tools evaluate --model A --out A_OUT --model B ...``);
  ``single``: one process.

The runner (local), ``launch_nodes`` (torchrun) and ``launch_slurm`` render and run these; the layout itself
and its checks are in :mod:`vr_plugins.pipeline.layout`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from vr_plugins.pipeline.errors import ConfigError
# the layout and its checks live in pipeline/layout.py (the config imports them); the launchers import them here
from vr_plugins.pipeline.layout import (  # noqa: F401 (re-exported)
    LAUNCHERS, TORCHRUN_VARS, Layout, check_global_batch, check_layout, layout)
from vr_plugins.pipeline.stages import Step
from vr_plugins.rundir import columns as C

DATA_ROLES = ("gpu", "cpu")


def training_env(lay: Layout, node_rank: str, master_addr: str) -> dict[str, str]:
    """LLaMA-Factory's torchrun variables for one node (none for a one-GPU training: a plain process)."""
    if not lay.multi_process_training:
        return {}
    return {"FORCE_TORCHRUN": "1", "NNODES": str(lay.nodes), "NODE_RANK": node_rank,
            "NPROC_PER_NODE": str(lay.gpus_per_node), "MASTER_ADDR": master_addr, "MASTER_PORT": str(lay.master_port)}


def with_env(step: Step, env: dict[str, str]) -> Step:
    return replace(step, env={**env, **step.env})


def sharded(step: Step, index: str | int, count: str | int, env: dict[str, str] | None = None) -> Step:
    """The data step for one shard; an unsharded layout keeps the plain command."""
    if str(count) == "1":
        return with_env(step, env or {})
    return with_env(replace(step, argv=[*step.argv, "--shard", f"{index}/{count}"]), env or {})


def check_shards(run: Path, count: int) -> None:
    """Refuse more shards than questions (a shard without a question is a misconfigured launch)."""
    path = Path(run) / C.QUESTIONS_FILE
    if count <= 1 or not path.exists():
        return
    import pyarrow.parquet as pq

    n = pq.ParquetFile(path).metadata.num_rows
    if count > n:
        raise ConfigError(f"{path}: {count} shards per data step but only {n} questions: a shard would have no "
                          f"question; set cluster.data_tasks to at most {n}")
