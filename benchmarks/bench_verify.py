"""Verification throughput against SkyThought's own checker paths, measured in the same run.

Math: 2,000 generations (1% pathological: sympy expansions/factorials that take SkyThought seconds each)
graded by the default ``vr`` grader in our CheckPool (a CPU-time budget per item, hard kill) vs
SkyThought's scoring path (a ProcessPoolExecutor submitting MathTaskHandler.check_correctness's calls,
one future per response), both with the same number of worker processes, through ``harness.compare``
(sides alternate, >= 3 repetitions, min and median of the ratios). Also reports whether our grades
were identical in every repetition (they ran at different machine loads).

Code: 200 trivial stdin programs (3 tests each) graded in our sandbox (one bubblewrap sandbox per
program, every layer on, a fork per test) against the floor (cores / median start-up of a bare
``python -I -S -c pass``) and against SkyThought's APPSTaskHandler.check_correctness (a Manager and a
Process per check, code run in-process behind reliability_guard), with the same concurrency, interleaved
(harness.compare); then the sequential cost per program as layers are added. Also counts how many
crashing programs each grades correct (SkyThought 0.1.0 treats error codes as truthy).

Run: ``python benchmarks/bench_verify.py [--workers 2] [--math-n 2000] [--code-n 200] [--timeout 1]
[--repeats 3] [--only math|code]``.
Prints checks/s for each side and the ratio ours/SkyThought (> 1: ours faster); exits 0.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

PATHOLOGICAL = [r"x^{300}-(x+1)^{300}", r"(3 \cdot 10^{5})!", r"(x+1)^{150}-x^{150}", r"2^{2^{22}}"]


def skythought_math_check(generation: str, gold: str) -> bool:
    """MathTaskHandler.check_correctness, verbatim (skythought/evals/tasks/math/math_handler.py)."""
    from skythought.evals.util.math_parsing_util import extract_answer, math_equal, strip_answer_string

    answer = strip_answer_string(gold)
    pred = strip_answer_string(extract_answer(generation))
    return bool(math_equal(pred, answer))


def _quiet_worker():
    from vr_plugins.verify.math_libs import quiet_antlr

    quiet_antlr()


def math_items(n: int, seed: int = 0):
    rng = random.Random(seed)
    items = []
    for i in range(n):
        a, b = rng.randint(1, 50), rng.randint(2, 50)
        kind = i % 5
        if kind == 0:
            gold, resp = str(a * b), rf"Multiplying, the result is \boxed{{{a * b}}}."
        elif kind == 1:
            gold, resp = rf"\frac{{{a}}}{{{b}}}", rf"So the ratio is \boxed{{\dfrac{{{a}}}{{{b}}}}}."
        elif kind == 2:
            gold, resp = f"{a / b:.4f}", rf"\boxed{{\frac{{{a}}}{{{b}}}}}"
        elif kind == 3:
            gold, resp = f"({a}, {b})", rf"The point is \boxed{{({a},{b + (i % 2)})}}"
        else:
            gold, resp = rf"x^{{2}}+{2 * a}x+{a * a}", rf"Expanding gives \boxed{{(x+{a})^2}}"
        items.append((resp, gold))
    step = max(1, n // max(1, n // 100))  # 1% pathological, spread out
    for k, i in enumerate(range(step // 2, n, step)):
        items[i] = (rf"Hence \boxed{{{PATHOLOGICAL[k % len(PATHOLOGICAL)]}}}", "7")
    return items


def bench_math(n: int, workers: int, timeout_s: float, repeats: int = 3) -> dict:
    """Ours (the default ``vr`` grader in the CheckPool, CPU budget ``timeout_s`` per item) vs SkyThought's
    scoring path, both pools started once and kept warm, compared by ``harness.compare`` (sides
    alternate, ``repeats`` >= 3 repetitions over all ``n`` items, min and median of the ratios)."""
    from harness import compare

    from vr_plugins.verify.pool import CheckPool, Item
    from vr_plugins.verify.step import math_backstop_s

    items = math_items(n)
    normal = [i for i, (r, _) in enumerate(items) if not any(p in r for p in PATHOLOGICAL)]
    state = {"ours": [], "sky": []}
    with CheckPool("vr_plugins.verify.math:grade_math", workers=workers) as pool, \
            ProcessPoolExecutor(max_workers=workers, initializer=_quiet_worker) as ex:
        list(pool.run([Item(-1, [r"\boxed{1}", "1"], 60.0)] * workers))  # both pools started and warm
        list(ex.map(skythought_math_check, [r"\boxed{1}"] * workers, ["1"] * workers))

        def ours() -> dict:
            t = time.perf_counter()
            outs = {o.key: o for o in pool.run(Item(i, list(items[i]), math_backstop_s(timeout_s), timeout_s)
                                               for i in range(n))}
            seconds = time.perf_counter() - t
            state["ours"].append(outs)
            return {"checks_per_s": n / seconds, "seconds": seconds}

        def skythought() -> dict:
            t = time.perf_counter()
            futures = {i: ex.submit(skythought_math_check, *items[i]) for i in range(n)}
            theirs = {i: f.result() for i, f in futures.items()}
            seconds = time.perf_counter() - t
            state["sky"].append(theirs)
            return {"checks_per_s": n / seconds, "seconds": seconds}

        result = compare(f"verify math ({n} generations, 1% pathological, {workers} workers)",
                         {"ours": ours, "skythought": skythought}, metrics={"checks_per_s": "higher"},
                         repeats=repeats, targets={"checks_per_s": ">= 1.0"})
        restarts = pool.restarts
        t = time.perf_counter()
        hang = list(pool.run([Item("hang", [r"\boxed{9^{9^{9^{9}}}}", "7"], math_backstop_s(timeout_s), timeout_s)]))[0]
        hang_s = time.perf_counter() - t
    runs = state["ours"]
    grades = [{i: (o.correct, o.status) for i, o in outs.items()} for outs in runs]
    stable = all(g == grades[0] for g in grades[1:])  # the repetitions ran at different loads
    last, sky = runs[-1], state["sky"][-1]
    return {"n": n, "result": result, "agree": sum(last[i].correct == sky[i] for i in normal), "normal": len(normal),
            "timeouts": sum(o.status == "timeout" for o in last.values()),
            "normal_timeouts": sum(last[i].status == "timeout" for i in normal), "restarts": restarts,
            "stable": stable, "hang_s": hang_s, "hang": hang.reason,
            "disagree": [(items[i], last[i].reason) for i in normal if last[i].correct != sky[i]][:3]}


def code_problem(i: int):
    tests = {"inputs": [f"{i} {k}\n" for k in range(3)], "outputs": [f"{i + k}\n" for k in range(3)]}
    return tests, "a, b = map(int, input().split())\nprint(a + b)"


def skythought_apps_check(tests: dict, code: str) -> bool:
    from skythought.evals.tasks.apps.apps_handler import APPSTaskHandler

    problem = {"input_output": tests, "solutions": ""}
    return APPSTaskHandler.check_correctness(None, problem, code)  # `self` is unused by the method


def _code_items(problems, opts, code_of=None):
    from vr_plugins.verify.pool import Item

    return [Item(i, [{"tests": json.dumps(tests)}, f"```python\n{code_of or code}\n```", opts], 60.0)
            for i, (tests, code) in enumerate(problems)]


def bench_code(n: int, workers: int) -> dict:
    """Our pool with every sandbox layer on vs SkyThought's checker, one run each (see bench_code_compare)."""
    from vr_plugins.verify.pool import CheckPool
    from vr_plugins.verify.sandbox import probe_isolation

    problems = [code_problem(i) for i in range(n)]
    crashing = "a, b = map(int, input().split())\nraise RuntimeError('crash')"
    opts = {"code_timeout_s": 6.0}
    with CheckPool("vr_plugins.verify.code:check", workers=workers) as pool:
        list(pool.run(_code_items(problems[:1], opts)))
        t = time.perf_counter()
        outs = list(pool.run(_code_items(problems, opts)))
        ours_s = time.perf_counter() - t
        crash_ours = sum(o.correct for o in pool.run(_code_items(problems[:10], opts, crashing)))
    with ThreadPoolExecutor(max_workers=workers) as ex:
        skythought_apps_check(*problems[0])
        t = time.perf_counter()
        theirs = list(ex.map(lambda p: skythought_apps_check(*p), problems))
        sky_s = time.perf_counter() - t
        crash_theirs = sum(ex.map(lambda i: skythought_apps_check(problems[i][0], crashing), range(10)))
    return {"n": n, "ours_s": ours_s, "sky_s": sky_s, "ours_correct": sum(o.correct for o in outs),
            "sky_correct": sum(map(bool, theirs)), "crash_ours": crash_ours, "crash_theirs": crash_theirs,
            "isolation": probe_isolation()}


