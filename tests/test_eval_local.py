"""The CPU runner (evaluate_local), the result summary (vr-tools eval-summary) and the paper protocol."""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path

import pytest

from conftest import REPO, run
from vr_plugins import formats

DATA = Path(__file__).parent / "data" / "eval"


def test_evaluate_local_writes_a_skythought_shaped_result_folder(tiny_model_dir, tmp_path):
    from vr_plugins.eval.local import evaluate_local
    from vr_plugins.eval.summary import read_result

    folder = evaluate_local("vr_math500", tiny_model_dir, n=2, max_new_tokens=6, temperature=0.7,
                            out_dir=tmp_path, data_dir=DATA, end=2)
    assert folder.parent == tmp_path and folder.name.startswith(f"{str(tiny_model_dir).replace('/', '_')}_vr_math500_")
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no staging folder left behind
    results = json.loads((folder / "results.json").read_text())
    summary = json.loads((folder / "summary.json").read_text())
    assert len(results) == 2
    scores = []
    for record in results.values():
        assert record["input_conversation"][0]["content"] == formats.REASONING_SYSTEM_PROMPT
        assert record["input_conversation"][-1] == {"role": "assistant", "content": formats.ASSISTANT_PREFILL}
        assert len(record["responses"]) == 2
        for response, usage in zip(record["responses"], record["token_usages"]):
            assert isinstance(response["correctness"], bool) and response["reason"] is not None
            assert formats.STOP_STRING not in response["content"]
            assert 1 <= usage["completion_tokens"] <= 6 and usage["prompt_tokens"] > 100
            scores.append(response["correctness"])
    config = summary["configuration"]
    assert config["task"]["name"] == "vr_math500" and config["backend"]["name"] == "transformers-cpu"
    assert config["sampling_params"] == {"n": 2, "temperature": 0.7, "top_p": 1.0, "max_tokens": 6,
                                         "stop": [formats.STOP_STRING]}
    assert summary["accuracy"] == pytest.approx(sum(scores) / len(scores), abs=1e-4)
    assert set(summary["pass_at_k"]) == {"k=2", "k=1"}
    parsed = read_result(folder)
    assert (parsed.task, parsed.n, parsed.problems, parsed.responses) == ("vr_math500", 2, 2, 4)

    with pytest.raises(FileExistsError, match="overwrite"):
        evaluate_local("vr_math500", tiny_model_dir, n=2, max_new_tokens=6, temperature=0.7, out_dir=tmp_path,
                       data_dir=DATA, end=2)


def test_many_models_in_one_process_write_what_one_model_runs_write(tiny_model_dir, tmp_path, monkeypatch):
    """evaluate_local_many: the same folders, byte for byte, as one evaluate_local per model; the tokenizer
    is loaded once per distinct tokenizer; existing folders are refused before any work, or skipped."""
    import transformers

    from vr_plugins.eval.local import ResultExistsError, evaluate_local, evaluate_local_many

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)  # same tokenizer files, another model path
    demo_base = REPO / "vr_plugins" / "demo" / "base"  # another tokenizer
    models = [tiny_model_dir, copy, demo_base]
    kw = dict(n=2, max_new_tokens=6, temperature=0.7, data_dir=DATA, end=2)
    single = [evaluate_local("vr_math500", m, out_dir=tmp_path / "single" / str(i), **kw) for i, m in enumerate(models)]

    loads = []
    original = transformers.AutoTokenizer.from_pretrained
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        lambda path, *a, **k: loads.append(str(path)) or original(path, *a, **k))
    done = []
    jobs = [(m, tmp_path / "many" / str(i)) for i, m in enumerate(models)]
    many = evaluate_local_many("vr_math500", jobs, on_done=lambda m, f, s: done.append(m), **kw)
    assert [f.name for f in many] == [f.name for f in single]
    for a, b in zip(single, many):
        for name in ("results.json", "summary.json"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), (b, name)
    assert loads == [str(tiny_model_dir), str(demo_base)]  # the copy reused the first tokenizer
    assert done == [str(m) for m in models]

    # an existing folder: refused before anything is generated (the new job's folder is never written)
    fresh = tmp_path / "fresh"
    with pytest.raises(ResultExistsError, match="overwrite"):
        evaluate_local_many("vr_math500", [(tiny_model_dir, fresh), (copy, tmp_path / "many" / "1")], **kw)
    assert not fresh.exists()
    # skip_existing: finished folders are kept untouched, the missing one is evaluated
    stamp = (many[1] / "results.json").stat().st_mtime_ns
    done.clear()
    again = evaluate_local_many("vr_math500", [(tiny_model_dir, fresh), (copy, tmp_path / "many" / "1")],
                                skip_existing=True, on_done=lambda m, f, s: done.append(m), **kw)
    assert done == [str(tiny_model_dir)] and (again[1] / "results.json").stat().st_mtime_ns == stamp
    assert (again[0] / "results.json").read_bytes() == (single[0] / "results.json").read_bytes()


