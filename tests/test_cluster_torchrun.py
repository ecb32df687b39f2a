"""A two-node LLaMA-Factory training run for real on one machine, through the lines the pipeline prints.

``vr-tools pipeline --dry-run launcher=torchrun cluster.nodes=2`` prints one ``llamafactory-cli train``
line per node (FORCE_TORCHRUN, NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT). Both lines are started as
two launchers on 127.0.0.1 (one process each, gloo) that meet at one rendezvous; their losses must equal
the one-node run's (one process with the same global batch) within 1e-5.
"""

from __future__ import annotations

import shlex
import socket
import subprocess

import pytest

from conftest import BIN, run, subprocess_env
from lf_helpers import losses
from pipeline_lines import stage_lines
from test_pipeline_config import _write

pytestmark = [pytest.mark.multiprocess]

#: the global batch of 8 sequences: 2 nodes x 1 process x 4 (the tiny recipes), or 1 process x 8
COMMON = ["train.num_gpus=2", "dataset.limit=16"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepared_on_two_nodes(tmp_path, name: str, *overrides: str):
    """``vr-tools pipeline --node-rank 1`` and ``--node-rank 0`` side by side: node 0 runs the one-process
    stages, node 1 waits for their outputs, both return when the stage is recorded."""
    config = _write(tmp_path)
    run_dir = tmp_path / name
    argv = [str(BIN / "vr-tools"), "pipeline", "--config", str(config), "--run-dir", str(run_dir), "--until", "prepare",
            *COMMON, *overrides]
    procs = [subprocess.Popen([*argv, "--node-rank", str(rank)], env=subprocess_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for rank in (1, 0)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(outputs)
    assert "[base_model] running 0 command(s)" in outputs[0] and "waiting for the other nodes" in outputs[0], outputs[0]
    assert "vr-tools prepare" in (run_dir / "logs" / "prepare.log").read_text()
    return config, run_dir


def _prepared(tmp_path, name: str, *overrides: str):
    config = _write(tmp_path)
    run_dir = tmp_path / name
    run(["vr-tools", "pipeline", "--config", str(config), "--run-dir", str(run_dir), "--until", "prepare",
         *COMMON, *overrides], timeout=600)
    return config, run_dir


def test_two_node_training_from_the_printed_lines_equals_the_one_node_run(tmp_path):
    port = _free_port()
    two = ["launcher=torchrun", "cluster.nodes=2", "cluster.master_addr=127.0.0.1", f"cluster.master_port={port}",
           "train.overrides.ddp_backend=gloo"]
    one = ["train.overrides.per_device_train_batch_size=8"]
    config, run2 = _prepared_on_two_nodes(tmp_path, "two", *two)
    _, run1 = _prepared(tmp_path, "one", *one)

    printed = run(["vr-tools", "pipeline", "--config", str(config), "--run-dir", str(run2), "--dry-run",
                   *COMMON, *two]).stdout
    nodes = stage_lines(printed, "train_initial")
    assert len(nodes) == 2, printed
    for rank, line in enumerate(nodes):
        for word in ("FORCE_TORCHRUN=1", "NNODES=2", f"NODE_RANK={rank}", "NPROC_PER_NODE=1",
                     "MASTER_ADDR=127.0.0.1", f"MASTER_PORT={port}"):
            assert word in shlex.split(line), (word, line)
    # the two "nodes": two launchers started from the printed lines, meeting at one rendezvous
    env = subprocess_env()
    procs = [subprocess.Popen(["bash", "-c", line], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for line in nodes]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n---\n".join(o[-3000:] for o in outputs)

    single = stage_lines(run(["vr-tools", "pipeline", "--config", str(config), "--run-dir", str(run1), "--dry-run",
                               *COMMON, *one]).stdout, "train_initial")
    assert len(single) == 1 and "NODE_RANK" not in single[0], single
    proc = subprocess.run(["bash", "-c", single[0]], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    two_losses, one_losses = losses(run2 / "models" / "initial"), losses(run1 / "models" / "initial")
    assert len(two_losses) == len(one_losses) >= 2
    assert max(abs(a - b) for a, b in zip(two_losses, one_losses)) < 1e-5, (two_losses, one_losses)
