"""Eval task handlers on the small local files of tests/data/eval: data, prompts, grading, registration.

Every family is graded both ways (a correct and an incorrect response), on the same handler classes that
SkyThought's CLI instantiates (resolved through the registry and the task YAMLs).
"""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from pathlib import Path

import pytest

from vr_plugins import formats

DATA = Path(__file__).parent / "data" / "eval"
ALL_TASKS = [
    "vr_math500", "vr_aime24", "vr_aime25", "vr_amc23", "vr_olympiadbench_math_en", "vr_gpqa_diamond",
    "vr_mmlu_pro", "vr_livecodebench_easy", "vr_livecodebench_medium", "vr_livecodebench_hard",
]


@pytest.fixture(autouse=True)
def _local_data(monkeypatch):
    monkeypatch.setenv("VR_EVAL_DATA_DIR", str(DATA))


def rows(task: str):
    from vr_plugins.hosts.skythought.tasks import load_handler

    handler = load_handler(task)
    frame = handler.load_and_filter_dataset(0, -1)
    records = [row.to_dict() for _, row in frame.iterrows()]
    conversations = handler.make_conversations(records, formats.REASONING_SYSTEM_PROMPT, None, formats.ASSISTANT_PREFILL)
    return handler, records, conversations


def graded(handler, record, response):
    entry = handler.update_results(record, response)
    from vr_plugins.hosts.skythought.handlers import VRMathTaskHandler

    math = {"grader"} if isinstance(handler, VRMathTaskHandler) else set()  # which math grader scored it
    assert set(entry) == {"content", "correctness", "reason"} | math and entry["content"] == response
    return entry["correctness"], entry["reason"]


def test_every_task_is_registered_and_loads_its_local_file():
    from vr_plugins.eval.tasks import task_names

    # the built-in vr_ tasks; installed plugins (the plugin guide's example) may add more
    assert [t for t in task_names() if t.startswith("vr_")] == sorted(ALL_TASKS)
    sizes = {}
    for task in ALL_TASKS:
        handler, records, conversations = rows(task)
        sizes[task] = len(records)
        for conversation in conversations:  # system prompt, task prompt, prefill as a final assistant turn
            assert [m["role"] for m in conversation] == ["system", "user", "assistant"]
            assert conversation[0]["content"] == formats.REASONING_SYSTEM_PROMPT
            assert conversation[2]["content"] == formats.ASSISTANT_PREFILL
    # year filters (aime24: url~2024, amc23: url~2023) and the difficulty filter dropped one row each
    assert sizes == {"vr_math500": 3, "vr_aime24": 2, "vr_aime25": 2, "vr_amc23": 2, "vr_olympiadbench_math_en": 2,
                     "vr_gpqa_diamond": 2, "vr_mmlu_pro": 2, "vr_livecodebench_easy": 2,
                     "vr_livecodebench_medium": 1, "vr_livecodebench_hard": 1}


def test_vr_aime25_loads_the_dataset_the_paper_used():
    handler, records, conversations = rows("vr_aime25")
    config = handler.task_config
    assert (config.dataset_path, config.dataset_split, config.question_key, config.answer_key) == (
        "zhouxiangxin/AIME2025", "train", "question", "answer")
    assert conversations[1][1]["content"].startswith("What is $3^4$?") and "\\boxed{}" in conversations[1][1]["content"]
    assert graded(handler, records[1], "So $3^4 = \\boxed{81}$.")[0] is True
    assert graded(handler, records[1], "So $3^4 = \\boxed{12}$.")[0] is False


@pytest.mark.parametrize("task,index,right,wrong", [
    ("vr_math500", 0, "Adding gives \\boxed{\\dfrac{3}{4}}.", "Adding gives \\boxed{\\frac{2}{6}}."),
    ("vr_math500", 1, "The product is \\boxed{42}", "The product is 42, no wait, \\boxed{48}"),
    ("vr_aime24", 0, "The remainder is \\boxed{24}.", "The remainder is \\boxed{124}."),
    ("vr_amc23", 0, "Total: \\boxed{10}", "Total: \\boxed{11}"),
    ("vr_amc23", 1, "Half is \\boxed{\\frac{27}{2}}", "Half is \\boxed{13}"),
    ("vr_olympiadbench_math_en", 0, "There are \\boxed{4} pairs.", "There are \\boxed{5} pairs."),
])
def test_math_family_grades_correct_and_incorrect(task, index, right, wrong):
    handler, records, _ = rows(task)
    assert graded(handler, records[index], right) == (True, "")
    correct, reason = graded(handler, records[index], wrong)
    assert correct is False and reason
    correct, reason = graded(handler, records[index], "I have no idea.")
    assert correct is False and reason


