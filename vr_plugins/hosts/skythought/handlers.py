"""SkyThought task handlers for the paper's benchmarks, with SkyThought 0.1.0's defects fixed.

They live in the SkyThought adapter because they subclass SkyThought's own handler classes; the rest of
the evaluation code reaches them only through :func:`vr_plugins.hosts.skythought.tasks.load_handler`.

Each class subclasses the SkyThought 0.1.0 handler of its family and changes only what was wrong:

- every task can read ``VR_EVAL_DATA_DIR/<task>.jsonl`` instead of the hub (:class:`VRTaskMixin`), with
  the columns checked up front;
- math answers are graded by :func:`vr_plugins.verify.math.grade_math` with the project's default ``vr``
  grader (``VR_EVAL_MATH_GRADER=skythought`` selects SkyThought's ``math_equal`` path for paper parity),
  under a wall-clock limit, so one pathological answer cannot stall the scoring pool; each scored response
  records the grader (``"grader"``) so the evaluation summary can say which one produced a number;
- MMLU-Pro: the prompt is the question and the lettered options only (0.1.0 formats the whole row,
  answer and chain of thought included, into the prompt);
- GPQA-Diamond: the options are shuffled by a per-question seed, so a prompt and its gold letter are the
  same in every process (generation, re-scoring, the CPU runner);
- LiveCodeBench: test data is never unpickled (:func:`vr_plugins.eval.data.decode_lcb_tests`) and
  programs run in the project's sandbox (:func:`vr_plugins.verify.code.grade_code`), where a crash, a
  syntax error or a timeout is incorrect.

Classes are top-level and hold only their ``TaskConfig``: SkyThought pickles them into its scoring pool.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import threading
from typing import Any

from vr_plugins.hosts.skythought.compat import apply_shims

apply_shims()  # imports below load skythought.evals.tasks, which needs the Python 3.11 shims

from skythought.evals.tasks.base import TaskConfig, TaskHandler, add_idx_map  # noqa: E402
from skythought.evals.tasks.gpqa_diamond.gpqa_diamond_handler import GPQADiamondTaskHandler  # noqa: E402
from skythought.evals.tasks.livecodebench.livecodebench_handler import LiveCodeBenchTaskHandler  # noqa: E402
from skythought.evals.tasks.math.math_handler import MathTaskHandler  # noqa: E402
from skythought.evals.tasks.mmlu.mmlu_handler import MMLUProTaskHandler  # noqa: E402

from vr_plugins.eval import data as eval_data  # noqa: E402

#: Seconds one math comparison may take in a scoring worker (sympy can hang on adversarial answers).
MATH_TIMEOUT_ENV = "VR_EVAL_MATH_TIMEOUT"
#: Which math grader scores the math tasks: vr (default) | skythought (paper parity) | math_verify.
MATH_GRADER_ENV = "VR_EVAL_MATH_GRADER"
#: Per-test limits of the code sandbox (SkyThought's LiveCodeBench checker used 6 s per test).
CODE_TIMEOUT_S = 6.0
CODE_MEMORY_MB = 2048
MC_LETTERS = "ABCDEFGHIJKLMNOP"


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    """SIGALRM limit in a main thread (scoring pool workers); no limit where signals are unavailable."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise _Timeout()

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _entry(response: str, correct: bool, reason: str) -> dict[str, Any]:
    return {"content": response, "correctness": bool(correct), "reason": "" if correct else reason}


