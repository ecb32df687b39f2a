"""The study's synthetic task: chains of 1-3 arithmetic operations on small integers, with worked traces.

Why this task: answers are exact (the numina math verifier checks ``\\boxed{}``), the traces are short (a
tiny model trained from scratch on CPU can learn the format in minutes and part of the arithmetic), and
the number of operations is a difficulty level, so "the hardest third" of the held-out questions is
well defined (level 3).

A question "Compute ((7 + 3) - 2) + 4." is evaluated left to right; the reference trace writes one step
per paragraph ("7 + 3 = 10.") and the reference solution restates the result in ``\\boxed{}``. Operands
are small (start 1-9, then +/- 1-4) and every intermediate value stays in ``[0, MAX_VALUE]``: about a
hundred addition/subtraction facts, few enough that a from-scratch model sees each several times, so
it can learn level 1 and the error compounds with the number of steps. The level-1 question space is
small (~66), so the training split takes level-1 questions only while distinct ones remain (the
held-out split is drawn first and stays level-balanced). Training rows are in
the Bespoke layout (source ``numina/<i>``, ``gold_answer``); the held-out split is an eval task file in
the MATH500 columns (problem, solution, answer, subject, level, unique_id) with no question shared with
the training split.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from vr_plugins.formats import ASSISTANT_PREFILL, BEGIN_OF_SOLUTION, END_OF_SOLUTION, END_OF_THOUGHT, REASONING_SYSTEM_PROMPT

MAX_VALUE = 15
MAX_START = 9
MAX_OPERAND = 4
OPS = "+-"
LEVELS = (1, 2, 3)
EVAL_TASK = "vr_math500"  #: the registered task whose local file (VR_EVAL_DATA_DIR) holds the held-out split


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


def make_problem(rng: random.Random, level: int) -> Problem:
    """One question with ``level`` operations; resampled until every intermediate value is in range."""
    while True:
        value = rng.randint(1, MAX_START)
        expr, steps, ok = str(value), [], True
        for _ in range(level):
            op = rng.choice(OPS)
            operand = rng.randint(1, MAX_OPERAND)
            new = _apply(op, value, operand)
            if not 0 <= new <= MAX_VALUE:
                ok = False
                break
            steps.append(f"{value} {op} {operand} = {new}.")
            expr = f"({expr} {op} {operand})" if len(steps) < level else f"{expr} {op} {operand}"
            value = new
        if ok:
            return Problem(f"Compute {expr}.", tuple(steps), value, level)


def bespoke_row(p: Problem, index: int) -> dict:
    response = f"{ASSISTANT_PREFILL}{p.think}\n\n{END_OF_THOUGHT}\n\n{BEGIN_OF_SOLUTION}\n\n{p.solution}\n\n{END_OF_SOLUTION}"
    return {
        "system": REASONING_SYSTEM_PROMPT,
        "conversations": [{"from": "user", "value": p.question}, {"from": "assistant", "value": response}],
        "source": f"numina/{index}",
        "gold_answer": str(p.answer),
        "tests": None,
    }


def eval_row(p: Problem, index: int) -> dict:
    return {"problem": p.question, "solution": p.solution, "answer": str(p.answer), "subject": "Arithmetic",
            "level": p.level, "unique_id": f"study/arith/{index}.json"}


def generate(out_dir: str | Path, n_train: int, n_eval: int, seed: int = 0) -> dict[str, Path]:
    """Write ``train.jsonl`` (Bespoke layout) and ``eval/<EVAL_TASK>.jsonl`` (held-out, levels balanced).

    Deterministic for a given (n_train, n_eval, seed); eval questions never occur in the training split.
    """
    if n_train < 1 or n_eval < len(LEVELS):
        raise ValueError(f"need n_train >= 1 and n_eval >= {len(LEVELS)} (got {n_train}, {n_eval})")
    rng = random.Random(seed)
    seen: set[str] = set()

    def draw(level: int, fallback: bool) -> Problem:
        for lvl in [level, *(x for x in LEVELS if x > level)] if fallback else [level]:
            for _ in range(2_000):
                p = make_problem(rng, lvl)
                if p.question not in seen:
                    seen.add(p.question)
                    return p
        raise ValueError(f"cannot draw enough distinct level-{level} questions; lower n_train/n_eval")

    held_out = [draw(LEVELS[i % len(LEVELS)], fallback=False) for i in range(n_eval)]
    train = [draw(LEVELS[i % len(LEVELS)], fallback=True) for i in range(n_train)]
    out = Path(out_dir)
    (out / "eval").mkdir(parents=True, exist_ok=True)
    train_path, eval_path = out / "train.jsonl", out / "eval" / f"{EVAL_TASK}.jsonl"
    train_path.write_text("".join(json.dumps(bespoke_row(p, i)) + "\n" for i, p in enumerate(train)))
    eval_path.write_text("".join(json.dumps(eval_row(p, i)) + "\n" for i, p in enumerate(held_out)))
    return {"train": train_path, "eval": eval_path}
