"""Launchers, printed lines and overrides, without running a stage (fast: dry runs and config checks).

The real runs are tests/test_cluster_torchrun.py (two nodes on one machine) and tests/test_cluster_slurm.py
(a single-host SLURM cluster).
"""

from __future__ import annotations

import runpy
import shlex

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import BIN, run
from pipeline_lines import stage_lines
from test_pipeline_config import _write
from vr_plugins import formats
from vr_plugins.eval.models import REASONING_MODELS_ENV
from vr_plugins.paths import recipes_dir
from vr_plugins.pipeline.config import ConfigError, load_config
from vr_plugins.rundir import columns as C

PAPER_CONFIG = recipes_dir() / "pipeline" / "qwen3-4b-pb.yaml"
PAPER = runpy.run_path(str(recipes_dir() / "eval" / "paper_protocol.py"))["PAPER"]


def _dry(config, run_dir, *overrides, check=True, **env):
    return run(["vr-tools", "pipeline", "--config", str(config), "--run-dir", str(run_dir), "--dry-run", *overrides],
               check=check, **env)


# --- overrides ----------------------------------------------------------------------------------------
def test_overrides_nest_parse_as_yaml_and_are_checked_like_the_file(tmp_path):
    config = _write(tmp_path)
    c = load_config(config, ["sampling.max_new_tokens=12", "train.overrides.learning_rate=0.5", "mix=false",
                             "cluster.sbatch=[--partition=gpu, --time=1:00:00]", "launcher=slurm"])
    assert (c.sampling.max_new_tokens, c.train.overrides["learning_rate"], c.mix) == (12, 0.5, False)
    assert (c.launcher, c.cluster.sbatch) == ("slurm", ["--partition=gpu", "--time=1:00:00"])
    with pytest.raises(ConfigError, match=r"unknown key 'sampling.max_new_token'.*Did you mean 'max_new_tokens'"):
        load_config(config, ["sampling.max_new_token=3"])
    with pytest.raises(ConfigError, match=r"sampling.max_new_tokens must be int, got 'many'"):
        load_config(config, ["sampling.max_new_tokens=many"])
    with pytest.raises(ConfigError, match=r"num_traces must be int, got True"):
        load_config(config, ["num_traces=true"])
    with pytest.raises(ConfigError, match=r"launcher must be one of local, torchrun, slurm, got 'pbs'"):
        load_config(config, ["launcher=pbs"])
    with pytest.raises(ConfigError, match=r"expected key=value"):
        load_config(config, ["num_traces"])
    # the file is checked the same way
    bad = _write(tmp_path, verify={"workers": "four"})
    with pytest.raises(ConfigError, match=r"verify.workers must be int, got 'four'"):
        load_config(bad)


def test_override_on_the_command_line_changes_the_printed_commands_and_bad_ones_exit_1(tmp_path):
    config = _write(tmp_path)
    out = _dry(config, tmp_path / "r", "sampling.max_new_tokens=7", "--launcher", "local").stdout
    assert "--max-new-tokens 7" in stage_lines(out, "sample")[0]
    proc = _dry(config, tmp_path / "r", "sampling.max_new_token=7", check=False)
    assert proc.returncode == 1 and "unknown key 'sampling.max_new_token'" in proc.stderr, proc.stderr


# --- the evaluation protocol on every line ------------------------------------------------------------
def test_paper_configs_ask_for_the_papers_n_per_benchmark():
    for path in sorted((recipes_dir() / "pipeline").glob("*.yaml")):
        assert load_config(path).eval.tasks == PAPER.tasks, path.name


def test_every_evaluation_line_has_stop_reasoning_prompt_n_tp_and_dtype(tmp_path):
    run_dir = tmp_path / "r"
    out = _dry(PAPER_CONFIG, run_dir, "eval.tensor_parallel_size=2", "eval.dtype=bfloat16").stdout
    lines = stage_lines(out, "evaluate")
    evals = [shlex.split(line) for line in lines if "skythought evaluate" in line]
    assert len(evals) == 3 * len(PAPER.tasks)  # initial, final-gml, final-acc
    for words in evals:
        model = words[words.index("--model") + 1]
        assert words[0] == f"{REASONING_MODELS_ENV}={model}" and model.startswith(str(run_dir)), words
        params = eval(words[words.index("--sampling-params") + 1])  # noqa: S307 (a dict literal)
        assert params == {"temperature": 0.7, "top_p": 1.0, "max_tokens": 38912, "stop": [formats.STOP_STRING]}
        assert eval(words[words.index("--backend-args") + 1]) == {"tensor_parallel_size": 2, "dtype": "bfloat16"}  # noqa: S307
        assert int(words[words.index("--n") + 1]) == PAPER.tasks[words[words.index("--task") + 1]]