@pytest.mark.e2e  # vr-tools evaluate processes on three real models
def test_vr_tools_evaluate_several_models_one_process(tiny_model_dir, tmp_path):
    """--model repeated: one process, one result folder per model (a shared --out or one per model), an
    accuracy line each; --skip-existing keeps finished folders; a wrong --out count is a clear error, exit 1."""
    demo_base = REPO / "vr_plugins" / "demo" / "base"
    common = ["vr-tools", "evaluate", "--task", "vr_math500", "--data-dir", str(DATA), "--end", "2",
              "--max-new-tokens", "4", "--temperature", "0"]
    proc = run([*common, "--model", str(tiny_model_dir), "--model", str(demo_base), "--out", str(tmp_path / "shared")])
    assert proc.stdout.count("accuracy") == 2
    assert len([p for p in (tmp_path / "shared").iterdir() if (p / "summary.json").is_file()]) == 2
    again = run([*common, "--model", str(tiny_model_dir), "--out", str(tmp_path / "a"),
                 "--model", str(demo_base), "--out", str(tmp_path / "shared"), "--skip-existing"])
    assert again.stdout.count("accuracy") == 1 and again.stdout.count("kept (--skip-existing)") == 1
    assert len(list((tmp_path / "a").iterdir())) == 1
    bad = run([*common, "--model", str(tiny_model_dir), "--model", str(demo_base), "--model", str(demo_base),
               "--out", str(tmp_path / "x"), "--out", str(tmp_path / "y")], check=False)
    assert bad.returncode == 1 and "--out was given 2 times for 3 --model" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "x").exists()


def test_prompt_is_the_training_format_byte_for_byte(tiny_model_dir):
    from transformers import AutoTokenizer

    from vr_plugins.eval.local import render_conversation
    from vr_plugins.hosts.skythought.tasks import load_handler

    handler = load_handler("vr_aime24")
    handler.data_dir = str(DATA)
    record = handler.load_and_filter_dataset(0, 1).iloc[0].to_dict()
    (conversation,) = handler.make_conversations([record], formats.REASONING.system, None, formats.ASSISTANT_PREFILL)
    text = render_conversation(AutoTokenizer.from_pretrained(tiny_model_dir), conversation, formats.ASSISTANT_PREFILL)
    assert text == formats.REASONING.render_prompt(conversation[1]["content"])


def test_evaluate_local_bad_inputs(tiny_model_dir, tmp_path):
    from vr_plugins.eval.local import evaluate_local
    from vr_plugins.eval.models import ModelPathError
    from vr_plugins.registry import UnknownNameError

    no_tokenizer = tmp_path / "weights-only"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(Path(tiny_model_dir) / name, no_tokenizer / name)
    with pytest.raises(ModelPathError, match=r"weights-only has no tokenizer"):
        evaluate_local("vr_math500", no_tokenizer, out_dir=tmp_path / "out", data_dir=DATA)
    with pytest.raises(UnknownNameError, match="Known vr_ tasks: vr_aime24, vr_aime25"):
        evaluate_local("math500", tiny_model_dir, out_dir=tmp_path / "out", data_dir=DATA)
    assert not (tmp_path / "out").exists()


