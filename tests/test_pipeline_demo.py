"""The embedded default end to end: `vr-tools demo` (real trainings, sampling, scoring, verification,
builds and evaluation on CPU), its resumption after SIGKILL, and the plugin guide's example package.

The demo runs once per module (a few minutes on 2 cores); the other tests reuse its run directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import BIN, run, subprocess_env
from vr_plugins.demo import BASE_FILES, DEMO_BASE, DEMO_CONFIG, DEMO_DATA
from vr_plugins.eval.summary import collect
from vr_plugins.rundir import columns as C
from vr_plugins.study.task import constant_answer_floor


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    proc = run(["vr-tools", "demo", "--run-dir", str(run_dir)], timeout=1800)
    return run_dir, proc.stdout


@pytest.mark.e2e  # a whole pipeline or a real training: make test runs it, make test-fast leaves it out
def test_demo_produces_datasets_models_and_an_evaluation_table(demo_run):
    run_dir, stdout = demo_run
    questions = pq.read_table(run_dir / C.QUESTIONS_FILE).to_pylist()
    n = len(questions)
    assert {C.source_family(q[C.SOURCE]) for q in questions} == {"numina", "ruc", "apps"}
    for estimator in ("gml", "acc"):
        table = pq.read_table(run_dir / C.DATASETS_DIR / f"{estimator}-mix.parquet").to_pylist()
        assert len(table) == 2 * n
        assert [r[C.SOURCE] for r in table[:n]] == [-2] * n  # the originals first
        assert [r[C.PROMPT_IDX] for r in table[n:]] == sorted(q[C.PROMPT_IDX] for q in questions)
        assert all(r[C.ESTIMATOR] == estimator and r[C.RESPONSE] for r in table)
        assert (run_dir / "models" / f"final-{estimator}" / "config.json").exists()
    info = json.loads((run_dir / C.DATASETS_DIR / C.DATASET_INFO_FILE).read_text())
    assert {"gml-mix", "acc-mix", "vr_reference", "vr_posterior_train"} <= set(info)
    # every verifier path ran: math families and sandboxed code tests
    verified = pq.read_table(run_dir / C.VERIFIED_DIR / C.seed_file_name(0)).to_pylist()
    by_idx = {q[C.PROMPT_IDX]: C.source_family(q[C.SOURCE]) for q in questions}
    assert {by_idx[v[C.PROMPT_IDX]] for v in verified} == {"numina", "ruc", "apps"}
    assert all(v[C.REASON] for v in verified if not v[C.CORRECT])
    # the evaluation table: one row per evaluated model, parsed from the result folders
    results = collect([run_dir / "eval"])
    assert sorted(Path(r.model).name for r in results) == ["final-acc", "final-gml", "initial"]
    assert all(r.task == "vr_math500" and r.problems == 60 and r.responses == 60 for r in results)
    summary = (run_dir / "eval" / "summary.md").read_text()
    assert "vr_math500" in summary and summary.count("\n|") >= 4
    assert "Artefacts:" in stdout and str(run_dir / C.QUESTIONS_FILE) in stdout
    # the numbers mean something: the bundled pretrained base learns the task well above the constant answer
    floor = constant_answer_floor(DEMO_DATA / "train.jsonl", DEMO_DATA / "eval" / "vr_math500.jsonl")
    by_model = {Path(r.model).name: r.avg_at_n for r in results}
    assert by_model["initial"] > floor["accuracy"] + 0.1, (by_model, floor)
    assert max(by_model["final-gml"], by_model["final-acc"]) > floor["accuracy"] + 0.1, (by_model, floor)
    assert "60 held-out questions" in stdout and "Constant-answer floor: 3.3 %" in stdout and "docs/study.md" in stdout


def test_bundled_base_matches_its_recorded_checksums():
    """base/SHA256SUMS is what `scripts/make_demo_base.py` wrote; a changed file must come with new sums."""
    import hashlib

    lines = (DEMO_BASE / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split()[1] for line in lines) == sorted(BASE_FILES)
    for line in lines:
        digest, name = line.split()
        assert hashlib.sha256((DEMO_BASE / name).read_bytes()).hexdigest() == digest, name
    assert sum((DEMO_BASE / name).stat().st_size for name in BASE_FILES) < 1_000_000


@pytest.mark.e2e  # a whole pipeline or a real training: make test runs it, make test-fast leaves it out
def test_rerun_skips_every_completed_stage(demo_run):
    run_dir, _ = demo_run
    before = (run_dir / "pipeline.json").read_text()
    proc = run(["vr-tools", "demo", "--run-dir", str(run_dir)], timeout=300)
    assert "running" not in proc.stdout
    assert proc.stdout.count("done already, skipped") >= 10
    assert (run_dir / "pipeline.json").read_text() == before


@pytest.mark.e2e
@pytest.mark.multiprocess  # the demo pipeline killed with SIGKILL, then resumed
def test_sigkill_in_the_middle_of_a_stage_then_resume_equals_an_uninterrupted_run(demo_run, tmp_path):
    reference, _ = demo_run
    run_dir = tmp_path / "run"
    # the finished run's questions and trained models, so that only the data steps run again (trainings
    # take minutes; their resumption is the same runner loop): --from sample starts after them
    shutil.copytree(reference, run_dir, ignore=lambda d, names: [n for n in names if Path(d) == reference and n not in
                                                                 (C.QUESTIONS_FILE, C.DATASETS_DIR, "models")])
    for final in run_dir.glob("models/final-*"):
        shutil.rmtree(final)
    argv = [str(BIN / "vr-tools"), "pipeline", "--config", str(DEMO_CONFIG), "--run-dir", str(run_dir),
            "--from", "sample", "--until", "score"]
    proc = subprocess.Popen(argv, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    parts = run_dir / C.POSTERIOR_DIR
    deadline = time.time() + 900
    try:
        while time.time() < deadline and proc.poll() is None:
            if any(parts.glob(".parts-*/part-*.parquet")):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the pipeline ended before the sample stage wrote a part"
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and the `vr-tools sample` it started
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (parts / C.seed_file_name(1)).exists(), "killed too late: the stage had finished"
    out = run(argv, timeout=900).stdout
    assert "[sample] running" in out and "train_initial" not in out
    for sub in (C.POSTERIOR_DIR, C.SCORES_DIR):
        for k in range(2):
            got = pq.read_table(run_dir / sub / C.seed_file_name(k)).to_pylist()
            want = pq.read_table(reference / sub / C.seed_file_name(k)).to_pylist()
            assert len(got) == len(want)
            for g, w in zip(got, want):
                for key, value in w.items():
                    if isinstance(value, float):
                        assert g[key] == pytest.approx(value, abs=1e-6), (sub, k, key)
                    else:
                        assert g[key] == value, (sub, k, key)
    assert not list(run_dir.rglob(".tmp-*")) and not list(parts.glob(".parts-*"))


@pytest.mark.e2e  # a whole pipeline or a real training: make test runs it, make test-fast leaves it out
def test_example_plugin_estimator_verifier_and_task_are_usable(demo_run, tmp_path):
    """docs/plugins.md's worked example, installed like any plugin (entry point), used by the real CLI."""
    run_dir, _ = demo_run
    out = tmp_path / "tempered.parquet"
    run(["vr-tools", "build", "--run-dir", str(run_dir), "--estimator", "tempered_snis", "--option", "beta=0.5",
         "--no-mix", "--out", str(out)])
    rows = pq.read_table(out).to_pylist()
    sums: dict[int, float] = {}
    for r in rows:
        sums[r[C.PROMPT_IDX]] = sums.get(r[C.PROMPT_IDX], 0.0) + r[C.WEIGHT]
    assert rows and all(r[C.ESTIMATOR] == "tempered_snis" for r in rows)
    assert all(abs(s - 1.0) < 1e-9 for s in sums.values())
    assert any(r[C.SOURCE] >= 0 for r in rows)

    from vr_plugins.registry import get_verifier_for_family

    verifier = get_verifier_for_family("exact")
    assert verifier.name == "exact_string"

    data = tmp_path / "data"
    data.mkdir()
    (data / "example_arith.jsonl").write_text(
        json.dumps({"problem": "Compute (2 + 3) * 4.", "answer": "20"}) + "\n"
    )
    proc = run(["vr-tools", "evaluate", "--task", "example_arith", "--model", str(run_dir / "models" / "initial"),
                "--data-dir", str(data), "--max-new-tokens", "8", "--out", str(tmp_path / "eval")])
    assert "example_arith" in proc.stdout and "accuracy" in proc.stdout