def test_math_tasks_use_the_vr_grader_by_default_and_skythought_on_request(monkeypatch, tmp_path):
    """vr by default (an interval with the wrong end is wrong); VR_EVAL_MATH_GRADER=skythought gives the
    paper-parity grades (its math_equal ignores interval ends); the summary names the grader."""
    from vr_plugins.eval.summary import format_markdown, read_result

    handler, records, _ = rows("vr_math500")
    record = dict(records[0], answer="[0,9)")
    wrong_end = "So $x \\in \\boxed{(0,9)}$."
    entry = handler.update_results(record, wrong_end)
    assert entry["correctness"] is False and entry["grader"] == "vr"
    monkeypatch.setenv("VR_EVAL_MATH_GRADER", "skythought")
    entry_sky = handler.update_results(record, wrong_end)
    assert entry_sky["correctness"] is True and entry_sky["grader"] == "skythought"
    monkeypatch.setenv("VR_EVAL_MATH_GRADER", "sympy")
    with pytest.raises(Exception, match="VR_EVAL_MATH_GRADER.*vr, skythought, math_verify"):
        handler.update_results(record, wrong_end)
    for name, e in (("vr", entry), ("sky", entry_sky)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({"configuration": {"task": {"name": "vr_math500"},
                                                                           "model": {"name": name}}}))
        (folder / "results.json").write_text(json.dumps({"0": {"responses": [e]}}))
    assert read_result(tmp_path / "vr").grader == "vr"
    assert "math grader: vr (exact numbers + Math-Verify" in format_markdown([read_result(tmp_path / "vr")])
    both = format_markdown([read_result(tmp_path / "vr"), read_result(tmp_path / "sky")])
    assert "math grader: vr_math500=skythought, vr_math500=vr" in both


def test_math_gold_is_not_read_from_the_prompt_row_shape():
    handler, records, _ = rows("vr_olympiadbench_math_en")  # final_answer is a list: its first element counts
    assert handler.gold_answer(records[0]) == "4"
    handler, records, _ = rows("vr_amc23")  # float gold 10.0 compares as 10
    assert handler.gold_answer(records[0]) == "10"


def test_gpqa_options_are_shuffled_deterministically_and_graded_by_letter():
    handler, records, conversations = rows("vr_gpqa_diamond")
    prompt = conversations[0][1]["content"]
    record = records[0]
    letter = record["Answer"]  # set by generate_prompt, as SkyThought's handler does
    assert f"{letter}) The photon" in prompt and "Which particle mediates" in prompt
    _, records_again, conversations_again = rows("vr_gpqa_diamond")
    assert conversations_again[0][1]["content"] == prompt  # same order in another handler instance
    wrong = next(x for x in "ABCD" if x != letter)
    assert graded(handler, record, f"The force carrier is the photon, so \\boxed{{{letter}}}")[0] is True
    assert graded(handler, record, f"I pick \\boxed{{{wrong}}}")[0] is False
    record_without_answer = {k: v for k, v in record.items() if k != "Answer"}  # re-scoring a raw row
    assert graded(handler, record_without_answer, f"\\boxed{{{letter}}}")[0] is True


def test_mmlu_pro_prompt_has_question_and_options_but_not_the_answer():
    handler, records, conversations = rows("vr_mmlu_pro")
    prompt = conversations[0][1]["content"]
    assert "Which planet is known as the Red Planet?" in prompt
    for label, option in zip("ABCDEFGHIJ", records[0]["options"]):
        assert f"({label}) {option}" in prompt
    # SkyThought 0.1.0 formatted the whole row (answer, answer_index, chain of thought) into the prompt
    for leaked in ("SECRET-COT-MARKER", "answer_index", "'answer'", "The answer is (C)", "ori_mmlu"):
        assert leaked not in prompt
    assert list(records[0]["options"])[2] == "Mars"  # the row's options are not rewritten in place
    assert graded(handler, records[0], "Mars is red. The answer is (C)")[0] is True
    assert graded(handler, records[0], "The answer is (A)")[0] is False
    assert graded(handler, records[1], "Sodium is Na: \\boxed{D}")[0] is True


STDIN_OK = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
STDIN_WRONG = "```python\na, b = map(int, input().split())\nprint(a - b)\n```"
STDIN_CRASH = "```python\nraise SystemExit(1/0)\n```"
FUNC_OK = ("```python\nclass Solution:\n    def addAll(self, nums, k):\n        return sum(nums) + k\n```")
FUNC_CRASH = ("```python\nclass Solution:\n    def addAll(self, nums, k):\n        return undefined_name\n```")


