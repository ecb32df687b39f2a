"""``prepare``: RUN/questions.parquet from a Bespoke-Stratos-style or a generic question file.

Two input layouts:

- **bespoke**: columns ``system`` + ``conversations`` ([{from: user, value}, {from: assistant, value}]),
  the assistant turn being ``<|begin_of_thought|>\\n\\n{think}<|end_of_thought|>\\n\\n<|begin_of_solution|>
  {solution}<|end_of_solution|>``. The pieces are kept raw (not stripped), so
  ``ASSISTANT_PREFILL + render_response(think, solution)`` reproduces the assistant turn byte for byte.
- **generic**: columns ``question``, ``think`` (or ``reference_think``), ``solution`` (or
  ``reference_solution``), ``source``, optional ``gold_answer``, ``tests``, ``prompt_idx``.

The released Bespoke rows carry no source: the family is given (``--source-family numina``) or guessed
per row (``auto``, see :func:`guess_family`). A row's own ``source``, ``gold_answer`` and ``tests``
fields are used whenever present, in either layout (the bundled demo data has them). ``source`` is written as ``family/index`` with a running index per
family; a generic ``source`` that already has an index is kept. Rows that cannot be used are reported
with their index and reason; they are skipped unless ``strict``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Iterable

import pyarrow as pa

from vr_plugins import formats
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.io import RunDirError, write_table_atomic
from vr_plugins.rundir.manifest import check_step, record_step
from vr_plugins.rundir.paths import check_local_or_hub
from vr_plugins.verify import math_extract
from vr_plugins.builtin.verifiers import CODE_FAMILIES  # one list: the code verifier's families

#: families whose answers are checked as math (gold_answer derived from the last \boxed{})
#: the instruction Sky-T1 / Bespoke-Stratos put in front of every code question
CODE_INSTRUCTION = "Generate an executable Python function generated from the given prompt"
FORMATS = ("auto", "bespoke", "generic")


@dataclass
class PrepareReport:
    path: Path
    rows: int
    bad: list[tuple[int, str]] = field(default_factory=list)
    families: dict[str, int] = field(default_factory=dict)
    #: ``--tests-from``: matched / unmatched / ambiguous code questions (None without --tests-from)
    tests: object = None
    #: code questions written without tests (flagged in the ``no_tests`` column)
    no_tests: int = 0


# --- reading ----------------------------------------------------------------------------------------
def read_records(dataset: str, split: str = "train") -> list[dict[str, Any]]:
    """Rows of a local .json/.jsonl/.parquet file, or of a hub dataset id where the machine has access."""
    path = check_local_or_hub(dataset, "dataset file")
    if path is None:
        if dataset.count("/") == 1:
            try:
                import datasets

                return list(datasets.load_dataset(dataset, split=split))
            except Exception as exc:  # noqa: BLE001
                raise RunDirError(f"{dataset}: not a local file, and loading it from the hub failed ({exc})") from exc
        raise RunDirError(f"dataset {dataset}: not a local file, and not a hub id (org/name)")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001
            raise RunDirError(f"{path}: not a readable Parquet file ({exc})") from exc
    if suffix not in (".json", ".jsonl"):
        raise RunDirError(f"{path}: unsupported file type {suffix!r}; expected .json, .jsonl or .parquet")
    text = path.read_text(encoding="utf-8")
    if suffix == ".json" and text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path}: not valid JSON ({exc})") from exc
        return list(data)
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RunDirError(f"{path}: line {lineno} is not valid JSON ({exc.msg})") from exc
    return rows


def detect_format(records: list[dict], where: str) -> str:
    keys = set(records[0]) if records else set()
    if "conversations" in keys:
        return "bespoke"
    if "question" in keys:
        return "generic"
    raise RunDirError(
        f"{where}: cannot tell the layout: expected a 'conversations' column (Bespoke-Stratos) or a "
        f"'question' column (generic); found {sorted(keys)}"
    )


# --- parsing ----------------------------------------------------------------------------------------
#: One extraction for gold answers and the verifier (vr_plugins/verify/math_extract.py).
last_boxed = math_extract.last_boxed


def guess_family(question: str) -> str:
    """``auto`` families for Bespoke rows: code questions (Sky-T1 code instruction) -> apps, else numina.

    The Bespoke-Stratos text does not say whether a code problem came from APPS or TACO (both are
    graded by the same code verifier), nor whether a math/science question came from NuminaMath or the
    RUC STILL-2 set; use the generic layout with a ``source`` column when the exact family matters.
    """
    return "apps" if CODE_INSTRUCTION in question else "numina"


def parse_bespoke(row: dict) -> tuple[str, str, str]:
    """(question, think, solution) of one Bespoke row; ValueError with the reason when unusable."""
    turns = row.get("conversations")
    if not isinstance(turns, list):
        raise ValueError("'conversations' is not a list")
    user = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") in ("user", "human")), None)
    reply = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") in ("assistant", "gpt")), None)
    if not isinstance(user, str) or not user.strip():
        raise ValueError("no user turn with a question")
    if not isinstance(reply, str):
        raise ValueError("no assistant turn")
    for marker in (formats.BEGIN_OF_THOUGHT, formats.END_OF_THOUGHT, formats.BEGIN_OF_SOLUTION, formats.END_OF_SOLUTION):
        if marker not in reply:
            raise ValueError(f"assistant turn lacks the marker {marker}")
    if not reply.startswith(formats.ASSISTANT_PREFILL):
        raise ValueError(f"assistant turn does not start with {formats.ASSISTANT_PREFILL!r}")
    pieces = formats.split_response(reply)
    if pieces is None:
        raise ValueError("assistant turn does not follow think/solution layout")
    return user, pieces[0], pieces[1]


def _text(row: dict, *names: str) -> str | None:
    for name in names:
        if name in row and row[name] is not None:
            value = row[name]
            if not isinstance(value, str):
                raise ValueError(f"column {name!r} is {type(value).__name__}, expected a string")
            return value
    return None


def _tests_json(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    return json.dumps(value)


def build_rows(records: list[dict], fmt: str, source_family: str) -> tuple[list[dict], list[tuple[int, str]]]:
    """Contract rows and (row index, reason) of the rows that could not be used."""
    rows, bad = [], []
    seen: dict[int, int] = {}
    counters: dict[str, int] = {}
    for index, row in enumerate(records):
        try:
            if not isinstance(row, dict):
                raise ValueError(f"row is {type(row).__name__}, expected an object")
            if fmt == "bespoke":
                question, think, solution = parse_bespoke(row)
            else:
                question = _text(row, C.QUESTION)
                think = _text(row, "think", C.REFERENCE_THINK)
                solution = _text(row, "solution", C.REFERENCE_SOLUTION)
            # A row's own source wins (Bespoke rows may carry one too, as the bundled demo data does).
            source = _text(row, C.SOURCE)
            if source is None:
                if fmt == "generic" and source_family == "auto":
                    raise ValueError("no 'source' value (pass --source-family to set one for all rows)")
                source = (guess_family(question or "") if source_family == "auto" else source_family)
            family, _, source_index = source.partition("/")
            if not family:
                raise ValueError(f"source {source!r} has no family")
            if not question or not question.strip():
                raise ValueError("empty question")
            if not think or not think.strip():
                raise ValueError("empty think")
            if not solution or not solution.strip():
                raise ValueError("empty solution")
            prompt_idx = row.get(C.PROMPT_IDX, index)
            if isinstance(prompt_idx, bool) or not isinstance(prompt_idx, int):
                raise ValueError(f"prompt_idx {prompt_idx!r} is not an integer")
            if prompt_idx in seen:
                raise ValueError(f"duplicate prompt_idx {prompt_idx} (first at row {seen[prompt_idx]})")
            gold = _text(row, C.GOLD_ANSWER)
            if gold is None and family not in CODE_FAMILIES:
                gold = last_boxed(solution)
            tests = _tests_json(row.get(C.TESTS))
        except ValueError as exc:
            bad.append((index, str(exc)))
            continue
        seen[prompt_idx] = index
        if not source_index:
            source_index = str(counters.get(family, 0))
        counters[family] = counters.get(family, 0) + 1
        rows.append(
            {
                C.PROMPT_IDX: prompt_idx,
                C.QUESTION: question,
                C.REFERENCE_THINK: think,
                C.REFERENCE_SOLUTION: solution,
                C.SOURCE: f"{family}/{source_index}",
                C.GOLD_ANSWER: gold,
                C.TESTS: tests,
            }
        )
    return rows, bad


def format_bad_rows(where: str, bad: Iterable[tuple[int, str]], limit: int = 20) -> str:
    bad = list(bad)
    lines = [f"  row {i}: {reason}" for i, reason in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more")
    return f"{where}: {len(bad)} bad row(s):\n" + "\n".join(lines)


def is_code_row(row: dict) -> bool:
    return C.source_family(row[C.SOURCE]) in CODE_FAMILIES


def attach_tests(rows: list[dict], tests_from: Iterable[str]):
    """Fill the tests of code rows without any from the APPS/TACO datasets ``tests_from`` (:mod:`.code_tests`)."""
    from vr_plugins.data.code_tests import attach, load_source

    sources = [load_source(src, read_records(src)) for src in tests_from]
    return attach(rows, sources, is_code_row, C.QUESTION, C.TESTS)


def prepare(dataset: str, run_dir: str | os.PathLike, fmt: str = "auto", source_family: str = "auto",
            strict: bool = False, split: str = "train", limit: int | None = None, force: bool = False,
            tests_from: Iterable[str] = ()) -> PrepareReport:
    """Parse ``dataset`` and write RUN/questions.parquet atomically; raises RunDirError on unusable input.

    With ``strict`` any bad row is fatal and nothing is written. ``limit`` keeps the first N input rows
    (a quick subset; prompt_idx stays the row index in the full file).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    records = read_records(dataset, split=split)
    if limit is not None:
        records = records[:limit]
    if not records:
        raise RunDirError(f"{dataset}: no rows")
    fmt = detect_format(records, dataset) if fmt == "auto" else fmt
    rows, bad = build_rows(records, fmt, source_family)
    if bad and strict:
        raise RunDirError(format_bad_rows(dataset, bad) + "\n(--strict: nothing written)")
    if not rows:
        raise RunDirError(format_bad_rows(dataset, bad) + "\nno usable rows: nothing written")
    tests_from = list(tests_from)
    for src in tests_from:
        check_local_or_hub(src, "--tests-from file")
    out = Path(run_dir) / C.QUESTIONS_FILE
    params = {"dataset": _as_param(dataset), "format": fmt, "source_family": source_family, "split": split,
              "limit": limit}
    if tests_from:
        params["tests_from"] = [_as_param(src) for src in tests_from]
    check_step(run_dir, "prepare", params, force)  # recorded once questions.parquet is written
    tests = attach_tests(rows, tests_from) if tests_from else None
    for row in rows:
        row[C.NO_TESTS] = is_code_row(row) and not row[C.TESTS]
    write_table_atomic(pa.Table.from_pylist(rows, schema=C.PREPARED_QUESTIONS_SCHEMA), out)
    record_step(run_dir, "prepare", params, force)
    families: dict[str, int] = {}
    for row in rows:
        family = C.source_family(row[C.SOURCE])
        families[family] = families.get(family, 0) + 1
    return PrepareReport(path=out, rows=len(rows), bad=bad, families=families, tests=tests,
                         no_tests=sum(row[C.NO_TESTS] for row in rows))


def _as_param(dataset: str) -> str:
    """A local file as its absolute path (the manifest stores it relative when inside the run dir)."""
    src = Path(dataset).expanduser()
    return str(src.resolve()) if src.exists() else dataset
