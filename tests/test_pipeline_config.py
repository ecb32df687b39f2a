"""Pipeline config validation and the dry run: fast, no model is built or trained."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from conftest import run
from vr_plugins.demo import DEMO_CONFIG
from vr_plugins.paths import recipes_dir
from vr_plugins.pipeline.config import ConfigError, load_config
from vr_plugins.pipeline.runner import run_pipeline


def _write(tmp_path: Path, **changes) -> Path:
    """The demo's config, written to ``tmp_path``, on a from-scratch tiny model and the tiny recipes: the tests
    that use it check config handling, launchers and resumption, which need a model but not a pretrained one
    (the demo's bundled base and study recipes are tested in test_pipeline_demo.py and test_vllm_demo.py)."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["base_model"] = "tiny"
    data["train"].update(initial="tiny/initial.yaml", posterior="tiny/posterior_b.yaml", final="tiny/final.yaml")
    data["sampling"]["max_new_tokens"], data["rollout_sampling"]["max_new_tokens"] = 48, 32
    data["eval"]["max_new_tokens"] = 48
    data["dataset"]["path"] = str(DEMO_CONFIG.parent / "data" / "train.jsonl")
    data["eval"]["data_dir"] = str(DEMO_CONFIG.parent / "data" / "eval")
    data.update(changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_is_refused_with_a_suggestion(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'num_trace'.*Did you mean 'num_traces'"):
        load_config(_write(tmp_path, num_trace=4))
    with pytest.raises(ConfigError, match=r"unknown key 'train.intial'.*Did you mean 'initial'"):
        load_config(_write(tmp_path, train={"intial": "tiny/initial.yaml"}))


def test_acc_without_rollouts_is_refused_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="'acc' needs verified rollouts"):
        load_config(_write(tmp_path, estimators=["gml", "acc"], num_rollouts=0))
    assert not (tmp_path / "run").exists()


def test_unknown_estimator_lists_known_ones(tmp_path):
    with pytest.raises(KeyError, match="Known: .*gml"):
        load_config(_write(tmp_path, estimators=["gmll"]))


def test_run_dir_of_another_config_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    first = load_config(_write(tmp_path))
    run_pipeline(first, tmp_path / "config.yaml", run_dir, until="prepare", dry_run=True, echo=lambda s: None)
    # a real (non-dry) start records the config; simulate it without running any stage
    from vr_plugins.pipeline.runner import _write_state, check_run_dir

    _write_state(run_dir.resolve(), check_run_dir(first, run_dir.resolve(), tmp_path / "config.yaml"))
    other = load_config(_write(tmp_path, num_traces=3))
    with pytest.raises(ConfigError, match=r"different config \(num_traces: 2 -> 3\)"):
        run_pipeline(other, tmp_path / "config.yaml", run_dir, echo=lambda s: None)
    # the eval section may change
    changed_eval = load_config(_write(tmp_path, eval={"tasks": {"vr_math500": 2}, "backend": "local",
                                                      "data_dir": str(DEMO_CONFIG.parent / "data" / "eval")}))
    run_pipeline(changed_eval, tmp_path / "config.yaml", run_dir, dry_run=True, echo=lambda s: None)


def test_prior_sampling_is_the_rft_baseline_on_pi0_samples(tmp_path):
    """posterior_template: prior trains no posterior and samples, scores and rolls out with pi_0 itself."""
    from vr_plugins.formats import REASONING
    from vr_plugins.pipeline.stages import build_stages

    config = load_config(_write(tmp_path, posterior_template="prior", estimators=["rft"]))
    stages = {s.name: s for s in build_stages(config, tmp_path / "run")}
    assert "train_posterior" not in stages and "train_initial" in stages
    initial = str((tmp_path / "run" / "models" / "initial").resolve())
    sample = [str(a) for a in stages["sample"].steps[0].argv]
    assert sample[sample.index("--model") + 1] == initial
    assert sample[sample.index("--template") + 1] == REASONING.name
    score = [str(a) for a in stages["score"].steps[0].argv]
    assert score[score.index("--prior") + 1] == score[score.index("--posterior") + 1] == initial
    with pytest.raises(ConfigError, match="samples from pi_0"):
        load_config(_write(tmp_path, posterior_template="prior", train={"skip_posterior": str(tmp_path)}))
    with pytest.raises(ConfigError, match="'a', 'b' or 'prior'"):
        load_config(_write(tmp_path, posterior_template="c"))


def test_from_and_until_must_name_stages(tmp_path):
    config = load_config(_write(tmp_path))
    with pytest.raises(ConfigError, match="not a stage.*Stages: base_model, prepare"):
        run_pipeline(config, tmp_path / "config.yaml", tmp_path / "run", start="sampling", dry_run=True,
                     echo=lambda s: None)


def _recipe_files_in(commands: list[str]) -> list[Path]:
    found = []
    for line in commands:
        for word in shlex.split(re.sub(r'"\$\(.*?\)"', "X", line)):
            if word.endswith(".yaml") and "/recipes/" in word:
                found.append(Path(word))
    return found


PAPER_CONFIGS = sorted((recipes_dir() / "pipeline").glob("*.yaml")) if (recipes_dir() / "pipeline").is_dir() else []


def test_paper_scale_configs_exist():
    names = {p.stem for p in PAPER_CONFIGS}
    assert {"qwen3-4b-pb", "qwen3-8b-pb", "qwen2.5-7b-pa", "qwen2.5-7b-pb", "qwen2.5-32b-pa"} <= names, names


@pytest.mark.parametrize("config_path", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_dry_run_of_paper_configs_prints_commands_whose_recipes_exist(config_path, tmp_path):
    proc = run(["vr-tools", "pipeline", "--config", str(config_path), "--run-dir", str(tmp_path / "run"), "--dry-run"])
    lines = [line for line in proc.stdout.splitlines() if line and not line.startswith("#")]
    # vLLM steps and skythought run from the environment envs.vllm names (its bin/ on the printed line)
    assert any(re.search(r"(^| |/bin/)vr-tools sample ", line) and "--backend vllm" in line and "--shard " in line
               for line in lines)
    trainings = [line for line in lines if "llamafactory-cli train" in line]
    assert len(trainings) >= 3, proc.stdout
    recipes = _recipe_files_in(trainings)
    assert len(recipes) == len(trainings)
    for path in recipes:
        assert path.exists(), f"{config_path.name}: recipe {path} does not exist"
    assert any(re.search(r"( |/bin/)skythought evaluate ", line) and line.startswith("VR_EVAL_REASONING_MODELS=")
               for line in lines)
    assert not (tmp_path / "run").exists(), "a dry run must not write the run directory"
