"""Attach APPS / TACO unit tests to code questions that carry none (``vr-tools prepare --tests-from``).

The Bespoke-Stratos release keeps the code problems' text but not their tests. APPS (``codeparrot/apps``)
and TACO (``BAAI/TACO``) rows have ``question`` and ``input_output`` (a JSON string
``{"inputs": [...], "outputs": [...], "fn_name"?}``, the layout the code verifier reads). A question is
matched by its normalised text (case folded, runs of whitespace collapsed): the source problem's text
must equal the question's, or end it (Bespoke-Stratos puts the Sky-T1 code instruction in front).
Within one source, a text found with different tests is *ambiguous* and attaches nothing; across
sources the first ``--tests-from`` that matches wins.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

#: a source problem shorter than this (normalised) is never matched as a suffix: too generic
MIN_SUFFIX_CHARS = 40
#: the suffix index key length (characters at the end of the normalised text)
_KEY_CHARS = MIN_SUFFIX_CHARS

_WS = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Whitespace runs -> one space, trimmed, case folded: the matching key of a problem text."""
    return _WS.sub(" ", text).strip().casefold()


@dataclass
class TestSource:
    """Normalised problem text -> tests (None marks a text found with different tests: ambiguous)."""

    name: str
    by_text: dict[str, str | None] = field(default_factory=dict)
    by_tail: dict[str, list[str]] = field(default_factory=dict)
    rows: int = 0
    rows_without_tests: int = 0


def _tests_of(row: dict, where: str) -> str | None:
    value = row.get("input_output")
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        return None  # a few APPS rows have truncated input_output: such a problem has no usable tests
    if not isinstance(parsed, dict) or not {"inputs", "outputs"} <= set(parsed) or not parsed["inputs"]:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def load_source(name: str, records: list[dict]) -> TestSource:
    """Index the rows of one APPS/TACO dataset; raises ValueError naming ``name`` for another layout."""
    from vr_plugins.rundir.io import RunDirError

    if records and not {"question", "input_output"} <= set(records[0]):
        raise RunDirError(f"{name}: not an APPS/TACO layout: expected columns 'question' and 'input_output', "
                          f"found {sorted(records[0])}")
    source = TestSource(name)
    for row in records:
        source.rows += 1
        text = row.get("question")
        tests = _tests_of(row, name)
        if not isinstance(text, str) or not text.strip() or tests is None:
            source.rows_without_tests += 1
            continue
        key = normalise(text)
        if key in source.by_text:
            old = source.by_text[key]
            if old is not None and json.loads(old) != json.loads(tests):
                source.by_text[key] = None  # same text, different tests
            continue
        source.by_text[key] = tests
        if len(key) >= MIN_SUFFIX_CHARS:
            source.by_tail.setdefault(key[-_KEY_CHARS:], []).append(key)
    return source


def lookup(source: TestSource, question: str) -> tuple[str, str | None] | None:
    """("matched", tests) / ("ambiguous", None) / None (no match) for one question text."""
    q = normalise(question)
    keys = [q] if q in source.by_text else [k for k in source.by_tail.get(q[-_KEY_CHARS:], []) if q.endswith(k)]
    if not keys:
        return None
    values = {source.by_text[k] for k in keys}
    if None in values or len({json.dumps(json.loads(v), sort_keys=True) for v in values}) > 1:
        return ("ambiguous", None)
    return ("matched", values.pop())


@dataclass
class AttachCounts:
    matched: int = 0
    unmatched: int = 0
    ambiguous: int = 0
    per_source: dict[str, int] = field(default_factory=dict)


def attach(rows: list[dict], sources: list[TestSource], is_code, question_key: str, tests_key: str) -> AttachCounts:
    """Fill ``rows[i][tests_key]`` for code rows (``is_code(row)``) without tests; returns the counts."""
    counts = AttachCounts(per_source={s.name: 0 for s in sources})
    for row in rows:
        if not is_code(row) or row.get(tests_key):
            continue
        outcome = None
        for source in sources:
            found = lookup(source, row[question_key])
            if found is None:
                continue
            outcome = found
            if found[0] == "matched":
                row[tests_key] = found[1]
                counts.per_source[source.name] += 1
                break
        if outcome is None:
            counts.unmatched += 1
        elif outcome[0] == "matched":
            counts.matched += 1
        else:
            counts.ambiguous += 1
    return counts
