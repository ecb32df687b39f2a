"""Generate the bundled demo dataset (``vr_plugins/demo/data``): checkable problems in the Bespoke layout.

Deterministic (fixed seed), so the committed files can be regenerated and compared:
``python scripts/make_demo_data.py`` rewrites them. Three kinds of rows, so every verifier path runs:

- ``numina/<i>``: two-step arithmetic with a worked thinking trace and a ``\\boxed{}`` answer;
- ``ruc/<i>``: the same kind of problem under the family that the Acc estimator falls back to GML for;
- ``apps/<i>``: small stdin/stdout programs with APPS ``input_output`` tests (JSON).

Also writes held-out evaluation files in the columns of the hub datasets (``eval/vr_math500.jsonl``:
problem, solution, answer, subject, level, unique_id).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from vr_plugins.formats import (
    ASSISTANT_PREFILL,
    BEGIN_OF_SOLUTION,
    END_OF_SOLUTION,
    END_OF_THOUGHT,
    REASONING_SYSTEM_PROMPT,
)

OUT = Path(__file__).resolve().parent.parent / "vr_plugins" / "demo" / "data"
SEED = 20250926


def arithmetic(rng: random.Random) -> tuple[str, str, str, str]:
    a, b, c = rng.randint(2, 30), rng.randint(2, 30), rng.randint(2, 9)
    op = rng.choice(["+", "-"])
    first = a + b if op == "+" else a - b
    result = first * c
    question = f"Compute ({a} {op} {b}) * {c}."
    think = (
        f"First evaluate the parentheses: {a} {op} {b} = {first}.\n\n"
        f"Then multiply by {c}: {first} * {c} = {result}.\n\n"
        f"Check: {result} / {c} = {first}, which matches. So the value is {result}."
    )
    solution = f"({a} {op} {b}) * {c} = {first} * {c} = {result}.\n\nThe answer is \\boxed{{{result}}}."
    return question, think, solution, str(result)


CODE_TASKS = [
    ("Read an integer n and print 2 * n.", "n = int(input())\nprint(2 * n)", lambda n: 2 * n),
    ("Read an integer n and print n squared.", "n = int(input())\nprint(n * n)", lambda n: n * n),
    ("Read an integer n and print n + 7.", "n = int(input())\nprint(n + 7)", lambda n: n + 7),
    ("Read an integer n and print the sum 1 + 2 + ... + n.", "n = int(input())\nprint(n * (n + 1) // 2)",
     lambda n: n * (n + 1) // 2),
]


def code_problem(i: int, rng: random.Random) -> tuple[str, str, str, str]:
    text, program, fn = CODE_TASKS[i % len(CODE_TASKS)]
    inputs = [rng.randint(1, 50) for _ in range(3)]
    tests = {"inputs": [f"{n}\n" for n in inputs], "outputs": [f"{fn(n)}\n" for n in inputs]}
    think = (
        "The input is a single integer on one line, so read it with input() and convert with int().\n\n"
        f"Then compute the requested value and print it. For example, with n = {inputs[0]} the output is "
        f"{fn(inputs[0])}."
    )
    solution = f"Read n, compute the value, print it.\n\n```python\n{program}\n```"
    return text, think, solution, json.dumps(tests)


def bespoke_row(question: str, think: str, solution: str, **extra) -> dict:
    assistant = (
        f"{ASSISTANT_PREFILL}{think}\n\n{END_OF_THOUGHT}\n\n{BEGIN_OF_SOLUTION}\n\n{solution}\n\n{END_OF_SOLUTION}"
    )
    row = {
        "system": REASONING_SYSTEM_PROMPT,
        "conversations": [{"from": "user", "value": question}, {"from": "assistant", "value": assistant}],
    }
    row.update(extra)
    return row


def main() -> None:
    rng = random.Random(SEED)
    rows = []
    for i in range(32):
        q, t, s, ans = arithmetic(rng)
        rows.append(bespoke_row(q, t, s, source=f"numina/{i}", gold_answer=ans, tests=None))
    for i in range(8):
        q, t, s, ans = arithmetic(rng)
        rows.append(bespoke_row(q, t, s, source=f"ruc/{i}", gold_answer=ans, tests=None))
    for i in range(8):
        q, t, s, tests = code_problem(i, rng)
        rows.append(bespoke_row(q, t, s, source=f"apps/{i}", gold_answer=None, tests=tests))
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "train.jsonl", "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    (OUT / "eval").mkdir(exist_ok=True)
    with open(OUT / "eval" / "vr_math500.jsonl", "w") as fh:
        for i in range(16):
            q, t, s, ans = arithmetic(rng)
            fh.write(json.dumps({"problem": q, "solution": s, "answer": ans, "subject": "Prealgebra", "level": 1,
                                 "unique_id": f"demo/arith/{i}.json"}) + "\n")
    print(f"wrote {len(rows)} training rows and 16 evaluation rows to {OUT}")


if __name__ == "__main__":
    main()
