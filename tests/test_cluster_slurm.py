"""The demo's data steps through the ``slurm`` launcher on a real single-host SLURM cluster.

The test's own setup (as root) starts munged, slurmctld and slurmd on localhost (tests/slurm_cluster.py)
and stops them at teardown; when they cannot start, the test skips with the reason. pi_0 and q are
trained once locally; then the same config runs sample -> build_gml twice with those checkpoints: with
the local launcher, and as chained sbatch jobs with 2 srun tasks per data step (``--shard
$SLURM_PROCID/$SLURM_NTASKS``). Every data-step output and the built dataset must be equal. Submitting
again must submit nothing (the jobs recorded their stages).
"""

from __future__ import annotations

import json
import re
import socket

import pyarrow.parquet as pq
import pytest

import slurm_cluster
from conftest import run
from test_pipeline_config import _write
from vr_plugins.rundir import columns as C

pytestmark = [pytest.mark.multiprocess, pytest.mark.e2e]

COMMON = ["dataset.limit=8"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        started = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    except slurm_cluster.Unavailable as exc:
        pytest.skip(f"no single-host SLURM cluster: {exc}")
    yield started
    started.stop()


def _rows(path):
    rows = pq.read_table(path).to_pylist()
    return sorted(rows, key=lambda r: tuple(str(r.get(k)) for k in (C.PROMPT_IDX, C.SEED, "rollout_idx")))


def test_demo_data_steps_under_slurm_equal_the_local_launchers(cluster, tmp_path):
    config = _write(tmp_path)
    trained = tmp_path / "trained"
    run(["vr-tools", "pipeline", "--config", str(config), "--run-dir", str(trained), "--until", "train_posterior",
         *COMMON], timeout=900)
    skips = [*COMMON, f"train.skip_initial={trained / 'models' / 'initial'}",
             f"train.skip_posterior={trained / 'models' / 'posterior'}"]
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    run(["vr-tools", "pipeline", "--config", str(config), "--run-dir", str(local), "--until", "build_gml", *skips],
        timeout=900)

    # ... and one training under srun: torchrun with 2 processes (gloo), MASTER_ADDR from the allocation
    args = ["vr-tools", "pipeline", "--config", str(config), "--run-dir", str(slurm), "--until", "train_final_gml",
            *skips, "launcher=slurm", "cluster.data_tasks=2", "cluster.request_gpus=false", "cluster.gpus_per_node=2",
            "train.num_gpus=2", "train.overrides.ddp_backend=gloo", f"cluster.master_port={_free_port()}"]
    proc = run(args, timeout=120, **cluster.env())
    jobs = re.findall(r"submitted job (\d+)", proc.stdout)
    scripts = sorted((slurm / "launch").glob("*.sbatch"))
    assert len(jobs) == len(scripts) >= 7, proc.stdout
    sample = next(p for p in scripts if p.name.endswith("-sample.sbatch")).read_text()
    assert "#SBATCH --ntasks=2" in sample and '--shard "$SLURM_PROCID/$SLURM_NTASKS"' in sample, sample
    states = slurm_cluster.wait_for_jobs(cluster, jobs, timeout=900)
    logs = "\n".join(p.read_text()[-1500:] for p in sorted((slurm / "logs").glob("*.slurm-*.log")))
    assert set(states.values()) == {"COMPLETED"}, f"{states}\n{logs}\n{cluster.log_tail()}"

    for folder in (C.POSTERIOR_DIR, C.SCORES_DIR, C.ROLLOUTS_DIR, C.VERIFIED_DIR):
        files = sorted(p.name for p in (local / folder).glob("*.parquet"))
        assert files and files == sorted(p.name for p in (slurm / folder).glob("*.parquet")), folder
        for name in files:
            assert _rows(slurm / folder / name) == _rows(local / folder / name), f"{folder}/{name}"
    dataset = f"{C.DATASETS_DIR}/gml-mix.parquet"
    assert _rows(slurm / dataset) == _rows(local / dataset)

    training = next(p for p in scripts if p.name.endswith("-train_final_gml.sbatch")).read_text()
    assert 'NODE_RANK="$SLURM_NODEID"' in training and "NPROC_PER_NODE=2" in training, training
    assert (slurm / "models" / "final-gml" / "config.json").exists()
    normalizer = json.loads((slurm / "models" / "final-gml" / "vr_normalizer.json").read_text())
    assert normalizer["num_gpus"] == 2, normalizer  # C was counted in a 2-process training

    again = run(args, timeout=120, **cluster.env())
    assert "every stage is done; nothing submitted" in again.stdout, again.stdout