def test_paper_protocol_dry_run_prints_the_pipelines_line(tmp_path):
    run_dir = tmp_path / "r"
    lines = stage_lines(_dry(PAPER_CONFIG, run_dir).stdout, "evaluate")
    line = next(x for x in lines if "--task vr_aime24 " in x and "/models/initial " in x)
    model, out = str(run_dir / "models" / "initial"), str(run_dir / "eval" / "initial" / "vr_aime24")
    proc = run(["python", str(recipes_dir() / "eval" / "paper_protocol.py"), "--model", model, "--result-dir", out,
                "--tasks", "vr_aime24", "--dry-run"])
    # the launcher's line runs skythought from the environment the pipeline assigns (envs.vllm); the rest is equal
    venv_skythought = str(BIN.parent.parent / ".venv-vllm" / "bin" / "skythought")
    assert proc.stdout.strip() == line.replace(venv_skythought, "skythought")
    # a hub id gets no variable (released ids are recognised by name); the stop string is still there
    hub = run(["python", str(recipes_dir() / "eval" / "paper_protocol.py"), "--model", "Qwen/Qwen3-4B",
               "--result-dir", out, "--tasks", "vr_aime24", "--dry-run"]).stdout
    assert hub.startswith("skythought evaluate") and formats.STOP_STRING in hub


# --- torchrun -----------------------------------------------------------------------------------------
def test_torchrun_lines_carry_rank_address_port_and_shards(tmp_path):
    out = _dry(PAPER_CONFIG, tmp_path / "r", "cluster.master_addr=10.0.0.1", "cluster.master_port=29411").stdout
    trainings = stage_lines(out, "train_initial")
    assert len(trainings) == 2
    for rank, line in enumerate(trainings):
        words = shlex.split(line)
        for word in ("FORCE_TORCHRUN=1", "NNODES=2", f"NODE_RANK={rank}", "NPROC_PER_NODE=8",
                     "MASTER_ADDR=10.0.0.1", "MASTER_PORT=29411"):
            assert word in words, (word, line)
    samples = [line for line in stage_lines(out, "sample") if "vr-tools sample" in line]
    assert sorted(shlex.split(s)[shlex.split(s).index("--shard") + 1] for s in samples) == sorted(
        f"{i}/16" for i in range(16))
    assert not (tmp_path / "r").exists()


def test_torchrun_without_master_addr_prints_a_guard_and_refuses_to_run(tmp_path):
    out = _dry(PAPER_CONFIG, tmp_path / "r").stdout
    assert "${MASTER_ADDR:?" in stage_lines(out, "train_initial")[0]
    proc = run(["vr-tools", "pipeline", "--config", str(PAPER_CONFIG), "--run-dir", str(tmp_path / "r")], check=False)
    assert proc.returncode == 1 and "cluster.master_addr" in proc.stderr
    assert not (tmp_path / "r").exists()


# --- slurm --------------------------------------------------------------------------------------------
def test_slurm_dry_run_writes_chained_scripts_and_submits_nothing(tmp_path):
    run_dir = tmp_path / "r"
    out = _dry(PAPER_CONFIG, run_dir, "launcher=slurm", "cluster.sbatch=[--partition=gpu]").stdout
    scripts = sorted((run_dir / "launch").glob("*.sbatch"))
    assert [p.name.split("-", 1)[1] for p in scripts][:3] == ["prepare.sbatch", "train_initial.sbatch",
                                                              "train_posterior.sbatch"]
    train = (run_dir / "launch" / "01-train_initial.sbatch").read_text()
    assert "#SBATCH --nodes=2" in train and "#SBATCH --gpus-per-node=8" in train and "#SBATCH --partition=gpu" in train
    assert 'scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1' in train
    assert 'NODE_RANK="$SLURM_NODEID"' in train and 'MASTER_ADDR="$MASTER_ADDR"' in train and "MASTER_PORT=29500" in train
    sample = next(p for p in scripts if p.name.endswith("-sample.sbatch")).read_text()
    assert "#SBATCH --ntasks=16" in sample and '--shard "$SLURM_PROCID/$SLURM_NTASKS"' in sample
    assert "check-shards" in sample and "record" in sample.splitlines()[-1]
    evaluate = next(p for p in scripts if p.name.endswith("-evaluate.sbatch")).read_text()
    assert evaluate.count("srun --ntasks=1 --exact") == 3 * len(PAPER.tasks) and "eval-summary" in evaluate
    assert out.count("--dependency=afterok:") == len(scripts) - 1
    # the scripts are valid bash
    for path in scripts:
        assert run(["bash", "-n", str(path)], check=False).returncode == 0, path