class VRTaskMixin:
    """Local data (``VR_EVAL_DATA_DIR``), column checks and the task's own name.

    Our YAMLs carry the task name in ``preprocess_config.task_name`` (SkyThought's ``TaskConfig`` has no
    name field and drops unknown keys), which is what names the local file ``<task>.jsonl``.
    """

    task_config: TaskConfig
    #: Set by :func:`vr_plugins.eval.local.evaluate_local` to override ``$VR_EVAL_DATA_DIR``.
    data_dir: str | None = None

    @property
    def task_name(self) -> str:
        name = self.task_config.preprocess_config.get("task_name")
        if not name:
            raise eval_data.EvalDataError(
                f"{type(self).__name__}: the task YAML needs preprocess_config.task_name (names the local file)"
            )
        return name

    def required_columns(self) -> list[str]:
        columns = [self.task_config.question_key]
        if self.task_config.answer_key:
            columns.append(self.task_config.answer_key)
        if self.task_config.preprocess_config.get("url"):
            columns.append("url")
        return columns

    def load_dataset(self, subset=None, split=None, **kwargs):
        from datasets import Dataset

        local = eval_data.local_data_dir(self.data_dir)
        if local is None:
            dataset = super().load_dataset(subset=subset, split=split, **kwargs)
            eval_data.check_columns(
                dataset.column_names, self.required_columns(), self.task_name,
                f"hub dataset {self.task_config.dataset_path}",
            )
            return dataset
        path = eval_data.local_data_file(self.task_name, local)
        rows = eval_data.read_jsonl(path, self.required_columns(), self.task_name)
        rows = [add_idx_map(dict(row), idx) for idx, row in enumerate(rows)]  # SkyThought's "_index"
        try:
            return Dataset.from_list(rows)
        except Exception as exc:  # noqa: BLE001 - pyarrow type clashes between rows
            raise eval_data.EvalDataError(f"{path}: rows do not share column types ({exc})") from None

    def _filtered_frame(self, start: int, end: int):
        frame = self.load_dataset().to_pandas()
        url = self.task_config.preprocess_config.get("url")
        if url:
            frame = frame[frame["url"].astype(str).str.contains(str(url), regex=False, na=False)]
        return frame.iloc[start:end] if end > 0 else frame.iloc[start:]

    # Every subclass defines ``grade(problem, response) -> (correct, reason)``; SkyThought's two entry
    # points and the row filter are the same for all of them.
    def grade(self, problem, response: str) -> tuple[bool, str]:
        raise NotImplementedError

    def check_correctness(self, problem, generation, *args, **kwargs):
        return self.grade(problem, generation)[0]

    def update_results(self, problem, response):
        return _entry(response, *self.grade(problem, response))

    def load_and_filter_dataset(self, start, end, split=None, subset=None, difficulty=None):
        return self._filtered_frame(start, end)


class VRMathTaskHandler(VRTaskMixin, MathTaskHandler):
    """MATH-500, AIME 2024/2025, AMC 2023, OlympiadBench: ``\\boxed{}`` answer vs the gold answer.

    The template formats ``{question}``; ``preprocess_config.url`` keeps rows whose ``url`` contains it
    (the AIME/AMC year filters of SkyThought); a list-valued gold answer (OlympiadBench) uses its first
    element, as SkyThought does.
    """

    def generate_prompt(self, problem):
        return self.task_config.templating_parameters["template"].format(question=problem[self.question_key])

    def gold_answer(self, problem) -> str:
        gold = problem[self.task_config.answer_key]
        if hasattr(gold, "tolist"):
            gold = gold.tolist()
        if isinstance(gold, (list, tuple)):
            gold = gold[0] if gold else ""
        if isinstance(gold, float) and gold.is_integer():
            gold = int(gold)
        return str(gold)

    @staticmethod
    def math_grader() -> str:
        from vr_plugins.verify.math import BACKENDS, DEFAULT_BACKEND

        grader = os.environ.get(MATH_GRADER_ENV) or DEFAULT_BACKEND
        if grader not in BACKENDS:
            raise eval_data.EvalDataError(f"${MATH_GRADER_ENV}={grader!r}: expected one of {', '.join(BACKENDS)}")
        return grader

    def update_results(self, problem, response):
        return {**super().update_results(problem, response), "grader": self.math_grader()}

    def grade(self, problem, response: str) -> tuple[bool, str]:
        from vr_plugins.verify.math import grade_math

        seconds = float(os.environ.get(MATH_TIMEOUT_ENV, "60"))
        try:
            with _time_limit(seconds):
                return grade_math(response, self.gold_answer(problem), backend=self.math_grader())
        except _Timeout:
            return False, f"math check timed out after {seconds:g} s"


def _mc_answer(text: str) -> str | None:
    from vr_plugins.hosts.skythought.grading import multiple_choice_answer

    return multiple_choice_answer(text)


