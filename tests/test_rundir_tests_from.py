"""``vr-tools prepare --tests-from``: APPS / TACO tests attached to code questions by normalised problem text,
the counts printed, the ``no_tests`` flag, the real code verifier grading with them, and build/report
counting the Acc fallbacks of questions left without tests."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from est_rundir import RunBuilder
from vr_plugins import formats
from vr_plugins.report import write_report
from vr_plugins.rundir import columns as C
from vr_tools.cli import cli

DATA = Path(__file__).parent / "data"
CODE_PREFIX = ("Generate an executable Python function generated from the given prompt. The function should take "
               "stdin as input and print the output. Simply call the function after the definition.")
PROBLEMS = {
    "sum": "Given two integers a and b on one line, print their sum.\n\nExample\nInput: 1 2\nOutput: 3\n",
    "double": "Read an integer n from standard input and print 2*n.\n\n-----Example-----\nInput\n4\nOutput\n8\n",
    "ambiguous": "Print the number of vowels in the given lowercase word read from standard input.\n",
    "missing": "Read a string and print it reversed; this problem is in neither APPS nor TACO sources.\n",
}
SUM_PROGRAM = "```python\nprint(sum(map(int, input().split())))\n```"


def _bespoke_code_row(text: str) -> dict:
    reply = formats.ASSISTANT_PREFILL + formats.render_response("think", "```python\nprint(0)\n```")
    return {"system": "s", "conversations": [{"from": "user", "value": CODE_PREFIX + text},
                                              {"from": "assistant", "value": reply}]}


def _io(inputs, outputs, **extra) -> str:
    return json.dumps({"inputs": inputs, "outputs": outputs, **extra})


def _apps_row(pid: int, question: str, input_output: str) -> dict:
    """A row of codeparrot/apps (its jsonl files): problem_id, question, solutions, input_output, ..."""
    return {"problem_id": pid, "question": question, "solutions": "[]", "input_output": input_output,
            "difficulty": "introductory", "url": "u", "starter_code": ""}


def _taco_row(question: str, input_output: str) -> dict:
    """A row of BAAI/TACO (its Parquet shards)."""
    return {"question": question, "solutions": "[]", "starter_code": "", "input_output": input_output,
            "difficulty": "EASY", "raw_tags": "[]", "name": None, "source": "codeforces", "tags": "[]",
            "skill_types": "[]", "url": "u", "Expected Auxiliary Space": None, "time_limit": None, "date": None,
            "picture_num": None, "memory_limit": None, "Expected Time Complexity": None}


def code_sources(tmp_path: Path) -> tuple[Path, Path]:
    apps = tmp_path / "apps" / "train.jsonl"
    apps.parent.mkdir()
    rows = [
        # whitespace and case differ from the Bespoke text: matched after normalisation
        _apps_row(0, "  GIVEN two integers a and b on one line,   print their sum.\nExample\nInput: 1 2\nOutput: 3",
                  _io(["1 2\n", "5 7\n"], ["3\n", "12\n"])),
        # the same text twice with different tests: ambiguous within this source
        _apps_row(1, PROBLEMS["ambiguous"], _io(["abc\n"], ["1\n"])),
        _apps_row(2, PROBLEMS["ambiguous"], _io(["aei\n"], ["3\n"])),
        _apps_row(3, "An unrelated problem without usable tests, long enough to be indexed.", ""),
    ]
    apps.write_text("".join(json.dumps(r) + "\n" for r in rows))
    taco = tmp_path / "taco" / "train-00000-of-00001.parquet"
    taco.parent.mkdir()
    pq.write_table(pa.Table.from_pylist([
        _taco_row(PROBLEMS["double"], _io(["4\n", "10\n"], ["8\n", "20\n"])),
        # TACO repeats the APPS problem with other tests: the first --tests-from (APPS) wins
        _taco_row(PROBLEMS["sum"], _io(["0 0\n"], ["0\n"])),
    ]), taco)
    return apps, taco


def bespoke_with_code(tmp_path: Path) -> Path:
    src = tmp_path / "bespoke.jsonl"
    math = json.loads((DATA / "data_bespoke.jsonl").read_text().splitlines()[0])
    rows = [math] + [_bespoke_code_row(PROBLEMS[k]) for k in ("sum", "double", "ambiguous", "missing")]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return src


def read_questions(run_dir: Path) -> list[dict]:
    return pq.read_table(run_dir / C.QUESTIONS_FILE).to_pylist()


def test_tests_from_apps_and_taco_attach_tests_that_verify_uses(tmp_path):
    from vr_plugins.verify.code import check

    apps, taco = code_sources(tmp_path)
    src = bespoke_with_code(tmp_path)
    plain = tmp_path / "plain"
    assert CliRunner().invoke(cli, ["prepare", "--dataset", str(src), "--run-dir", str(plain)]).exit_code == 0
    before = read_questions(plain)
    assert [r[C.NO_TESTS] for r in before] == [False, True, True, True, True] and before[1][C.TESTS] is None
    assert check(before[1], SUM_PROGRAM)[1].startswith("invalid tests")

    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["prepare", "--dataset", str(src), "--run-dir", str(run),
                                                      "--tests-from", str(apps), "--tests-from", str(taco)])
    assert result.exit_code == 0, result.output
    assert (f"tests attached: 2 code question(s) matched ({apps} 1, {taco} 1), 1 unmatched, 1 ambiguous"
            in result.stdout), result.stdout
    assert "2 code question(s) have no tests (column no_tests)" in result.stderr
    rows = read_questions(run)
    by_text = {r[C.QUESTION][len(CODE_PREFIX):]: r for r in rows[1:]}
    assert json.loads(by_text[PROBLEMS["sum"]][C.TESTS])["inputs"] == ["1 2\n", "5 7\n"]  # APPS first, not TACO's
    assert json.loads(by_text[PROBLEMS["double"]][C.TESTS])["outputs"] == ["8\n", "20\n"]
    assert by_text[PROBLEMS["ambiguous"]][C.TESTS] is None and by_text[PROBLEMS["ambiguous"]][C.NO_TESTS]
    assert by_text[PROBLEMS["missing"]][C.NO_TESTS] and not rows[0][C.NO_TESTS]
    assert not by_text[PROBLEMS["sum"]][C.NO_TESTS] and not by_text[PROBLEMS["double"]][C.NO_TESTS]
    # the real (sandboxed) code verifier grades with the attached tests
    assert check(by_text[PROBLEMS["sum"]], SUM_PROGRAM)[0]
    ok, reason = check(by_text[PROBLEMS["double"]], "```python\nprint(3*int(input()))\n```")
    assert not ok and "invalid tests" not in reason
    manifest = json.loads((run / C.MANIFEST_FILE).read_text())["steps"]["prepare"]["params"]
    assert manifest["tests_from"] == [str(apps), str(taco)]


def test_tests_from_a_file_of_another_layout_or_missing_is_refused(tmp_path):
    src = bespoke_with_code(tmp_path)
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"prompt": "x", "tests": "{}"}) + "\n")
    result = CliRunner().invoke(cli, ["prepare", "--dataset", str(src), "--run-dir", str(tmp_path / "r"),
                                      "--tests-from", str(other)])
    assert result.exit_code == 1 and "other.jsonl: not an APPS/TACO layout" in result.output
    assert "'question' and 'input_output'" in result.output and not (tmp_path / "r" / C.QUESTIONS_FILE).exists()
    result = CliRunner().invoke(cli, ["prepare", "--dataset", str(src), "--run-dir", str(tmp_path / "r"),
                                      "--tests-from", str(tmp_path / "nope" / "train.jsonl")])
    assert result.exit_code == 1 and "train.jsonl: --tests-from file not found" in result.output
    assert not (tmp_path / "r" / C.QUESTIONS_FILE).exists() and not (tmp_path / "r" / C.MANIFEST_FILE).exists()


def _flag_no_tests(run_dir: Path, idx: set[int]) -> None:
    path = run_dir / C.QUESTIONS_FILE
    table = pq.read_table(path)
    flags = pa.array([i in idx for i in table[C.PROMPT_IDX].to_pylist()])
    pq.write_table(table.append_column(C.NO_TESTS, flags), path)


def test_build_and_report_count_acc_fallbacks_of_questions_without_tests(tmp_path):
    b = RunBuilder(tmp_path / "run")
    b.question(0).question(1, "apps").question(2, "apps")
    for i in range(3):
        b.trace(i, 0)
    b.rollouts_for(0, 0, [True, False])
    b.rollouts_for(1, 0, [False, False])  # no tests: every rollout graded invalid -> acc falls back
    b.rollouts_for(2, 0, [True, True])
    run_dir = b.write()
    _flag_no_tests(run_dir, {1})
    result = CliRunner().invoke(cli, ["build", "--run-dir", str(run_dir), "--estimator", "acc"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line.split()[-1] for line in result.output.splitlines() if line.startswith("  ")}
    assert lines["questions_without_tests"] == "1" and lines["fallback_because_no_tests"] == "1"
    gml = CliRunner().invoke(cli, ["build", "--run-dir", str(run_dir), "--estimator", "gml"])
    assert gml.exit_code == 0 and "fallback_because_no_tests" not in gml.output  # gml needs no tests
    path, data = write_report(run_dir, tmp_path / "rep")
    h = dict(data.headline)
    assert h["code questions without tests (no_tests)"] == 1
    assert h["acc: fell back because the question has no tests"] == 1
    fam = {f["family"]: f for f in data.families}
    assert fam["apps"]["no tests"] == 1 and fam["numina"]["no tests"] == 0
    assert "- **no tests**:" in path.read_text()
