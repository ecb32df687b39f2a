"""Code verification: test formats (APPS/TACO stdin and call-based, LiveCodeBench stdin and functional),
the last fenced block, every failure kind graded incorrect with a reason, invalid tests never passing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vr_plugins.verify.code import (TestFormatError, extract_code, grade_code, parse_tests, return_matches,
                                    stdout_matches)

CASES = json.loads((Path(__file__).parent / "data" / "verify_code_cases.json").read_text())
STDIN = {"inputs": ["1 2\n", "3 4\n"], "outputs": ["3\n", "7\n"]}


def fence(code: str, lang: str = "python") -> str:
    return f"Here is my solution.\n```{lang}\n{code}\n```\n"


@pytest.mark.parametrize("name", sorted(CASES))
def test_formats_good_passes_and_wrong_fails(name):
    case = CASES[name]
    for tests in (case["tests"], json.dumps(case["tests"])):  # decoded object or the JSON column value
        ok, reason = grade_code(fence(case["good"]), tests, timeout_s=2)
        assert ok is True, reason
    ok, reason = grade_code(fence(case["wrong"]), json.dumps(case["tests"]), timeout_s=2)
    assert ok is False and reason.startswith("wrong answer on test"), reason


@pytest.mark.parametrize("code,expect", [
    ("a, b = map(int, input().split()\nprint(a + b)", "compile error"),
    ("a, b = map(int, input().split())\nprint(a + b)\nraise ValueError('late')", "runtime error on test 0: ValueError"),
    ("import sys\na, b = map(int, input().split())\nprint(a + b)\nsys.exit(3)", "runtime error on test 0: exit status 3"),
    ("a, b = map(int, input().split())\nif a == 3:\n    while True: pass\nprint(a + b)", "timeout on test 1"),
    ("a, b = map(int, input().split())\nprint(a * b)", "wrong answer on test 0"),
    ("print(undefined_name)", "runtime error on test 0: NameError"),
])
def test_failures_are_incorrect_with_a_reason(code, expect):
    """SkyThought 0.1.0 grades runtime errors, syntax errors and timeouts as correct; these must not be."""
    ok, reason = grade_code(fence(code), STDIN, timeout_s=1)
    assert ok is False and reason.startswith(expect), reason


def test_program_input_styles_and_exit_paths():
    for code in ["import sys\na, b = map(int, sys.stdin.buffer.read().split())\nsys.stdout.write(f'{a+b}\\n')",
                 "a, b = map(int, open(0).read().split())\nprint(a + b)",
                 "import sys\ndef main():\n    a, b = map(int, sys.stdin.readline().split())\n    print(a + b)\n"
                 "if __name__ == '__main__':\n    main()\n    sys.exit(0)",
                 "import os, sys\na, b = map(int, input().split())\nprint(a + b)\nsys.stdout.flush()\nos._exit(0)"]:
        ok, reason = grade_code(fence(code), STDIN, timeout_s=2)
        assert ok is True, (code, reason)


def test_the_last_fenced_block_is_the_program():
    response = fence("print('draft')") + "Better:\n" + fence("a, b = map(int, input().split())\nprint(a + b)", "py")
    assert extract_code(response).startswith("a, b")
    assert grade_code(response, STDIN, timeout_s=2)[0] is True
    assert extract_code("```python\nprint(1)") is None  # unterminated: no complete block


@pytest.mark.parametrize("response,expect", [
    ("I would print the sum.", "no code block in the response"),
    ("```python\n\n```", "no code block in the response"),
    ("", "no code block in the response"),
])
def test_missing_code(response, expect):
    assert grade_code(response, STDIN) == (False, expect)


@pytest.mark.parametrize("tests,expect", [
    ("{not json", "malformed test JSON"),
    (None, "no tests"),
    (json.dumps({"inputs": ["1"]}), "expected APPS/TACO"),
    (json.dumps({"inputs": ["1", "2"], "outputs": ["1"]}), "same length"),
    (json.dumps({"inputs": [], "outputs": []}), "non-empty"),
    (json.dumps([]), "empty"),
    (json.dumps({"public_test_cases": "[]", "private_test_cases": "eJzLSM3JyVcozy/KSQEAGgQEXQ=="}), "pickle is never loaded"),
    (json.dumps([{"input": "1", "output": "2", "testtype": "functional"}]), "func_name"),
    (json.dumps(42), "expected APPS/TACO"),
])
def test_invalid_tests_are_a_reason_never_a_pass(tests, expect):
    ok, reason = grade_code(fence("print(1)"), tests)
    assert ok is False and reason.startswith("invalid tests") and expect in reason, reason
    with pytest.raises(TestFormatError):
        parse_tests(tests)


def test_parse_tests_shapes():
    spec = parse_tests(CASES["lcb_functional"]["tests"])
    assert spec.mode == "call" and spec.fn_name == "addAll" and spec.inputs == [[[1, 2, 3], 2], [[], 7]]
    spec = parse_tests({"inputs": [["1", "2"]], "outputs": [["3"]]})  # APPS line lists
    assert spec.mode == "stdin" and spec.inputs == ["1\n2"] and spec.outputs == ["3"]
    spec = parse_tests({"inputs": [5], "outputs": [25], "fn_name": "sq"})
    assert spec.inputs == [[5]]


def test_output_comparison_rules():
    assert stdout_matches("3\n", "3") and stdout_matches("1 2  \n\n", "1 2\n")
    assert stdout_matches("0.3333333\n", "0.333333333") and not stdout_matches("0.34", "0.333333333")
    assert not stdout_matches("1 2", "1 2 3") and not stdout_matches("YES", "yes")
    assert return_matches([0, 1], [[0, 1]]) and return_matches(3, 3) and not return_matches(True, 1)
    assert return_matches(0.1 + 0.2, 0.3) and not return_matches("3", 3)


def test_memory_limit_is_configurable():
    code = "x = bytearray(400 << 20)\nprint(sum(map(int, input().split())))"
    assert grade_code(fence(code), STDIN, timeout_s=2, memory_mb=1024)[0] is True
    ok, reason = grade_code(fence(code), STDIN, timeout_s=2, memory_mb=200)
    assert ok is False and "MemoryError" in reason


def test_code_verifier_entry_point():
    from vr_plugins.registry import get_verifier_for_family
    from vr_plugins.types import resolve

    check = resolve(get_verifier_for_family("taco").check)
    row = {"tests": json.dumps(STDIN), "source": "taco/3"}
    assert check(row, fence("a, b = map(int, input().split())\nprint(a + b)"), {"code_timeout_s": 2})[0] is True
    assert check({"tests": None}, fence("print(1)"), {}) == (False, "invalid tests: no tests (the question's tests column is null)")
