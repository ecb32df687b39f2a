"""The ``local`` and ``torchrun`` launchers: the processes one machine runs for a stage.

``local`` is one machine: a multi-GPU training is one torchrun launcher on it, a data step one shard
per GPU group run side by side. ``torchrun`` is a cluster without a scheduler: the same pipeline command
runs on every node with its ``--node-rank``; each node runs its part of a stage (its torchrun launcher of
a training, its shards of a data step; the one-process steps and the evaluation on node 0), then waits
until the stage's outputs exist on the shared file system before the next stage. Node 0 records the
stage as done.

A plan is a list of groups; the processes of a group run at the same time, groups one after another.
"""

from __future__ import annotations

import shlex

from vr_plugins.pipeline.config import PipelineConfig
from vr_plugins.pipeline.launch import DATA_ROLES, Layout, layout, sharded, training_env, with_env
from vr_plugins.pipeline.stages import Stage, Step

LOCALHOST = "127.0.0.1"
#: printed in the torchrun dry run when cluster.master_addr is not set: the shell stops with this message
MASTER_ADDR_PROMPT = '"${MASTER_ADDR:?set MASTER_ADDR to node 0\'s address}"'


def node_plan(stage: Stage, config: PipelineConfig, rank: int = 0, master_addr: str | None = None) -> list[list[Step]]:
    """The groups of processes node ``rank`` runs for ``stage``."""
    lay = layout(config)
    multi_node = config.launcher == "torchrun"
    addr = master_addr or lay.master_addr or (LOCALHOST if not multi_node or lay.nodes == 1 else "$MASTER_ADDR")
    groups: list[list[Step]] = []
    for step in stage.steps:
        if step.role == "train":
            groups.append([with_env(step, training_env(lay, str(rank), addr))])
        elif step.role in DATA_ROLES:
            shards = lay.shards_of_node(rank) if multi_node else range(lay.data_tasks)
            groups.append([sharded(step, i, lay.data_tasks, _devices(lay, step, local)) for local, i in enumerate(shards)])
        elif rank == 0:
            groups.append([step])
    return [g for g in groups if g]


def _devices(lay: Layout, step: Step, local_index: int) -> dict[str, str]:
    if step.role != "gpu" or lay.gpus_per_node == 1 or lay.data_tasks == 1:
        return {}
    return {"CUDA_VISIBLE_DEVICES": lay.gpu_group(local_index)}


def shell_lines(groups: list[list[Step]]) -> list[str]:
    """A plan as shell lines: a group of several processes is started with ``&`` and ended by ``wait``."""
    lines: list[str] = []
    for group in groups:
        if len(group) == 1:
            lines.append(_printable(group[0]))
        else:
            lines += [f"{_printable(step)} &" for step in group] + ["wait"]
    return lines


def _printable(step: Step) -> str:
    line = step.shell(with_env_path=True)
    return line.replace(shlex.quote("$MASTER_ADDR"), MASTER_ADDR_PROMPT)


def dry_run_lines(stage: Stage, config: PipelineConfig) -> list[str]:
    if config.launcher != "torchrun":
        return shell_lines(node_plan(stage, config))
    lines = []
    for rank in range(layout(config).nodes):
        groups = node_plan(stage, config, rank)
        lines.append(f"#   on node {rank} (vr-tools pipeline ... --node-rank {rank}):" if groups else
                     f"#   on node {rank}: waits for node 0")
        lines += shell_lines(groups)
    return lines
