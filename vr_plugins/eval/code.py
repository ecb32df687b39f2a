"""LiveCodeBench rows -> SkyThought examples, and grading through the project's code sandbox.

A LiveCodeBench problem is either stdin/stdout (``testtype: stdin``) or functional (LeetCode style: a
``class Solution`` method named in ``starter_code``, each test input one JSON value per line, the output
one JSON value). Both are converted to the APPS ``input_output`` layout that
:func:`vr_plugins.verify.code.grade_code` runs: ``{"inputs": [...], "outputs": [...]}`` plus ``fn_name``
for functional problems. Like SkyThought, the hidden (private) tests are what is graded.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vr_plugins.eval.data import EvalDataError, decode_lcb_tests

_DEF = re.compile(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)


def _is_stdin(public_tests: list[dict[str, Any]], private_tests: list[dict[str, Any]]) -> bool:
    kinds = {t.get("testtype") for t in public_tests + private_tests}
    return "stdin" in kinds


def lcb_example(row: dict[str, Any], where: str) -> dict[str, Any]:
    """One LiveCodeBench hub row as SkyThought's example dict (``map_to_example``), tests decoded safely."""
    public = decode_lcb_tests(row["public_test_cases"], f"{where} public_test_cases")
    private = decode_lcb_tests(row["private_test_cases"], f"{where} private_test_cases")
    return {
        "prompt": row["question_content"],
        "test": private,
        "entry_point": row["starter_code"],
        "task_id": row["question_id"],
        "is_stdin": _is_stdin(public, private),
        "public_test_cases": json.dumps(public, ensure_ascii=False),
        "difficulty": row["difficulty"],
        "_index": row["_index"],
    }


def function_name(starter_code: str) -> str:
    match = _DEF.search(starter_code or "")
    if not match:
        raise EvalDataError(f"functional LiveCodeBench problem without a 'def name(' in starter_code: {starter_code!r:.80}")
    return match.group(1)


def _json_value(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvalDataError(f"{where}: functional test value is not JSON ({exc.msg}): {text[:80]!r}") from None


def to_input_output(problem: dict[str, Any]) -> dict[str, Any]:
    """The APPS ``input_output`` dict for a SkyThought LiveCodeBench example (``test`` = its tests)."""
    tests = problem["test"]
    tests = tests.tolist() if hasattr(tests, "tolist") else list(tests)
    if not tests:
        raise EvalDataError(f"LiveCodeBench problem {problem.get('task_id')!r} has no tests")
    if problem["is_stdin"]:
        return {"inputs": [t["input"] for t in tests], "outputs": [t["output"] for t in tests]}
    where = f"LiveCodeBench problem {problem.get('task_id')!r}"
    inputs = [[_json_value(line, where) for line in t["input"].split("\n") if line.strip()] for t in tests]
    outputs = [_json_value(t["output"], where) for t in tests]
    return {"fn_name": function_name(problem["entry_point"]), "inputs": inputs, "outputs": outputs}


def called_function(code: str | None, starter_name: str) -> str:
    """Which function a functional test calls in ``code``.

    SkyThought's prompt for functional problems does not show the starter code, and its checker called
    the first function the program defines, whatever its name. Kept here, in a stricter form: the
    starter-code name when the program defines it (top level or as a ``Solution`` method), otherwise the
    first top-level function. The code is only parsed (``ast``), never run, in this process.
    """
    import ast

    try:
        tree = ast.parse(code or "")
    except Exception:  # noqa: BLE001 - syntax errors are reported by the sandbox run itself
        return starter_name
    top = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    methods = [
        m.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Solution"
        for m in n.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    if starter_name in top or starter_name in methods or not top:
        return starter_name
    return top[0]


def grade_lcb(problem: dict[str, Any], response: str, *, timeout_s: float, memory_mb: int) -> tuple[bool, str]:
    """Run the response's last fenced code block against the problem's tests in the sandbox."""
    from vr_plugins.verify.code import extract_code, grade_code

    try:
        tests = to_input_output(problem)
    except EvalDataError as exc:
        return False, f"unusable tests: {exc}"
    if "fn_name" in tests:
        tests["fn_name"] = called_function(extract_code(response), tests["fn_name"])
    return grade_code(response, tests, timeout_s=timeout_s, memory_mb=memory_mb)
