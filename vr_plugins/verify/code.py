"""Code verification: APPS/TACO ``input_output`` tests and LiveCodeBench-style test lists, run in the
sandbox of :mod:`vr_plugins.verify.sandbox`.

Accepted ``tests`` (a JSON string or the decoded object):

- APPS/TACO: ``{"inputs": [...], "outputs": [...], "fn_name": optional}``. Without ``fn_name`` each
  input is fed on stdin and stdout is compared with the output; with it, each input is the argument list
  of ``fn_name`` (a top-level function or a ``Solution`` method) and the return value is compared.
- LiveCodeBench: a list of ``{"input", "output", "testtype": "stdin"|"functional"}``, or
  ``{"public_test_cases": [...], "private_test_cases": [...], "metadata": {"func_name": ...}}`` where
  each list may itself be a JSON string. LiveCodeBench ships private tests as base64/zlib/pickle; that is
  refused (decode it offline into plain JSON): nothing here ever unpickles.

The program is the last fenced code block of the response. Correct only when every test passes; compile
errors, runtime errors, timeouts, wrong answers, missing code and invalid tests are incorrect, with a
reason. Unlike SkyThought's checkers, error codes are never truthy and nothing runs in-process.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace

from vr_plugins.errors import UserError
from vr_plugins.verify.sandbox import Limits, run_program

_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)


class TestFormatError(UserError, ValueError):
    """The ``tests`` value is not one of the accepted formats; the message says what was expected."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class TestSpec:
    __test__ = False
    mode: str  # "stdin" | "call"
    inputs: list
    outputs: list
    fn_name: str | None = None


def extract_code(response: str | None) -> str | None:
    """The last complete fenced code block of a response, or None."""
    blocks = _FENCE.findall(response or "")
    return blocks[-1] if blocks else None


def _as_text(value) -> str:
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)


def _lcb_cases(value, name: str) -> list:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            raise TestFormatError(
                f"{name} is not plain JSON (LiveCodeBench ships private tests as base64/zlib/pickle; decode them "
                f"offline into a JSON list - pickle is never loaded here)") from None
    if not isinstance(value, list) or not all(isinstance(c, dict) and "input" in c and "output" in c for c in value):
        raise TestFormatError(f"{name} must be a list of {{'input', 'output', 'testtype'}} objects")
    return value


def parse_tests(tests) -> TestSpec:
    """Decode a ``tests`` value into a :class:`TestSpec`; :class:`TestFormatError` says what is wrong."""
    if tests is None:
        raise TestFormatError("no tests (the question's tests column is null)")
    if isinstance(tests, (str, bytes)):
        try:
            tests = json.loads(tests)
        except json.JSONDecodeError as exc:
            raise TestFormatError(f"malformed test JSON: {exc}") from None
    fn_name = None
    if isinstance(tests, dict) and ("public_test_cases" in tests or "private_test_cases" in tests):
        cases = _lcb_cases(tests.get("public_test_cases", []), "public_test_cases")
        cases += _lcb_cases(tests.get("private_test_cases", []), "private_test_cases")
        meta = tests.get("metadata") or {}
        if isinstance(meta, str):
            try:
                meta = json.loads(meta) if meta.strip() else {}
            except json.JSONDecodeError:
                raise TestFormatError("metadata is not valid JSON") from None
        fn_name = meta.get("func_name")
        tests = cases
    if isinstance(tests, list):
        cases = _lcb_cases(tests, "test list")
        if not cases:
            raise TestFormatError("the test list is empty")
        functional = [c.get("testtype", "stdin") == "functional" for c in cases]
        if any(functional):
            if not all(functional) or not fn_name:
                raise TestFormatError("functional LiveCodeBench tests need metadata.func_name and no stdin tests mixed in")
            try:
                inputs = [[json.loads(line) for line in c["input"].split("\n") if line.strip()] for c in cases]
                outputs = [json.loads(c["output"]) for c in cases]
            except json.JSONDecodeError as exc:
                raise TestFormatError(f"functional test arguments are not JSON lines: {exc}") from None
            return TestSpec("call", inputs, outputs, fn_name)
        return TestSpec("stdin", [_as_text(c["input"]) for c in cases], [_as_text(c["output"]) for c in cases])
    if not isinstance(tests, dict) or not {"inputs", "outputs"} <= set(tests):
        raise TestFormatError(
            "expected APPS/TACO {'inputs': [...], 'outputs': [...], 'fn_name'?} or a LiveCodeBench test list; "
            f"got {type(tests).__name__}" + (f" with keys {sorted(tests)}" if isinstance(tests, dict) else ""))
    inputs, outputs = tests["inputs"], tests["outputs"]
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs) or not inputs:
        raise TestFormatError("'inputs' and 'outputs' must be non-empty lists of the same length")
    fn_name = tests.get("fn_name")
    if fn_name:
        return TestSpec("call", [a if isinstance(a, list) else [a] for a in inputs], outputs, fn_name)
    return TestSpec("stdin", [_as_text(i) for i in inputs], [_as_text(o) for o in outputs])