def test_slurm_without_sbatch_fails_before_anything_is_written(tmp_path):
    proc = run(["vr-tools", "pipeline", "--config", str(PAPER_CONFIG), "--run-dir", str(tmp_path / "r"),
                "launcher=slurm"], check=False, PATH=f"{BIN}:/usr/bin/nonexistent")
    assert proc.returncode == 1 and "`sbatch` is not on PATH" in proc.stderr, proc.stderr
    assert not (tmp_path / "r").exists()


# --- bad layouts --------------------------------------------------------------------------------------
def test_gpu_counts_that_change_the_global_batch_are_refused_with_the_grad_accum_that_keeps_it():
    with pytest.raises(ConfigError, match=r"global batch is 128.*gradient_accumulation_steps=16 to keep it"):
        load_config(PAPER_CONFIG, ["cluster.nodes=1"])
    with pytest.raises(ConfigError, match=r"24 GPUs x 1 per device do not divide 128: no gradient_accumulation_steps"):
        load_config(PAPER_CONFIG, ["cluster.nodes=3"])
    assert load_config(PAPER_CONFIG, ["cluster.nodes=1", "train.overrides.gradient_accumulation_steps=16"])


def test_more_shards_than_questions_are_refused(tmp_path):
    config = _write(tmp_path)
    with pytest.raises(ConfigError, match=r"8 shards per data step.*dataset.limit keeps 4 questions"):
        load_config(config, ["dataset.limit=4", "cluster.data_tasks=8"])
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    pq.write_table(pa.table({C.PROMPT_IDX: [0, 1, 2]}), run_dir / C.QUESTIONS_FILE)
    proc = run(["python", "-m", "vr_plugins.pipeline.launch_slurm", "check-shards", str(run_dir), "5"], check=False)
    assert proc.returncode == 1 and "5 shards per data step but only 3 questions" in proc.stderr
    assert run(["python", "-m", "vr_plugins.pipeline.launch_slurm", "check-shards", str(run_dir), "3"]).returncode == 0


def test_launcher_variables_in_train_env_and_multi_node_local_are_refused(tmp_path):
    config = _write(tmp_path)
    with pytest.raises(ConfigError, match=r"train.env sets NNODES.*cluster.nodes"):
        load_config(config, ["train.env.NNODES=2"])
    with pytest.raises(ConfigError, match=r"launcher 'local' runs on this machine only"):
        load_config(config, ["cluster.nodes=2", "train.num_gpus=2"])
    proc = _dry(config, tmp_path / "r", "--node-rank", "1", check=False)
    assert proc.returncode == 1 and "--node-rank 1: needs launcher=torchrun" in proc.stderr


def test_local_launcher_runs_one_shard_per_gpu_group_side_by_side(tmp_path):
    out = _dry(PAPER_CONFIG, tmp_path / "r", "launcher=local", "cluster.nodes=1",
               "train.overrides.gradient_accumulation_steps=16").stdout
    sample = stage_lines(out, "sample")
    assert len(sample) == 9 and sample[-1] == "wait"
    assert [line.split()[0] for line in sample[:8]] == [f"CUDA_VISIBLE_DEVICES={i}" for i in range(8)]
    training = shlex.split(stage_lines(out, "train_initial")[0])
    assert {"FORCE_TORCHRUN=1", "NNODES=1", "NODE_RANK=0", "NPROC_PER_NODE=8"} <= set(training)
