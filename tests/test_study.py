"""The micro-scale study (docs/study.md): the task generator, and the tiny preset end to end.

The end-to-end test runs ``vr-tools study --tiny`` for real (llamafactory-cli trainings, sampling,
scoring, rollouts, verification, every estimator, local evaluation): it checks that every arm produced
a model folder and an evaluation row, that the table and plots were written, and that a re-run skips
everything. The numbers of a 1-layer model trained on 12 questions mean nothing and are not asserted.
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import run
from vr_plugins.pipeline.config import ConfigError
from vr_plugins.formats import REASONING_SYSTEM_PROMPT
from vr_plugins.registry import get_verifier_for_family
from vr_plugins.types import resolve
from vr_plugins.rundir import columns as C
from vr_plugins.study import task
from vr_plugins.study import driver
from vr_plugins.study.arms import POWERED, TINY, arm_labels_expected, curve_steps
from vr_plugins.study.driver import _check_out
from vr_plugins.study.results import curve_arm

pytestmark = pytest.mark.e2e  # the study pipeline end to end (minutes)


def _left_to_right(question: str) -> int:
    tokens = re.findall(r"\d+|[+-]", question)
    value = int(tokens[0])
    for op, operand in zip(tokens[1::2], tokens[2::2]):
        value = value + int(operand) if op == "+" else value - int(operand)
    return value


def test_generator_is_checkable_disjoint_and_level_balanced(tmp_path):
    spec = task.TaskSpec()
    paths = task.generate(tmp_path / "a", n_train=120, n_eval=30, seed=3, n_pretrain=90)
    again = task.generate(tmp_path / "b", n_train=120, n_eval=30, seed=3, n_pretrain=90)
    assert paths["train"].read_text() == again["train"].read_text()  # deterministic
    assert paths["pretrain"].read_text() == again["pretrain"].read_text()
    train = [json.loads(line) for line in paths["train"].read_text().splitlines()]
    held = [json.loads(line) for line in paths["eval"].read_text().splitlines()]
    assert len(train) == 120 and len(held) == 30
    questions = [r["conversations"][0]["value"] for r in train]
    assert len(set(questions)) == len(questions)
    assert not set(questions) & {e["problem"] for e in held}, "held-out questions leak into training"
    pretrain = [json.loads(line)["text"] for line in paths["pretrain"].read_text().splitlines()]
    pre_questions = [re.search(r"user\n(.*?)<\|im_end\|>", t).group(1) for t in pretrain]
    assert len(pretrain) == 90 and len(set(pre_questions)) == 90
    assert not set(pre_questions) & (set(questions) | {e["problem"] for e in held}), "the splits must be disjoint"
    assert all(REASONING_SYSTEM_PROMPT not in t and "<|im_start|>system" not in t for t in pretrain)
    info = json.loads((paths["pretrain"].parent / "dataset_info.json").read_text())
    assert info[task.PRETRAIN_DATASET]["file_name"] == paths["pretrain"].name
    assert sorted(e["level"] for e in held) == [1] * 10 + [2] * 10 + [3] * 10
    check = resolve(get_verifier_for_family("numina").check)
    for row in train[:40]:
        q, response = row["conversations"][0]["value"], row["conversations"][1]["value"]
        assert row["source"].startswith("numina/") and int(row["gold_answer"]) == _left_to_right(q)
        steps = re.findall(r"(\d+) ([+-]) (\d+) = (\d+)\.", response)
        assert len(steps) == q.count("+") + q.count("-")
        assert all(0 <= int(c) <= spec.max_value and 1 <= int(b) <= spec.max_operand for _, _, b, c in steps)
        solution = response.split("<|begin_of_solution|>")[1]
        ok, _ = check({C.GOLD_ANSWER: row["gold_answer"], C.REFERENCE_SOLUTION: None}, solution, {})
        bad, _ = check({C.GOLD_ANSWER: str(int(row["gold_answer"]) + 1), C.REFERENCE_SOLUTION: None}, solution, {})
        assert ok and not bad


def test_generator_refuses_impossible_sizes(tmp_path):
    with pytest.raises(ValueError, match="level-1"):
        task.generate(tmp_path, n_train=10, n_eval=1200)  # 400 level-1 questions; about 320 exist


def test_out_dir_of_other_settings_is_refused(tmp_path):
    _check_out(TINY, tmp_path)
    _check_out(TINY, tmp_path)  # same settings: fine
    from dataclasses import replace

    with pytest.raises(ConfigError, match="different study settings"):
        _check_out(replace(TINY, num_traces=3), tmp_path)


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "tiny"
    proc = run(["vr-tools", "study", "--out", str(out), "--tiny"], timeout=1800)
    return out, proc


def test_tiny_study_every_arm_has_a_model_and_an_evaluation_row(tiny_study):
    out, proc = tiny_study
    results = json.loads((out / "results.json").read_text())
    arms = {row["arm"] for row in results["rows"]}
    expected = arm_labels_expected(TINY)
    assert arms == expected, f"missing arms {expected - arms}, unexpected {arms - expected}"
    for row in results["rows"]:
        assert row["problems"] == TINY.n_eval and 0.0 <= row["accuracy"] <= 1.0
        assert set(row["by_level"]) <= {"1", "2", "3"} and row["by_level"]
        assert (out / row["results"]).exists()
        assert row["steps"] and row["steps"] > 0  # read from the arm's own trainer_state.json
    model_dirs = [p.parent for p in out.glob("seed0/**/models/*/config.json")]
    assert len(model_dirs) == len(expected)  # one trained model per arm
    table = (out / "results.md").read_text()
    for arm in expected:
        assert f"| {arm} |" in table
    assert (out / "accuracy_vs_steps.png").stat().st_size > 1000
    assert (out / "accuracy_vs_k.png").stat().st_size > 1000
    # the base model: random weights, then pretrained (stage pt) on the study's pretraining corpus
    assert json.loads((out / "base" / "trainer_state.json").read_text())["global_step"] == 2
    assert (out / "init" / "config.json").exists()
    # the learning curve: every checkpoint of every curve model was evaluated, plus the final model itself
    points = {(c["arm"], c["step"]) for c in results["curve"]}
    for model in TINY.curve_models:
        arm = curve_arm(model, TINY.templates[0])
        final_steps = next(r["steps"] for r in results["rows"] if r["arm"] == arm)
        assert {(arm, s) for s in curve_steps(TINY.curve_every, TINY.curve_points)} | {(arm, final_steps)} <= points
        assert all(s <= final_steps for a, s in points if a == arm)


def test_tiny_study_rerun_skips_every_stage(tiny_study):
    out, _ = tiny_study
    proc = run(["vr-tools", "study", "--out", str(out), "--tiny"], timeout=600)
    assert "running" not in proc.stdout, proc.stdout
    assert proc.stdout.count("done already, skipped") >= 20
    assert "| gml (q_b, K=all) |" in proc.stdout  # the table is printed again from the finished runs


def test_dry_run_prints_every_command_and_writes_nothing(tmp_path):
    out = tmp_path / "study"
    proc = run(["vr-tools", "study", "--out", str(out), "--tiny", "--dry-run"])
    assert not out.exists(), "a dry run must not write into --out"
    assert "llamafactory-cli train" in proc.stdout and "vr-tools evaluate" in proc.stdout
    assert proc.stdout.count("# stage k1_train") == 1
    assert proc.stdout.count("# stage pretrain") == 1 and "study/pretrain.yaml" in proc.stdout
    _check_out(TINY, out)  # a study made with the tiny settings ...
    proc = run(["vr-tools", "study", "--out", str(out), "--dry-run"], check=False)  # ... refuses the full ones
    assert proc.returncode != 0 and "different study settings" in proc.stderr
    assert "n_eval: 6 there, 150 now" in proc.stderr, "the refusal must name the settings that differ"
    assert sorted(p.name for p in out.iterdir()) == ["study.json"]


def test_jobs_run_seeds_at_the_same_time_and_a_failure_is_raised(tmp_path, monkeypatch):
    import threading
    import time
    from dataclasses import replace

    running, peak, lock = set(), [0], threading.Lock()

    def fake_seed(config, out, seed, config_root, dry_run, echo):
        with lock:
            running.add(seed)
            peak[0] = max(peak[0], len(running))
        time.sleep(0.3)
        with lock:
            running.discard(seed)
        if seed == 2:
            raise RuntimeError("seed 2 failed")

    monkeypatch.setattr(driver, "_run_seed", fake_seed)
    monkeypatch.setattr(driver, "generate", lambda *a, **k: None)
    monkeypatch.setattr(driver, "run_extra", lambda *a, **k: None)  # the shared base model
    config = replace(TINY, seeds=(0, 1))
    driver.run_study(config, tmp_path / "s", jobs=2)
    assert peak[0] == 2, "--jobs 2 must run two seeds at once"
    peak[0] = 0
    driver.run_study(config, tmp_path / "t", jobs=1)
    assert peak[0] == 1
    with pytest.raises(RuntimeError, match="seed 2 failed"):
        driver.run_study(replace(TINY, seeds=(1, 2)), tmp_path / "u", jobs=2)


def test_hardest_third_comparison_is_paired_per_seed():
    from vr_plugins.study.results import hardest_third_comparison

    def row(seed, arm, level3):
        return {"seed": seed, "arm": arm, "by_level": {1: 0.5, 3: level3}}

    rows = [row(0, "rft", 0.10), row(0, "gml", 0.30), row(1, "rft", 0.50), row(1, "gml", 0.40),
            row(2, "gml", 0.90)]  # seed 2 has no rft row: not paired, left out
    [h] = hardest_third_comparison(rows, ("rft",), ("gml",))
    assert h["seeds"] == 2 and h["wins"] == 1 and h["losses"] == 1
    assert h["mean"] == pytest.approx((0.20 - 0.10) / 2)
    assert h["sd"] == pytest.approx(0.2121320, abs=1e-6)  # sd of (+0.20, -0.10)
    assert hardest_third_comparison(rows, ("absent",), ("gml",)) == []


def test_powered_preset_runs_only_the_arms_of_its_comparisons(tmp_path):
    """make study's design: one template, no K sweep, no learning curve, the posterior not evaluated; one
    evaluation process per seed with pi_0, the three finals and the RFT baseline, 4 samples each."""
    proc = run(["vr-tools", "study", "--out", str(tmp_path / "p"), "--seeds", "0", "--dry-run"])
    assert "q_b.yaml" in proc.stdout and "q_prior.yaml" in proc.stdout and "q_a.yaml" not in proc.stdout
    assert "# stage k" not in proc.stdout and "checkpoint-" not in proc.stdout
    [evaluate] = [line for line in proc.stdout.splitlines() if " vr-tools evaluate " in f" {line}"]
    models = re.findall(r"--model (\S+)", evaluate)
    assert [m.split("/seed0/")[1] for m in models] == [
        "q_b/models/initial", "q_b/models/final-gml", "q_b/models/final-acc", "q_b/models/final-snis",
        "q_prior/models/final-rft"]
    assert "--n 4 " in evaluate
    assert arm_labels_expected(POWERED) == {
        "initial pi_0 (SFT on reference)", "gml (q_b, K=all)", "acc (q_b, K=all)", "snis (q_b, K=all)",
        "rft (pi_0 samples, K=all)"}
