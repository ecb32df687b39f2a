"""Where a stage's commands run: the cluster layout of a config and the checks made before any work.

A stage's steps are launcher-independent (their fingerprint is what ``RUN/pipeline.json`` records), so a
run may move from ``local`` to ``torchrun`` or ``slurm`` without redoing finished stages. A launcher turns
each step into the processes of its layout, by the step's ``role``:

- ``train``: ``llamafactory-cli train`` with LLaMA-Factory's torchrun variables (FORCE_TORCHRUN, NNODES,
  NODE_RANK, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT), one launcher per node;
- ``gpu`` / ``cpu``: a data step, one process per shard (``--shard i/N``; the shard that finishes last
  merges the shard files), one shard per GPU group of ``tensor_parallel_size`` GPUs for ``gpu`` steps;
- ``eval``: one process per (model, benchmark); ``single``: one process.

The modules ``launch_local``, ``launch_torchrun`` and ``launch_slurm`` render and run these.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from vr_plugins.paths import recipe
from vr_plugins.pipeline.config import LAUNCHERS, ConfigError, PipelineConfig
from vr_plugins.pipeline.stages import Step
from vr_plugins.rundir import columns as C

#: the variables LLaMA-Factory's launcher reads (``llamafactory-cli train`` under FORCE_TORCHRUN); the
#: launchers set them, so ``train.env`` may not
TORCHRUN_VARS = ("FORCE_TORCHRUN", "NNODES", "NODE_RANK", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT")
DATA_ROLES = ("gpu", "cpu")


@dataclass(frozen=True)
class Layout:
    nodes: int
    gpus_per_node: int
    tensor_parallel_size: int  #: GPUs of one data-step process (vllm backend), 1 for hf
    data_tasks: int  #: shards of every data step
    master_addr: str
    master_port: int

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def multi_process_training(self) -> bool:
        return self.gpus > 1

    def shards_of_node(self, rank: int) -> range:
        """The shard indices node ``rank`` runs (the data tasks split evenly over the nodes)."""
        per_node = -(-self.data_tasks // self.nodes)
        return range(min(rank * per_node, self.data_tasks), min((rank + 1) * per_node, self.data_tasks))

    def gpu_group(self, local_index: int) -> str:
        """CUDA_VISIBLE_DEVICES of the ``local_index``-th data process on a node."""
        tp = self.tensor_parallel_size
        first = (local_index * tp) % max(self.gpus_per_node, tp)
        return ",".join(str(first + i) for i in range(tp))


def layout(config: PipelineConfig) -> Layout:
    c = config.cluster
    tp = config.tensor_parallel_size if config.backend == "vllm" else 1
    data_tasks = c.data_tasks or max(1, c.nodes * c.gpus_per_node // tp)
    return Layout(c.nodes, c.gpus_per_node, tp, data_tasks, c.master_addr, c.master_port)


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


# --- checks made before any work -------------------------------------------------------------------
def _recipe_batch(config: PipelineConfig, recipe_rel: str) -> tuple[int, int]:
    keys = yaml.safe_load(recipe(recipe_rel).read_text()) or {}
    return int(keys.get("per_device_train_batch_size", 1)), int(keys.get("gradient_accumulation_steps", 1))


def check_global_batch(config: PipelineConfig, source) -> None:
    """The trainings' global batch (per device x grad-accum x GPUs) must stay the one the recipes were
    written for (``train.num_gpus`` GPUs); a layout that changes it is refused with the
    ``gradient_accumulation_steps`` that would keep it, or the statement that none can."""
    lay = layout(config)
    overrides = config.train.overrides
    for key in ("initial", "posterior", "final"):
        recipe_rel = getattr(config.train, key)
        try:
            per_device, accum = _recipe_batch(config, recipe_rel)
        except (OSError, ValueError, TypeError):
            continue  # a missing recipe is reported by the dry run / training itself
        target = per_device * accum * config.train.num_gpus  # the recipe's own numbers
        per_device = int(overrides.get("per_device_train_batch_size", per_device))
        effective = per_device * int(overrides.get("gradient_accumulation_steps", accum)) * lay.gpus
        if effective == target:
            continue
        where = (f"{source}: train.{key} ({recipe_rel}): {lay.nodes} node(s) x {lay.gpus_per_node} GPU(s) x "
                 f"per_device_train_batch_size {per_device} x gradient_accumulation_steps "
                 f"{overrides.get('gradient_accumulation_steps', accum)} = {effective} sequences per step, but the "
                 f"recipe's global batch is {target} (its {target // config.train.num_gpus} per GPU x "
                 f"train.num_gpus {config.train.num_gpus})")
        if target % (per_device * lay.gpus) == 0:
            raise ConfigError(f"{where}. Set train.overrides.gradient_accumulation_steps="
                              f"{target // (per_device * lay.gpus)} to keep it.")
        raise ConfigError(f"{where}. {lay.gpus} GPUs x {per_device} per device do not divide {target}: no "
                          "gradient_accumulation_steps keeps it; choose node and GPU counts that divide it.")


def check_layout(config: PipelineConfig, source) -> None:
    c = config.cluster
    if config.launcher not in LAUNCHERS:
        raise ConfigError(f"{source}: launcher must be one of {', '.join(LAUNCHERS)}, got {config.launcher!r}")
    for key in ("nodes", "gpus_per_node", "master_port"):
        if getattr(c, key) < 1:
            raise ConfigError(f"{source}: cluster.{key} must be >= 1, got {getattr(c, key)}")
    if c.data_tasks < 0:
        raise ConfigError(f"{source}: cluster.data_tasks must be >= 0 (0: one per GPU group), got {c.data_tasks}")
    clash = [k for k in config.train.env if k in TORCHRUN_VARS]
    if clash:
        raise ConfigError(f"{source}: train.env sets {', '.join(clash)}, which the launcher sets from cluster.nodes, "
                          "cluster.gpus_per_node, cluster.master_addr and cluster.master_port: set those instead")
    if config.launcher == "local" and c.nodes > 1:
        raise ConfigError(f"{source}: launcher 'local' runs on this machine only, but cluster.nodes is {c.nodes}: "
                          "use launcher=torchrun or launcher=slurm")
    check_global_batch(config, source)
    lay = layout(config)
    if config.dataset.limit and lay.data_tasks > config.dataset.limit:
        raise ConfigError(f"{source}: {lay.data_tasks} shards per data step (cluster.data_tasks) but dataset.limit "
                          f"keeps {config.dataset.limit} questions: a shard would have no question; use at most "
                          f"{config.dataset.limit}")


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
