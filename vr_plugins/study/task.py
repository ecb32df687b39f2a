"""The study's synthetic task: chains of 1-3 arithmetic operations on small integers, with worked traces.

Why this task: answers are exact (the numina math verifier checks ``\\boxed{}``), the traces are short (a
tiny model trained from scratch on CPU can learn the format in minutes and part of the arithmetic), and
the number of operations is a difficulty level, so "the hardest third" of the held-out questions is
well defined (level 3).

A question "Compute ((7 + 3) - 2) + 4." is evaluated left to right; the reference trace writes one step
per paragraph ("7 + 3 = 10.") and the reference solution restates the result in ``\\boxed{}``. The
:class:`TaskSpec` bounds the numbers (default: start 1-20, operands 1-9, every intermediate value in
[0, 30]): a few hundred addition/subtraction facts, more than 300 training questions show, so a small
model learns the task only partly and its errors compound with the number of steps (measured, see
docs/study.md). The level-1 question space is small (~300 with the default spec), so the training and
pretraining splits take level-1 questions only while distinct ones remain (the held-out split is
drawn first and stays level-balanced).

Three disjoint splits: ``eval/<EVAL_TASK>.jsonl`` (held-out, MATH500 columns: problem, solution, answer,
subject, level, unique_id), ``train.jsonl`` (Bespoke layout, source ``numina/<i>``, ``gold_answer``: the
reference traces pi_0 is trained on) and ``pretrain/pretrain.jsonl`` (chat transcripts of other
questions with worked answers but without the reasoning system prompt: the corpus the base model is
pretrained on, the study's stand-in for a pretrained LLM that already knows some arithmetic).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from vr_plugins.errors import UserError
from vr_plugins.rundir.io import write_text_atomic
from vr_plugins.formats import ASSISTANT_PREFILL, IM_END, IM_START, REASONING_SYSTEM_PROMPT, render_response


class TaskSizeError(UserError, ValueError):
    """Study settings asking for more (or fewer) questions than the task can give."""


OPS = "+-"
LEVELS = (1, 2, 3)
EVAL_TASK = "vr_math500"  #: the registered task whose local file (VR_EVAL_DATA_DIR) holds the held-out split
PRETRAIN_DATASET = "vr_study_pretrain"  #: LLaMA-Factory dataset name of the pretraining corpus (stage pt)
PRETRAIN_DIR = "pretrain"  #: its folder (dataset_info.json + pretrain.jsonl) inside the study's data folder


@dataclass(frozen=True)
class TaskSpec:
    """Bounds of the numbers: the size of the fact table, hence how hard the task is to generalise."""

    max_start: int = 20
    max_operand: int = 9
    max_value: int = 30


@dataclass(frozen=True)
class Problem:
    question: str
    steps: tuple[str, ...]
    answer: int
    level: int

    @property
    def think(self) -> str:
        return "\n\n".join(self.steps) + f"\n\nSo the value is {self.answer}."

    @property
    def solution(self) -> str:
        return f"The answer is \\boxed{{{self.answer}}}."


def _apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def make_problem(rng: random.Random, level: int, spec: TaskSpec = TaskSpec()) -> Problem:
    """One question with ``level`` operations; resampled until every intermediate value is in range."""
    while True:
        value = rng.randint(1, spec.max_start)
        expr, steps, ok = str(value), [], True
        for _ in range(level):
            op = rng.choice(OPS)
            operand = rng.randint(1, spec.max_operand)
            new = _apply(op, value, operand)
            if not 0 <= new <= spec.max_value:
                ok = False
                break
            steps.append(f"{value} {op} {operand} = {new}.")
            expr = f"({expr} {op} {operand})" if len(steps) < level else f"{expr} {op} {operand}"
            value = new
        if ok:
            return Problem(f"Compute {expr}.", tuple(steps), value, level)


def bespoke_row(p: Problem, index: int) -> dict:
    response = response_text(p)
    return {
        "system": REASONING_SYSTEM_PROMPT,
        "conversations": [{"from": "user", "value": p.question}, {"from": "assistant", "value": response}],
        "source": f"numina/{index}",
        "gold_answer": str(p.answer),
        "tests": None,
    }


def response_text(p: Problem) -> str:
    """The assistant turn: begin marker, then the reference layout of formats.render_response."""
    return ASSISTANT_PREFILL + render_response(f"{p.think}\n\n", f"\n\n{p.solution}\n\n")


def pretrain_text(p: Problem) -> str:
    """A chat transcript of the question and its worked answer *without the reasoning system prompt*.

    Why this layout: a 2-layer model trained from scratch copies operands by relative position, so the
    pretraining keeps the chat turns' offsets between question and steps; plain "question, steps" text
    transferred worse to the reasoning prompt (the probes of docs/study.md).
    """
    return f"{IM_START}user\n{p.question}{IM_END}\n{IM_START}assistant\n{response_text(p)}{IM_END}"


def eval_row(p: Problem, index: int) -> dict:
    return {"problem": p.question, "solution": p.solution, "answer": str(p.answer), "subject": "Arithmetic",
            "level": p.level, "unique_id": f"study/arith/{index}.json"}


def generate(out_dir: str | Path, n_train: int, n_eval: int, seed: int = 0, spec: TaskSpec = TaskSpec(),
             n_pretrain: int = 0) -> dict[str, Path]:
    """Write ``train.jsonl`` (Bespoke layout), ``eval/<EVAL_TASK>.jsonl`` (held-out, levels balanced) and,
    with ``n_pretrain``, ``pretrain/`` (the :func:`pretrain_text` corpus + its LLaMA-Factory ``dataset_info.json``).

    Deterministic for given arguments; the three splits share no question.
    """
    if n_train < 1 or n_eval < len(LEVELS):
        raise TaskSizeError(f"need n_train >= 1 and n_eval >= {len(LEVELS)} (got {n_train}, {n_eval})")
    rng = random.Random(seed)
    seen: set[str] = set()

    def draw(level: int, fallback: bool) -> Problem:
        for lvl in [level, *(x for x in LEVELS if x > level)] if fallback else [level]:
            for _ in range(2_000):
                p = make_problem(rng, lvl, spec)
                if p.question not in seen:
                    seen.add(p.question)
                    return p
        raise TaskSizeError(f"cannot draw enough distinct level-{level} questions; lower n_train/n_eval")

    held_out = [draw(LEVELS[i % len(LEVELS)], fallback=False) for i in range(n_eval)]
    train = [draw(LEVELS[i % len(LEVELS)], fallback=True) for i in range(n_train)]
    pretrain = [draw(LEVELS[i % len(LEVELS)], fallback=True) for i in range(n_pretrain)]
    out = Path(out_dir)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    paths = {"train": out / "train.jsonl"}
    write_text_atomic("".join(json.dumps(bespoke_row(p, i)) + "\n" for i, p in enumerate(train)), paths["train"])
    if pretrain:
        (out / PRETRAIN_DIR).mkdir(exist_ok=True)
        paths["pretrain"] = out / PRETRAIN_DIR / "pretrain.jsonl"
        write_text_atomic("".join(json.dumps({"text": pretrain_text(p)}) + "\n" for p in pretrain), paths["pretrain"])
        info = {PRETRAIN_DATASET: {"file_name": "pretrain.jsonl", "columns": {"prompt": "text"}}}
        write_text_atomic(json.dumps(info, indent=2) + "\n", out / PRETRAIN_DIR / "dataset_info.json")
    # the held-out file last: its presence is what tells the driver the data folder is complete
    paths["eval"] = out / "eval" / f"{EVAL_TASK}.jsonl"
    write_text_atomic("".join(json.dumps(eval_row(p, i)) + "\n" for i, p in enumerate(held_out)), paths["eval"])
    return paths


def constant_answer_floor(train_file: Path, eval_file: Path) -> dict:
    """Accuracy of always answering the most frequent training answer: the floor a model that ignores the
    question reaches (the answers are small integers, so it is well above zero). Rows without a gold answer
    (code problems) are left out of the count."""
    from collections import Counter

    train = [json.loads(line) for line in Path(train_file).read_text().splitlines()]
    answer, _ = Counter(r["gold_answer"] for r in train if r.get("gold_answer") is not None).most_common(1)[0]
    held = [json.loads(line) for line in Path(eval_file).read_text().splitlines()]
    by_level = {lvl: [e["answer"] == answer for e in held if e["level"] == lvl] for lvl in LEVELS}
    return {"answer": answer, "accuracy": sum(e["answer"] == answer for e in held) / len(held),
            "questions": len(held), "by_level": {lvl: sum(v) / len(v) for lvl, v in by_level.items() if v}}
