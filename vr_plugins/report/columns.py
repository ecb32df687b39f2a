"""What every column of the report's tables means, in one place: the report prints a definition for each
column it shows, and a column without a definition here is an error (so a new column cannot go undefined).
"""

from __future__ import annotations

import re

DEFINITIONS = {
    # headline / bad input
    "metric": "what is counted (see docs/estimators.md for the estimator rules)",
    "value": "its value; 'n (r)' is a count and its fraction",
    "problem": "a per-row rule of the build loaders that rejected or corrected rows",
    "rows": "rows affected (bad-input table) or rows in the file (datasets table)",
    "examples": "a few of the affected keys",
    # per family
    "family": "source family: the part of the question's source before '/'",
    "questions": "questions of the family in questions.parquet",
    "traces": "scored traces of the family's questions (all seeds)",
    "no tests": "code questions that prepare left without unit tests (column no_tests)",
    "gml candidate rate": "fraction of questions with a GML candidate (think_tokens under the cap, finite scores)",
    "gml original rate": "fraction of questions GML keeps as the original example (source -1)",
    "acc candidate rate": "fraction of questions with an Acc candidate (under the cap and acc_k > 0)",
    "acc GML-fallback rate": "fraction of questions without an Acc candidate that take the GML choice (fallback families)",
    "acc original rate": "fraction of questions Acc keeps as the original example (source -1)",
    "rollouts correct rate": "fraction of the family's verified rollouts graded correct",
    # datasets
    "dataset": "a built dataset RUN/datasets/<name>.parquet",
    "original (-2)": "rows of the original reference examples prepended by --mix (source -2)",
    "fallback (-1)": "questions kept as their original example because no trace was selected (source -1)",
    "traces (k>=0)": "rows with a selected trace (source = its seed k)",
    "weight sum": "sum of the weight column",
    # evaluation (vr_plugins.eval.summary.format_markdown)
    "model": "evaluated or trained model (folder name or model path)",
    "mean": "mean of the model's avg@n over the tasks it was evaluated on, in percent",
    # trainings
    "logged steps": "loss entries in the training's trainer_state.json log_history",
    "last step": "optimizer step of the last logged loss",
    "first loss": "first logged training loss",
    "last loss": "last logged training loss",
    "train_loss": "the Trainer's mean training loss over the run",
    "train_runtime (s)": "seconds the training loop ran (train_runtime)",
}
#: evaluation task columns: ``<task>`` or ``<task> (avg@n)``
_TASK = re.compile(r"^(?P<task>[\w.-]+)(?: \(avg@(?P<n>\d+)\))?$")


def define(column: str, tasks: set[str] = frozenset()) -> str:
    """The definition of ``column``; KeyError for a column nobody defined."""
    if column in DEFINITIONS:
        return DEFINITIONS[column]
    m = _TASK.match(column)
    if m and m.group("task") in tasks:
        n = f"{m.group('n')} samples" if m.group("n") else "n samples (given per cell)"
        return f"task {m.group('task')}: avg@n, accuracy averaged over all {n} of every problem, in percent"
    raise KeyError(f"report column {column!r} has no definition in vr_plugins/report/columns.py")


def table_headers(markdown: str) -> list[str]:
    """Every column header of the markdown tables in ``markdown`` (in order, without repeats)."""
    headers: list[str] = []
    lines = markdown.splitlines()
    for line, below in zip(lines, lines[1:]):
        if line.startswith("|") and re.match(r"^\|(\s*:?-+:?\s*\|)+\s*$", below):
            for cell in (c.strip() for c in line.strip().strip("|").split("|")):
                if cell not in headers:
                    headers.append(cell)
    return headers
