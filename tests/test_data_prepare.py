"""``vr-tools prepare``: Bespoke-Stratos and generic layouts, bad rows, --strict, manifest (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from vr_plugins import formats
from vr_plugins.data.prepare import guess_family, last_boxed
from vr_plugins.rundir import columns as C
from vr_tools.cli import cli

DATA = Path(__file__).parent / "data"


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def read_questions(run_dir: Path) -> list[dict]:
    return pq.read_table(run_dir / C.QUESTIONS_FILE).to_pylist()


def test_bespoke_layout_splits_think_and_solution_exactly(tmp_path):
    result = invoke("prepare", "--dataset", DATA / "data_bespoke.jsonl", "--run-dir", tmp_path)
    assert result.exit_code == 0, result.output
    rows = read_questions(tmp_path)
    source_rows = [json.loads(line) for line in (DATA / "data_bespoke.jsonl").read_text().splitlines()]
    assert [r[C.PROMPT_IDX] for r in rows] == [0, 1, 2, 3]
    for row, src in zip(rows, source_rows):
        turns = {t["from"]: t["value"] for t in src["conversations"]}
        assert row[C.QUESTION] == turns["user"]
        # the pieces are kept raw: prefill + reference layout reproduces the assistant turn byte for byte
        assert formats.ASSISTANT_PREFILL + formats.render_response(row[C.REFERENCE_THINK], row[C.REFERENCE_SOLUTION]) == turns["assistant"]
        assert formats.END_OF_THOUGHT not in row[C.REFERENCE_THINK]
    assert [r[C.SOURCE] for r in rows] == ["numina/0", "apps/0", "numina/1", "numina/2"]
    # gold answers from the LAST \boxed{} with nested braces; none for code
    assert [r[C.GOLD_ANSWER] for r in rows] == ["5", None, "1", "(0, \\infty)"]
    assert pq.read_schema(tmp_path / C.QUESTIONS_FILE).field(C.PROMPT_IDX).type == "int64"


def test_source_family_option_overrides_the_guess(tmp_path):
    result = invoke("prepare", "--dataset", DATA / "data_bespoke.jsonl", "--run-dir", tmp_path, "--source-family", "ruc")
    assert result.exit_code == 0, result.output
    assert [r[C.SOURCE] for r in read_questions(tmp_path)] == ["ruc/0", "ruc/1", "ruc/2", "ruc/3"]


def test_generic_layout_keeps_ids_sources_tests_and_reports_bad_rows(tmp_path):
    result = invoke("prepare", "--dataset", DATA / "data_generic.jsonl", "--run-dir", tmp_path)
    assert result.exit_code == 0, result.output
    rows = read_questions(tmp_path)
    assert [r[C.PROMPT_IDX] for r in rows] == [10, 11, 12]
    assert [r[C.SOURCE] for r in rows] == ["numina/7", "taco/0", "ruc/0"]
    assert [r[C.GOLD_ANSWER] for r in rows] == ["2", None, "CO2"]  # derived, code, given
    assert json.loads(rows[1][C.TESTS]) == {"inputs": ["a\n"], "outputs": ["a\na\n"]}
    assert "row 3: duplicate prompt_idx 10 (first at row 0)" in result.stderr
    assert "row 4: empty question" in result.stderr
    assert "2 bad row(s)" in result.output


def test_malformed_bespoke_rows_are_reported_with_index_and_reason(tmp_path):
    result = invoke("prepare", "--dataset", DATA / "data_bespoke_malformed.jsonl", "--run-dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "row 1: assistant turn lacks the marker <|begin_of_thought|>" in result.stderr
    assert "row 2: empty think" in result.stderr
    assert "row 3: assistant turn lacks the marker <|end_of_solution|>" in result.stderr
    assert "row 4: no user turn with a question" in result.stderr
    assert [r[C.PROMPT_IDX] for r in read_questions(tmp_path)] == [0, 5]  # prompt_idx = input row order


def test_strict_makes_bad_rows_fatal_and_writes_nothing(tmp_path):
    result = invoke("prepare", "--dataset", DATA / "data_bespoke_malformed.jsonl", "--run-dir", tmp_path, "--strict")
    assert result.exit_code != 0
    assert "data_bespoke_malformed.jsonl: 4 bad row(s)" in result.output and "row 2: empty think" in result.output
    assert not (tmp_path / C.QUESTIONS_FILE).exists() and not (tmp_path / C.MANIFEST_FILE).exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "no rows"),
        ('{"foo": 1}\n', "cannot tell the layout"),
        ('{"question": "q"\n', "line 1 is not valid JSON"),
    ],
)
def test_unusable_files_fail_naming_the_file(tmp_path, content, message):
    src = tmp_path / "in.jsonl"
    src.write_text(content)
    result = invoke("prepare", "--dataset", src, "--run-dir", tmp_path / "run")
    assert result.exit_code != 0 and message in result.output and "in.jsonl" in result.output
    assert not (tmp_path / "run" / C.QUESTIONS_FILE).exists()


def test_missing_dataset_file(tmp_path):
    result = invoke("prepare", "--dataset", tmp_path / "nope.parquet", "--run-dir", tmp_path)
    assert result.exit_code != 0 and "nope.parquet: dataset file not found" in result.output


def test_parquet_input_and_manifest_refuses_other_parameters(tmp_path):
    import pyarrow as pa

    records = [json.loads(line) for line in (DATA / "data_questions.jsonl").read_text().splitlines()]
    for r in records:
        r["tests"] = json.dumps(r["tests"]) if "tests" in r else None
    src = tmp_path / "q.parquet"
    pq.write_table(pa.Table.from_pylist(records), src)
    run = tmp_path / "run"
    assert invoke("prepare", "--dataset", src, "--run-dir", run).exit_code == 0
    assert len(read_questions(run)) == 6
    refused = invoke("prepare", "--dataset", src, "--run-dir", run, "--limit", 2)
    assert refused.exit_code != 0 and "limit: recorded None, now 2" in refused.output
    assert len(read_questions(run)) == 6  # untouched
    forced = invoke("prepare", "--dataset", src, "--run-dir", run, "--limit", 2, "--force")
    assert forced.exit_code == 0 and len(read_questions(run)) == 2


def test_last_boxed_and_family_guess():
    assert last_boxed("a \\boxed{1} then \\boxed{\\frac{a}{b^{2}}} end") == "\\frac{a}{b^{2}}"
    assert last_boxed("\\boxed {x}") == "x"
    assert last_boxed("no box here") is None
    assert last_boxed("broken \\boxed{unclosed") is None
    assert guess_family("Generate an executable Python function generated from the given prompt. Do X.") == "apps"
    assert guess_family("Return your final response within \\boxed{}. 1+1?") == "numina"


def test_bespoke_rows_keep_their_own_source_gold_answer_and_tests(tmp_path):
    """The bundled demo data is in the Bespoke layout with per-row source/gold_answer/tests fields."""
    from vr_plugins.demo import DEMO_DIR

    dataset = DEMO_DIR / "data" / "train.jsonl"
    result = invoke("prepare", "--dataset", dataset, "--run-dir", tmp_path)
    assert result.exit_code == 0, result.output
    rows = read_questions(tmp_path)
    src = [json.loads(line) for line in dataset.read_text().splitlines()]
    assert [r[C.SOURCE] for r in rows] == [s["source"] for s in src]
    assert [r[C.GOLD_ANSWER] for r in rows] == [s["gold_answer"] for s in src]
    assert [r[C.TESTS] for r in rows] == [s["tests"] for s in src]
    assert {C.source_family(r[C.SOURCE]) for r in rows} == {"numina", "ruc", "apps"}
    assert all(json.loads(r[C.TESTS])["inputs"] for r in rows if r[C.SOURCE].startswith("apps/"))