def _result(root: Path, model: str, task: str, grid: list[list[bool | None]]) -> Path:
    folder = root / f"{model.replace('/', '_')}_{task}_abc123"
    folder.mkdir(parents=True)
    summary = {"configuration": {"task": {"name": task}, "model": {"name": model}}, "accuracy": 0.0}
    results = {str(i): {"responses": [{"content": "", "correctness": c, "reason": ""} for c in row]}
               for i, row in enumerate(grid)}
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_eval_summary_table_avg_at_n_and_mean(tmp_path):
    _result(tmp_path / "a", "org/A", "vr_aime24", [[True, False, False, False], [True, True, False, False]])
    _result(tmp_path / "a", "org/A", "vr_math500", [[True, True], [False, True]])
    _result(tmp_path / "b", "org/B", "vr_math500", [[False, False], [False, True]])
    out = run(["vr-tools", "eval-summary", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "t.md")])
    lines = (tmp_path / "t.md").read_text().splitlines()
    assert out.stdout.splitlines() == lines
    assert lines[0] == "| model | vr_math500 (avg@2) | vr_aime24 (avg@4) | mean |"  # registry order
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    assert rows["org/A"] == ["75.00", "37.50", "56.25"]  # mean over the model's tasks
    assert rows["org/B"] == ["25.00", "-", "25.00 (1/2 tasks)"]

    run(["vr-tools", "eval-summary", str(tmp_path), "--out", str(tmp_path / "t.json")])
    payload = json.loads((tmp_path / "t.json").read_text())
    assert payload["mean"]["org/A"] == {"mean": pytest.approx(0.5625), "tasks": 2}


def test_eval_summary_refuses_unscored_duplicate_and_empty(tmp_path):
    _result(tmp_path / "x", "m", "vr_math500", [[True, None]])
    proc = run(["vr-tools", "eval-summary", str(tmp_path / "x")], check=False)
    assert proc.returncode != 0 and "response 1 was never scored" in proc.stderr and "skythought score" in proc.stderr
    _result(tmp_path / "y1", "m", "vr_aime24", [[True]])
    _result(tmp_path / "y2", "m", "vr_aime24", [[False]])
    proc = run(["vr-tools", "eval-summary", str(tmp_path / "y1"), str(tmp_path / "y2"), "--out", str(tmp_path / "o.md")],
               check=False)
    assert proc.returncode != 0 and "two result folders for model 'm' task 'vr_aime24'" in proc.stderr
    assert not (tmp_path / "o.md").exists()
    (tmp_path / "empty").mkdir()
    proc = run(["vr-tools", "eval-summary", str(tmp_path / "empty")], check=False)
    assert proc.returncode != 0 and "no SkyThought result folder" in proc.stderr


def test_paper_protocol_passes_every_sampling_parameter(tmp_path):
    from skythought.evals.util.cli_util import parse_multi_args

    from vr_plugins.eval.protocol import build_commands, child_env
    from vr_plugins.eval.tasks import task_names

    paper = runpy.run_path(str(REPO / "recipes" / "eval" / "paper_protocol.py"))["PAPER"]
    assert paper.tasks == {"vr_aime24": 32, "vr_aime25": 32, "vr_amc23": 32, "vr_math500": 2,
                           "vr_olympiadbench_math_en": 2, "vr_livecodebench_easy": 8, "vr_livecodebench_medium": 8,
                           "vr_livecodebench_hard": 8, "vr_gpqa_diamond": 8, "vr_mmlu_pro": 1}
    assert set(paper.tasks) == {t for t in task_names() if t.startswith("vr_")}
    for model, tp in (("zhouxiangxin/Variational-Reasoning-32B-Acc", 4), ("zhouxiangxin/Initial-Reasoning-8B", 1)):
        commands = build_commands(paper, model, "out")
        assert [c[3] for c in commands] == list(paper.tasks)
        for argv in commands:
            opts = dict(zip(argv[2::2], argv[3::2]))
            assert opts["--backend"] == "vllm" and opts["--n"] == str(paper.tasks[opts["--task"]])
            assert parse_multi_args(opts["--sampling-params"]) == {
                "temperature": 0.7, "top_p": 1.0, "max_tokens": 38912, "stop": [formats.STOP_STRING]}
            assert parse_multi_args(opts["--backend-args"]) == {"tensor_parallel_size": tp, "dtype": "float32"}
    with pytest.raises(ValueError, match="not in the protocol"):
        build_commands(paper, "m", "out", tasks=["vr_math5000"])
    env = child_env(str(tmp_path), base={})
    assert env["VR_EVAL_REASONING_MODELS"] == str(tmp_path.resolve())
    proc = run(["python", str(REPO / "recipes" / "eval" / "paper_protocol.py"), "--model", "m", "--result-dir", "r",
                "--tasks", "vr_aime25", "--dry-run"])
    assert proc.stdout.startswith("skythought evaluate --task vr_aime25 --model m --backend vllm")