def _median_start_s(argv: list[str], n: int, **kw) -> float:
    import statistics
    import subprocess

    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, **kw)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def code_floor(cores: int, n: int = 30) -> dict:
    """The floor: programs/s if every core did nothing but start a bare isolated interpreter."""
    return {"checks_per_s": cores / _median_start_s([sys.executable, "-I", "-S", "-c", "pass"], n)}


def code_ours(pool, n: int) -> dict:
    problems = [code_problem(i) for i in range(n)]
    t = time.perf_counter()
    outs = list(pool.run(_code_items(problems, {"code_timeout_s": 6.0})))
    assert all(o.correct for o in outs), [o.reason for o in outs if not o.correct][:3]
    return {"checks_per_s": n / (time.perf_counter() - t)}


def code_layer_costs(n: int = 20) -> dict:
    """Sequential ms per program (3 tests) with layers added one at a time, and the bare parts."""
    import os

    from vr_plugins.verify import sandbox_bwrap, sandbox_seccomp
    from vr_plugins.verify.sandbox import RUNNER, Limits, _site_paths, run_program

    py = os.path.realpath(sys.executable)
    out = {"bare python -I -S": 1000 * _median_start_s([py, "-I", "-S", "-c", "pass"], n)}
    if sandbox_bwrap.unavailable() is None:
        base = sandbox_bwrap.base_args(Limits(), py, RUNNER, _site_paths())
        out["bwrap namespaces + view + python"] = 1000 * _median_start_s(base + ["--", py, "-I", "-S", "-c", "pass"], n)

        def with_seccomp():
            fd = sandbox_seccomp.filter_fd()
            try:
                return _median_start_s(base + ["--seccomp", str(fd), "--", py, "-I", "-S", "-c", "pass"], 1, pass_fds=[fd])
            finally:
                os.close(fd)

        import statistics

        out["+ seccomp"] = 1000 * statistics.median(with_seccomp() for _ in range(n))
    tests = [f"{k} 1\n" for k in range(3)]
    code = "a, b = map(int, input().split())\nprint(a + b)"
    from vr_plugins.verify import sandbox

    for label, lim in (("cold sandbox every program, all layers, 3 tests", Limits()),
                       ("warm: reduced mode (no bwrap), 3 tests", Limits(bwrap=False)),
                       ("warm: all layers but the audit hook, 3 tests", Limits(audit_hook=False)),
                       ("warm: all layers, 3 tests", Limits()), ("warm: all layers, 1 test", Limits())):
        ins = tests[:1] if "1 test" in label else tests
        run_program(code, ins, lambda i, d: (True, ""), limits=lim)
        t = time.perf_counter()
        for _ in range(n):
            if label.startswith("cold"):
                sandbox._close_idle()
            run_program(code, ins, lambda i, d: (True, ""), limits=lim)
        out[label] = 1000 * (time.perf_counter() - t) / n
    return out


