"""The pipeline config's vllm: and envs: blocks (vr_plugins/pipeline/engines.py) on the printed commands."""

from __future__ import annotations

import ast
import json
import shlex
import sys
from pathlib import Path

import pytest

from conftest import REPO
from vr_plugins.pipeline.config import ConfigError, load_config
from vr_plugins.pipeline.stages import build_stages


def _config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"dataset: {{path: {REPO / 'tests/data/data_bespoke.jsonl'}}}\nbackend: vllm\n"
                    f"eval: {{backend: skythought}}\n{extra}")
    return path


def test_vllm_block_reaches_data_steps_and_evaluate_lines_and_envs_pick_the_binary(tmp_path):
    cfg = load_config(_config(tmp_path, "vllm: {enforce_eager: true, max_model_len: 2048, gpu_memory_utilization: 0.8}\n"
                                        "envs: {vllm: venv-v}\n"))
    stages = {s.name: s for s in build_stages(cfg, tmp_path / "run")}
    venv = str((tmp_path / "venv-v").resolve())
    (tmp_path / "venv-v" / "bin").mkdir(parents=True)
    for name in ("vr-tools", "skythought"):  # an environment folder with the two commands in it
        (tmp_path / "venv-v" / "bin" / name).write_text("")
    for name in ("sample", "score", "rollout"):
        if name not in stages:
            continue
        (step,) = stages[name].steps
        words = shlex.split(step.shell())
        args = json.loads(words[words.index("--engine-args") + 1])
        frac = 0.4 if name == "score" else 0.8  # score's two engines share the fraction
        assert args == {"enforce_eager": True, "max_model_len": 2048, "gpu_memory_utilization": frac}
        assert words[0] == "vr-tools" and step.resolved()[0] == f"{venv}/bin/vr-tools" and venv in stages[name].description
    evals = [s for s in stages["evaluate"].steps if str(s.argv[0]) == "skythought"]
    assert evals
    for step in evals:
        words = shlex.split(step.shell())
        backend_args = ast.literal_eval(words[words.index("--backend-args") + 1])  # how SkyThought parses it
        assert backend_args["enforce_eager"] is True and backend_args["max_model_len"] == 2048
        assert step.resolved()[0] == f"{venv}/bin/skythought"
    train = next(s for s in stages["train_initial"].steps)
    assert train.resolved()[0] == f"{sys.prefix}/bin/llamafactory-cli"


def test_default_envs_are_the_running_one_and_venv_vllm_beside_it(tmp_path):
    cfg = load_config(_config(tmp_path, ""))
    stages = {s.name: s for s in build_stages(cfg, tmp_path / "run")}
    (step,) = stages["sample"].steps
    expected = Path(sys.prefix).parent / ".venv-vllm" / "bin" / "vr-tools"
    if expected.exists():
        assert step.resolved()[0] == str(expected)
    assert step.venv == str(expected.parent.parent)
    assert "--engine-args" not in step.shell()


def test_vllm_block_contradicting_tensor_parallel_size_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="tensor_parallel_size"):
        load_config(_config(tmp_path, "tensor_parallel_size: 2\nvllm: {tensor_parallel_size: 4}\n"))


def test_missing_environment_names_it_and_the_setup_command(tmp_path):
    cfg = load_config(_config(tmp_path, "envs: {vllm: no-such-venv}\n"))
    (step,) = {s.name: s for s in build_stages(cfg, tmp_path / "run")}["sample"].steps
    with pytest.raises(ConfigError, match="no-such-venv.*make setup-vllm"):
        step.resolved()