class VRGPQADiamondTaskHandler(VRTaskMixin, GPQADiamondTaskHandler):
    """GPQA-Diamond: four options in a per-question deterministic order; SkyThought's letter extraction."""

    OPTION_COLUMNS = ("Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")

    def required_columns(self) -> list[str]:
        return [self.task_config.question_key, *self.OPTION_COLUMNS]

    def get_multiple_choice_answers(self, data):
        answers = [str(data[column]) for column in self.OPTION_COLUMNS]
        seed = int.from_bytes(hashlib.sha256(str(data[self.task_config.question_key]).encode()).digest()[:8], "big")
        random.Random(seed).shuffle(answers)
        letters = MC_LETTERS[:4]
        options = ", ".join(f"{letter}) {answer}" for letter, answer in zip(letters, answers))
        return options, letters[answers.index(str(data["Correct Answer"]))]

    def generate_prompt(self, problem):
        options, letter = self.get_multiple_choice_answers(problem)
        problem["Answer"] = letter
        problem["prompt"] = f"{problem[self.task_config.question_key]}\n{options}"
        return self.task_config.templating_parameters["template"].format(prompt=problem["prompt"])

    def grade(self, problem, response: str) -> tuple[bool, str]:
        gold = self.get_multiple_choice_answers(problem)[1]
        pred = _mc_answer(response)
        if pred == gold:
            return True, ""
        return False, f"answer {str(pred)[:40]!r} is not the correct option {gold}"


class VRMMLUProTaskHandler(VRTaskMixin, MMLUProTaskHandler):
    """MMLU-Pro: the prompt is the question plus lettered options, never the answer columns."""

    def required_columns(self) -> list[str]:
        return [self.task_config.question_key, "options", "answer_index"]

    def get_multiple_choice_answers(self, problem):
        options = problem["options"]
        options = options.tolist() if hasattr(options, "tolist") else list(options)  # never mutate the row
        labelled = " ".join(f"({label}) {str(option).strip()}" for label, option in zip(MC_LETTERS, options))
        return f"Answer Choices: {labelled}"

    def generate_prompt(self, problem):
        prompt = f"{problem[self.task_config.question_key]}\n{self.get_multiple_choice_answers(problem)}"
        return self.task_config.templating_parameters["template"].format(prompt=prompt)

    def grade(self, problem, response: str) -> tuple[bool, str]:
        from vr_plugins.hosts.skythought.grading import mmlu_pro_answer

        gold = MC_LETTERS[int(problem["answer_index"])]
        pred = mmlu_pro_answer(response)
        if pred == gold:
            return True, ""
        return False, f"answer {pred!r} is not the correct option {gold}"


class VRLiveCodeBenchTaskHandler(VRTaskMixin, LiveCodeBenchTaskHandler):
    """LiveCodeBench (release_v2) by difficulty: sandboxed execution, no pickle, crashes are incorrect."""

    HUB_COLUMNS = ("question_content", "question_id", "starter_code", "difficulty", "public_test_cases",
                   "private_test_cases")

    def required_columns(self) -> list[str]:
        return list(self.HUB_COLUMNS)

    def load_and_filter_dataset(self, start, end, split=None, subset=None, difficulty=None):
        import pandas as pd

        from vr_plugins.eval.code import lcb_example

        frame = self.load_dataset().to_pandas()
        difficulty = difficulty or self.task_config.preprocess_config.get("difficulty")
        if difficulty:
            frame = frame[frame["difficulty"] == difficulty]
        examples = [lcb_example(row, f"task {self.task_name} row {row['_index']}") for row in frame.to_dict("records")]
        frame = pd.DataFrame(examples, columns=["prompt", "test", "entry_point", "task_id", "is_stdin",
                                                "public_test_cases", "difficulty", "_index"])
        return frame.iloc[start:end] if end > 0 else frame.iloc[start:]

    def grade(self, problem, response: str) -> tuple[bool, str]:
        from vr_plugins.eval.code import grade_lcb

        return grade_lcb(problem, response, timeout_s=CODE_TIMEOUT_S, memory_mb=CODE_MEMORY_MB)


__all__ = [
    "TaskHandler",
    "VRGPQADiamondTaskHandler",
    "VRLiveCodeBenchTaskHandler",
    "VRMMLUProTaskHandler",
    "VRMathTaskHandler",
    "VRTaskMixin",
]
