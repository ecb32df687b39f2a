"""Generate the bundled demo dataset (``vr_plugins/demo/data``): checkable problems in the Bespoke layout.

Deterministic (fixed seed), so the committed files can be regenerated and compared:
``python scripts/make_demo_data.py`` rewrites them. The arithmetic is the study's task
(``vr_plugins/study/task.py``: one to three additions/subtractions, worked steps, a ``\\boxed{}`` answer)
so that the bundled pretrained base (``scripts/make_demo_base.py``) can learn it in the demo's trainings.
Three kinds of training rows, so every verifier path runs:

- ``numina/<i>``: the study task's training questions;
- ``ruc/<i>``: more of them, under the family that the Acc estimator falls back to GML for;
- ``apps/<i>``: small stdin/stdout programs with APPS ``input_output`` tests (JSON).

Also writes the held-out evaluation file in the columns of the hub dataset (``eval/vr_math500.jsonl``:
problem, solution, answer, subject, level, unique_id; 20 questions per level). The base model's
pretraining corpus comes from the same generator call (:func:`splits`), so the three never share a question.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from vr_plugins.formats import (  # noqa: E402
    ASSISTANT_PREFILL,
    BEGIN_OF_SOLUTION,
    END_OF_SOLUTION,
    END_OF_THOUGHT,
    REASONING_SYSTEM_PROMPT,
)
from vr_plugins.study import task  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "vr_plugins" / "demo" / "data"
SEED = 20250926
N_ARITH = 128  #: study-task training questions: the first N_ARITH - N_RUC as numina, the rest as ruc
N_RUC = 8
N_CODE = 8
N_EVAL = 60  #: held-out questions, 20 per level
N_PRETRAIN = 600  #: the base model's pretraining corpus (scripts/make_demo_base.py), not shipped


def splits(out_dir: Path) -> dict[str, Path]:
    """The study task's three disjoint splits for the demo (train, eval, pretrain) in ``out_dir``."""
    return task.generate(out_dir, N_ARITH, N_EVAL, seed=SEED, n_pretrain=N_PRETRAIN)


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
    with tempfile.TemporaryDirectory() as tmp:
        paths = splits(Path(tmp))
        arith = [json.loads(line) for line in paths["train"].read_text().splitlines()]
        held_out = paths["eval"].read_text()
    rows = []
    for i, row in enumerate(arith):
        family = "numina" if i < N_ARITH - N_RUC else "ruc"
        rows.append({**row, "source": f"{family}/{i}"})
    for i in range(N_CODE):
        q, t, s, tests = code_problem(i, rng)
        rows.append(bespoke_row(q, t, s, source=f"apps/{i}", gold_answer=None, tests=tests))
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "train.jsonl", "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    (OUT / "eval").mkdir(exist_ok=True)
    (OUT / "eval" / "vr_math500.jsonl").write_text(held_out)
    print(f"wrote {len(rows)} training rows and {N_EVAL} evaluation rows to {OUT}")


if __name__ == "__main__":
    main()