# --- judging (here, in the trusted parent) --------------------------------------------------------
def _float(token: str):
    try:
        return float(token)
    except ValueError:
        return None


def stdout_matches(got: str, want: str) -> bool:
    """APPS-style leniency: trailing whitespace and blank lines ignored, then whitespace-separated tokens,
    numbers equal within 1e-6 relative / absolute tolerance."""
    if got == want:
        return True
    norm = lambda s: [line.rstrip() for line in s.strip().splitlines()]  # noqa: E731
    if norm(got) == norm(want):
        return True
    gt, wt = got.split(), want.split()
    if len(gt) != len(wt):
        return False
    for a, b in zip(gt, wt):
        if a != b:
            fa, fb = _float(a), _float(b)
            if fa is None or fb is None or not math.isclose(fa, fb, rel_tol=1e-6, abs_tol=1e-6):
                return False
    return True


def _values_equal(got, want) -> bool:
    if isinstance(got, bool) or isinstance(want, bool):
        return got is want
    if isinstance(got, float) or isinstance(want, float):
        return (isinstance(got, (int, float)) and isinstance(want, (int, float))
                and math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9))
    if isinstance(got, list) and isinstance(want, list):
        return len(got) == len(want) and all(_values_equal(a, b) for a, b in zip(got, want))
    return got == want


def return_matches(got, want) -> bool:
    """A call's JSON result against the expected value (APPS wraps expected values in a list)."""
    return _values_equal(got, want) or _values_equal([got], want)


def _judge(spec: TestSpec):
    def judge(i: int, data: bytes):
        if spec.mode == "stdin":
            got = data.decode("utf-8", "replace")
            if stdout_matches(got, spec.outputs[i]):
                return True, ""
            return False, f"expected {spec.outputs[i][:60]!r}, got {got[:60]!r}"
        try:
            got = json.loads(data)
        except ValueError:
            return False, "the result could not be read"
        if return_matches(got, spec.outputs[i]):
            return True, ""
        return False, f"expected {json.dumps(spec.outputs[i])[:60]}, got {json.dumps(got)[:60]}"

    return judge


def grade_code(response: str, tests, *, timeout_s: float = 6.0, memory_mb: int = 2048,
               limits: Limits | None = None) -> tuple[bool, str]:
    """Run the last fenced code block of ``response`` on ``tests`` in the sandbox.

    ``timeout_s`` is per test (all tests of a program share one sandboxed interpreter; the wall-clock
    limit of that interpreter is the sum). Returns ``(correct, reason)``.
    """
    try:
        spec = parse_tests(tests)
    except TestFormatError as exc:
        return False, f"invalid tests: {exc}"
    code = extract_code(response)
    if code is None or not code.strip():
        return False, "no code block in the response"
    limits = replace(limits or Limits(), timeout_s=timeout_s, memory_mb=memory_mb)
    report = run_program(code, spec.inputs, _judge(spec), mode=spec.mode, fn_name=spec.fn_name, limits=limits)
    return report.passed, report.reason


def check(question_row: dict, response: str, options: dict | None = None) -> tuple[bool, str]:
    """The :class:`vr_plugins.types.Verifier` entry point for code families.

    Options: ``code_timeout_s`` (per test), ``memory_mb``, ``sandbox`` (other :class:`Limits` fields)."""
    from vr_plugins.rundir.columns import TESTS

    options = options or {}
    return grade_code(response, question_row.get(TESTS), timeout_s=float(options.get("code_timeout_s", 6.0)),
                      memory_mb=int(options.get("memory_mb", 2048)), limits=Limits(**options.get("sandbox", {})))