def test_livecodebench_grades_in_the_sandbox_and_crashes_are_incorrect():
    handler, records, conversations = rows("vr_livecodebench_easy")
    stdin, functional = records
    assert stdin["is_stdin"] is True and functional["is_stdin"] is False
    assert "stdin" in conversations[0][1]["content"] and "Return the function body" in conversations[1][1]["content"]
    assert graded(handler, stdin, "Here:\n" + STDIN_OK) == (True, "")
    for response in (STDIN_WRONG, STDIN_CRASH, "no code at all", "```python\ndef broken(:\n```"):
        correct, reason = graded(handler, stdin, response)
        assert correct is False and reason, response
    assert graded(handler, functional, FUNC_OK)[0] is True
    assert graded(handler, functional, FUNC_CRASH)[0] is False
    # the prompt does not show the starter code: like SkyThought, a top-level function of any name is called
    assert graded(handler, functional, "```python\ndef solve(nums, k):\n    return sum(nums) + k\n```")[0] is True
    assert graded(handler, functional, "```python\ndef solve(nums, k):\n    return sum(nums) - k\n```")[0] is False


def test_livecodebench_hub_encoded_tests_are_decoded_without_unpickling():
    handler, records, _ = rows("vr_livecodebench_medium")  # its private tests use the hub's base64/zlib/pickle
    assert [t["output"] for t in records[0]["test"]] == ["5\n", "-7\n"]
    ok = "```python\ninput()\nprint(max(map(int, input().split())))\n```"
    assert graded(handler, records[0], ok)[0] is True
    assert graded(handler, records[0], "```python\ninput()\nprint(min(map(int, input().split())))\n```")[0] is False


def test_a_malicious_pickle_is_refused_and_never_executed(tmp_path):
    from vr_plugins.eval.data import EvalDataError, decode_lcb_tests

    victim = tmp_path / "victim"

    class Exploit:
        def __reduce__(self):
            return (open, (str(victim), "w"))

    payload = base64.b64encode(zlib.compress(pickle.dumps(Exploit()))).decode()
    with pytest.raises(EvalDataError, match="refusing to decode a pickle with opcode"):
        decode_lcb_tests(payload, "row 3 private_test_cases")
    assert not victim.exists()
    with pytest.raises(EvalDataError, match="neither a JSON list nor base64"):
        decode_lcb_tests("not base64 !!", "row 4")


def test_handlers_pickle_and_score_in_a_process_pool():
    from vr_plugins.hosts.skythought.handlers import VRMathTaskHandler
    from vr_plugins.eval.scoring import score_records

    handler, records, _ = rows("vr_math500")
    clone = pickle.loads(pickle.dumps(handler))
    assert type(clone) is VRMathTaskHandler and clone.task_config == handler.task_config
    results = {}
    for record in records[:2]:
        results[record["_index"]] = dict(record, responses=[
            {"content": "\\boxed{42}", "correctness": None, "reason": None},
            {"content": "\\boxed{3/4}", "correctness": None, "reason": None},
        ])
    scores = score_records(handler, results, workers=2)
    assert scores == {records[0]["_index"]: [0, 1], records[1]["_index"]: [1, 0]}
    assert results[records[0]["_index"]]["responses"][1]["correctness"] is True


def test_missing_columns_unknown_task_and_missing_file_are_clear_errors(tmp_path, monkeypatch):
    from vr_plugins.eval.data import EvalDataError
    from vr_plugins.hosts.skythought.tasks import load_handler
    from vr_plugins.registry import UnknownNameError

    with pytest.raises(UnknownNameError) as err:
        load_handler("vr_math5000")
    assert "vr_math5000" in str(err.value) and all(t in str(err.value) for t in ALL_TASKS)

    (tmp_path / "vr_math500.jsonl").write_text(json.dumps({"problem": "1+1?", "answer": "2"}) + "\n"
                                               + json.dumps({"question": "2+2?", "answer": "4"}) + "\n")
    monkeypatch.setenv("VR_EVAL_DATA_DIR", str(tmp_path))
    handler = load_handler("vr_math500")
    with pytest.raises(EvalDataError) as err:
        handler.load_and_filter_dataset(0, -1)
    assert "vr_math500.jsonl:2" in str(err.value) and "missing column(s) problem" in str(err.value)
    with pytest.raises(EvalDataError, match=r"vr_aime25.jsonl does not exist.*vr_math500.jsonl"):
        load_handler("vr_aime25").load_and_filter_dataset(0, -1)