def bench_code_compare(n: int, workers: int, repeats: int) -> None:
    """Ours (every layer on) against the floor and against SkyThought, interleaved (harness.compare)."""
    from harness import compare

    from vr_plugins.verify.pool import CheckPool, usable_cores

    cores = usable_cores()
    problems = [code_problem(i) for i in range(n)]

    def sky() -> dict:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            t = time.perf_counter()
            list(ex.map(lambda p: skythought_apps_check(*p), problems))
            return {"checks_per_s": n / (time.perf_counter() - t)}

    with CheckPool("vr_plugins.verify.code:check", workers=workers) as pool:
        code_ours(pool, 4)  # warm
        compare(f"verify code: {n} programs x 3 tests, every sandbox layer on, vs the floor ({cores} cores / "
                "median start of `python -I -S -c pass`)", {"ours": lambda: code_ours(pool, n),
                                                              "floor": lambda: code_floor(cores)},
                metrics={"checks_per_s": "higher"}, repeats=repeats, targets={"checks_per_s": ">= 0.5"})
        skythought_apps_check(*problems[0])
        compare(f"verify code: {n} programs x 3 tests vs SkyThought APPSTaskHandler.check_correctness",
                {"ours": lambda: code_ours(pool, n), "skythought": sky}, metrics={"checks_per_s": "higher"},
                repeats=repeats)
    costs = code_layer_costs()
    print("  cost per program, sequential (median ms):")
    prev = None
    for label, ms in costs.items():
        delta = f"  (+{ms - prev:.1f})" if prev is not None and label.startswith("+") else ""
        print(f"    {label:<44} {ms:7.1f} ms{delta}")
        prev = ms


