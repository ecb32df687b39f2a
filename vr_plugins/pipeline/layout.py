"""The cluster layout of a pipeline config, and the checks on it made before any work.

Its own module so that the config can check its layout while loading without importing the launchers
(which import the config): nothing here needs more of the config than its fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml

from vr_plugins.paths import recipe
from vr_plugins.pipeline.errors import ConfigError

if TYPE_CHECKING:
    from vr_plugins.pipeline.config import PipelineConfig

#: where a stage's commands run: this machine, per-node commands for plain torchrun, or SLURM jobs
LAUNCHERS = ("local", "torchrun", "slurm")

#: the variables LLaMA-Factory's launcher reads (``llamafactory-cli train`` under FORCE_TORCHRUN); the
#: launchers set them, so ``train.env`` may not
TORCHRUN_VARS = ("FORCE_TORCHRUN", "NNODES", "NODE_RANK", "NPROC_PER_NODE", "MASTER_ADDR", "MASTER_PORT")


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