def test_tasks_handlers_and_model_configs_are_registered_into_skythought(tmp_path, monkeypatch):
    import skythought.evals.tasks as sky_tasks
    from skythought.evals.models import ModelConfig, get_system_prompt_keys
    from skythought.evals.tasks import TaskConfig

    from vr_plugins.hosts.skythought import handlers
    from vr_plugins.eval.models import ModelPathError, check_local_model

    for task in ALL_TASKS:
        config = TaskConfig.from_yaml(sky_tasks.TASK_NAMES_TO_YAML[task])
        handler_cls = sky_tasks.TASK_HANDLER_MAP[config.handler]
        assert handler_cls.__module__ == handlers.__name__ and getattr(handlers, handler_cls.__name__) is handler_cls
    assert "math500" in sky_tasks.TASK_NAMES_TO_YAML and "math" in sky_tasks.TASK_HANDLER_MAP  # upstream kept

    released = ModelConfig.from_model_id("zhouxiangxin/Variational-Reasoning-8B-Acc")
    assert (released.system_prompt, released.assistant_prefill) == (formats.REASONING_SYSTEM_PROMPT, formats.ASSISTANT_PREFILL)
    assert ModelConfig.from_model_id("zhouxiangxin/Initial-Reasoning-4B").assistant_prefill == formats.ASSISTANT_PREFILL
    assert "vr_reasoning" in get_system_prompt_keys()

    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "tokenizer.json").write_text("{}")
    with pytest.warns(UserWarning, match="not found"):
        plain = ModelConfig.from_model_id(str(checkpoint))
    assert plain.system_prompt is None and plain.assistant_prefill is None
    monkeypatch.setenv("VR_EVAL_REASONING_MODELS", str(tmp_path / "ck*"))
    local = ModelConfig.from_model_id(str(checkpoint))
    assert (local.system_prompt, local.assistant_prefill) == (formats.REASONING_SYSTEM_PROMPT, formats.ASSISTANT_PREFILL)
    explicit = ModelConfig.from_model_id(str(checkpoint), system_prompt="custom")  # explicit CLI values win
    assert explicit.system_prompt == "custom"
    monkeypatch.delenv("VR_EVAL_REASONING_MODELS")
    with pytest.warns(UserWarning, match="not found"):
        assert ModelConfig.from_model_id(str(checkpoint)).assistant_prefill is None  # no stale entry

    (checkpoint / "tokenizer.json").unlink()
    with pytest.raises(ModelPathError, match="has no tokenizer"):
        ModelConfig.from_model_id(str(checkpoint))
    with pytest.raises(ModelPathError, match="tokenizer.json"):
        check_local_model(str(checkpoint))


def test_scoring_pool_is_capped(monkeypatch):
    import types

    from vr_plugins.eval.scoring import available_cpus, score_workers
    from vr_plugins.hosts.skythought import cap_scoring_workers

    seen = []
    module = types.SimpleNamespace(score_responses=lambda handler, results, max_workers=32: seen.append(max_workers))
    cap_scoring_workers(module)
    module.score_responses(None, {}, max_workers=32)  # SkyThought 0.1.0's call
    assert seen == [min(32, available_cpus())]
    monkeypatch.setenv("VR_EVAL_SCORE_WORKERS", "1")
    module.score_responses(None, {}, max_workers=32)
    assert seen[-1] == 1 and score_workers() == 1
    monkeypatch.setenv("VR_EVAL_SCORE_WORKERS", "zero")
    with pytest.raises(ValueError, match="positive integer"):
        score_workers()


def test_untested_skythought_version_registers_nothing_and_fails_clearly(monkeypatch):
    import types

    from vr_plugins.hosts.skythought.tasks import load_handler
    from vr_plugins.hosts import _version_guard
    from vr_plugins.hosts import skythought as adapter

    monkeypatch.setattr(_version_guard, "host_version", lambda dist: "0.2.0")
    monkeypatch.setattr(_version_guard, "_warned", set())
    module = types.SimpleNamespace(TASK_NAMES_TO_YAML={}, TASK_HANDLER_MAP={})
    adapter.after_exec("skythought.evals.tasks", module)
    assert module.TASK_NAMES_TO_YAML == {} and module.TASK_HANDLER_MAP == {}
    with pytest.raises(_version_guard.UntestedHostError, match="needs skythought 0.1.0 .found 0.2.0"):
        load_handler("vr_math500")