def print_math(args) -> None:
    m = bench_math(args.math_n, args.workers, args.timeout, args.repeats)
    lo, med = m["result"].summary("checks_per_s")
    print(f"math  {m['n']} generations, 1% pathological, CPU budget {args.timeout:g} s per item (vr grader)")
    print(f"  ratio ours/SkyThought checks/s: min {lo:.2f}, median {med:.2f} over {args.repeats} interleaved repetitions")
    print(f"  ours: {m['timeouts']} timeouts (last repetition), {m['restarts']} worker restarts in all; "
          f"{m['normal_timeouts']} normal items timed out; grades identical in every repetition: {m['stable']}")
    print(f"  grade agreement with SkyThought on normal items: {m['agree']}/{m['normal']}"
          + "".join(f"\n    differs: {item} -> ours: {why}" for item, why in m["disagree"]))
    print(f"  a never-ending input (9^(9^(9^9))): ours {m['hang_s']:.1f} s ({m['hang']}); SkyThought never returns")


def main() -> int:
    from vr_plugins.verify.pool import usable_cores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=min(2, usable_cores()))
    ap.add_argument("--math-n", type=int, default=2000)
    ap.add_argument("--code-n", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=1.0, help="our per-item math CPU budget (s)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved repetitions of each comparison (>= 3)")
    ap.add_argument("--only", choices=["math", "code"], default=None, help="run one half only")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    from vr_plugins.verify.math_libs import quiet_antlr

    quiet_antlr()  # SkyThought's task imports load latex2sympy2 in this process too
    print(f"workers={args.workers} cores={usable_cores()} python={sys.version.split()[0]}")

    if args.only != "code":
        print_math(args)
    if args.only == "math":
        return 0
    from vr_plugins.verify.sandbox import missing_layers, probe_isolation

    print("sandbox layers missing here: " + ("; ".join(missing_layers(probe_isolation())) or "none"))
    c = bench_code(args.code_n, args.workers)
    ours, sky = c["n"] / c["ours_s"], c["n"] / c["sky_s"]
    print(f"code  {c['n']} trivial stdin programs x 3 tests, same concurrency ({args.workers})")
    print(f"  ours       {ours:8.1f} checks/s  ({c['ours_s']:.1f} s, {c['ours_correct']}/{c['n']} correct, isolated)")
    print(f"  SkyThought {sky:8.1f} checks/s  ({c['sky_s']:.1f} s, {c['sky_correct']}/{c['n']} correct, in-process)")
    print(f"  crashing programs graded correct: ours {c['crash_ours']}/10, SkyThought {c['crash_theirs']}/10")
    bench_code_compare(args.code_n, args.workers, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
