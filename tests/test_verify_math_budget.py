"""Math checks in the check pool: a CPU budget that load cannot flip, timeouts reported as such, and bad
input (malformed LaTeX, unbalanced braces, a megabyte of digits, ``\\boxed`` nested 1,000 deep) graded
incorrect with a reason, within the budget, never a crash."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from vr_plugins.verify.math import grade_math
from vr_plugins.verify.pool import CheckPool, Item, process_cpu_seconds

TARGET = "vr_plugins.verify.math:grade_math"

#: ordinary items (response, gold): a mix of exact numbers, symbolic work for sympy, sets and misses
ORDINARY = ([(rf"\boxed{{{a * b}}}", str(a * b)) for a, b in ((3, 7), (12, 12), (25, 4))] + [
    (r"\boxed{(x+1)^2}", "x^2+2x+1"), (r"\boxed{(x+2)^3}", "x^3+6x^2+12x+8"), (r"\boxed{\frac{\sqrt2}{2}}", r"\frac{1}{\sqrt2}"),
    (r"\boxed{\{3,1,2\}}", r"\{1,2,3\}"), (r"\boxed{x \ge 2}", r"x \le 2"), (r"\boxed{(0,1]}", "[0,1]"),
    (r"\boxed{\sin^2 x+\cos^2 x}", "1"), (r"\boxed{\frac{x^2-1}{x-1}}", "x+1"), (r"\boxed{2\sqrt{3}}", r"\sqrt{12}"),
    (r"\boxed{\begin{pmatrix}1&2\\3&4\end{pmatrix}}", r"\begin{pmatrix}1&2\\3&5\end{pmatrix}"),
    ("The answer is 7,425,000.", "7425000"), (r"\boxed{(x-3)(x+3)}", "x^2-9"), (r"\boxed{\log_2 64}", "6"),
]) * 2

#: (name, response): each must be graded incorrect with a reason, by a live worker, inside the budget
BAD = {
    "malformed latex": r"\boxed{\frac{1}{}^^_\sqrt}",
    "mismatched environment": r"\boxed{\begin{pmatrix}1&2\end{bmatrix}}",
    "unbalanced braces": r"\boxed{\frac{1}{2}}}} and {{{\boxed{{3}",
    "unclosed box": r"so the answer is \boxed{\frac{1}{2",
    "megabyte of digits (boxed)": r"\boxed{" + "9" * 1_000_000 + "}",
    "megabyte of digits (unboxed)": "7" * 1_000_000,
    "boxes nested 1000 deep": r"\boxed{" * 1000 + "1" + "}" * 1000,
    "braces nested 5000 deep": r"\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    "braces nested 300 deep": r"\boxed{" + "{" * 300 + "1" + "}" * 300 + "}",
}


def _grades(pool, items, cpu_s):
    outs = {o.key: o for o in pool.run(Item(i, [r, g], 60.0, cpu_s) for i, (r, g) in enumerate(items))}
    return {k: (o.correct, o.status) for k, o in outs.items()}, outs


def test_process_cpu_seconds_reads_this_process():
    before = process_cpu_seconds(__import__("os").getpid())
    sum(i * i for i in range(2_000_000))
    assert before is not None and process_cpu_seconds(__import__("os").getpid()) > before


def test_cpu_budget_kills_a_never_ending_check_and_says_so():
    with CheckPool(TARGET, workers=1) as pool:
        start = time.monotonic()
        out = list(pool.run([Item("hang", [r"\boxed{9^{9^{9^{9}}}}", "7"], 60.0, 1.0)]))[0]
        took = time.monotonic() - start
        assert out.status == "timeout" and out.correct is False
        assert out.reason == "timeout: check used 1 s of CPU (worker killed)"
        assert took < 30, took  # the CPU budget fired, not the 60 s backstop
        again = list(pool.run([Item("ok", [r"\boxed{7}", "7"], 60.0, 1.0)]))[0]  # the replacement works
        assert again.correct is True and pool.restarts == 1


def test_wall_clock_backstop_still_applies_to_a_check_that_uses_no_cpu():
    with CheckPool("time:sleep", workers=1) as pool:
        out = list(pool.run([Item("sleeper", [30], 1.0, 10.0)]))[0]
    assert out.status == "timeout" and out.reason == "timeout: wall-clock backstop 1 s (worker killed)"


def test_same_grades_under_cpu_load():
    """4 busy processes on top of the 2 workers: CPU budgets grade exactly as on the idle machine."""
    with CheckPool(TARGET, workers=2) as pool:
        idle, _ = _grades(pool, ORDINARY, 2.0)
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
        try:
            time.sleep(0.3)
            loaded, outs = _grades(pool, ORDINARY, 2.0)
        finally:
            for h in hogs:
                h.kill()
            for h in hogs:
                h.wait()
    assert loaded == idle, {k: (idle[k], loaded[k], outs[k].reason) for k in idle if idle[k] != loaded[k]}
    assert all(status == "ok" for _, status in idle.values())
    assert sum(c for c, _ in idle.values()) == 2 * 13  # the 13 right answers of each copy, and no wrong one


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_is_incorrect_with_a_reason_within_budget(name):
    response = BAD[name]
    start = time.monotonic()
    correct, reason = grade_math(response, "1")
    assert correct is False and reason
    assert time.monotonic() - start < 5, name  # in-process: fast, no pool needed to stay in budget
    for backend in ("skythought", "math_verify"):
        if "deep" in name or "megabyte" in name:
            continue  # the parity backends have no such guards: the pool's budget is what bounds them
        assert grade_math(response, "1", backend=backend)[0] is False


def test_bad_input_in_the_pool_never_crashes_a_worker():
    with CheckPool(TARGET, workers=1) as pool:
        outs = {o.key: o for o in pool.run(Item(name, [text, "1"], 60.0, 5.0) for name, text in BAD.items())}
        assert pool.restarts == 0
    for name, out in outs.items():
        assert out.status == "ok" and out.correct is False, (name, out)
    assert "bad input" in outs["megabyte of digits (boxed)"].reason
    assert "bad input" in outs["boxes nested 1000 deep"].reason and "nests braces 300 deep" in outs["braces nested 300 deep"].reason
    assert "never closes" in outs["unclosed box"].reason
