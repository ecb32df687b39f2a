"""The one way benchmarks here compare two things: interleaved sides, repetitions, ratios, load average.

A comparison runs its sides in alternating order (A B, B A, A B, ...) for ``repeats`` (>= 3)
repetitions, so a change of machine load hits both sides alike, and reports for each metric the
per-repetition ratio ``ours / baseline`` with its min and median, next to the load average before and
after. Absolute times on a shared machine are noise; the ratio of two runs a few seconds apart is not.

A side is a callable returning a dict of metrics; :func:`run_json` makes one from a command line (the
command's last stdout line is a JSON object; its peak RSS and wall time are added). Every comparison is
also appended as one JSON line to the file named by ``$BENCH_RESULTS`` (set by ``run_all.py``), from
which docs/benchmarks.md is generated. To adopt it in another benchmark::

    from harness import compare, run_json
    compare("verify math", {"ours": lambda: {...}, "skythought": lambda: {...}},
            metrics={"checks_per_s": "higher"}, repeats=3)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

MIN_REPEATS = 3


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, e.g. ``"2.10 1.85 1.40"``."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_json(argv: list[str], env: dict[str, str] | None = None, cwd=None) -> dict:
    """Run a command; return its last stdout line that is a JSON object (``{}`` if none), plus ``wall_s``
    and ``peak_rss_mib``: that process's own peak resident memory (``os.wait4``)."""
    import tempfile

    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True, cwd=cwd,
                                env=None if env is None else {**os.environ, **env})
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text, error = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(map(str, argv))}\n{error[-4000:]}")
    result = {}
    for line in reversed(text.strip().splitlines()):
        if line.strip().startswith("{"):
            try:
                result = json.loads(line)
                break
            except json.JSONDecodeError:  # e.g. a Python dict a host printed (LLaMA-Factory's log lines)
                continue
    result.setdefault("wall_s", wall)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # KiB on Linux
    return result


@dataclass
class Comparison:
    name: str
    ours: str
    baseline: str
    repeats: int
    values: dict[str, dict[str, list[float]]]  #: metric -> side -> per-repetition values
    ratios: dict[str, list[float]]  #: metric -> per-repetition ours / baseline
    better: dict[str, str]  #: metric -> "lower" or "higher"
    load_before: str
    load_after: str
    command: str = ""
    targets: dict[str, str] = field(default_factory=dict)
    note: str = ""

    def summary(self, metric: str) -> tuple[float, float]:
        r = self.ratios[metric]
        return min(r), statistics.median(r)


def compare(name: str, sides: dict[str, Callable[[], dict]], metrics: dict[str, str], repeats: int = MIN_REPEATS,
            targets: dict[str, str] | None = None, command: str = "",
            note: str | Callable[[], str] = "") -> Comparison:
    """Run the two ``sides`` ({ours: fn, baseline: fn}, in that order) interleaved ``repeats`` times.

    ``metrics`` maps each metric key of the sides' dicts to "lower" or "higher" (which way is better);
    the ratio is always ours / baseline. Prints one line per repetition and a summary per metric.
    ``note`` (text, or a callable giving it after the runs) is printed and recorded with the result.
    """
    if len(sides) != 2:
        raise ValueError("a comparison has exactly two sides: ours and a baseline")
    if repeats < MIN_REPEATS:
        raise ValueError(f"repeats must be >= {MIN_REPEATS}, got {repeats}")
    (ours, run_ours), (base, run_base) = sides.items()
    values = {m: {ours: [], base: []} for m in metrics}
    ratios: dict[str, list[float]] = {m: [] for m in metrics}
    load_before = load_average()
    print(f"--- {name}: {ours} vs {base}, {repeats} interleaved repetitions (load average {load_before})", flush=True)
    for rep in range(repeats):
        order = [(ours, run_ours), (base, run_base)] if rep % 2 == 0 else [(base, run_base), (ours, run_ours)]
        got = {}
        for label, fn in order:
            got[label] = fn()
        parts = []
        for m in metrics:
            a, b = float(got[ours][m]), float(got[base][m])
            values[m][ours].append(a)
            values[m][base].append(b)
            ratios[m].append(a / b if b else float("inf"))
            parts.append(f"{m}: {ours} {a:.4g} / {base} {b:.4g} = {ratios[m][-1]:.3f}")
        print(f"  rep {rep + 1} ({order[0][0]} first): " + "; ".join(parts), flush=True)
    result = Comparison(name, ours, base, repeats, values, ratios, dict(metrics), load_before, load_average(),
                        command or " ".join(sys.argv), dict(targets or {}), note() if callable(note) else note)
    for m in metrics:
        lo, med = result.summary(m)
        target = f"  (target {result.targets[m]})" if m in result.targets else ""
        print(f"  {m} ratio {ours}/{base}: min {lo:.3f}, median {med:.3f}{target}", flush=True)
    if result.note:
        print(f"  {result.note}", flush=True)
    print(f"  load average after: {result.load_after}", flush=True)
    record(result)
    return result


def record(result) -> None:
    """Append ``result`` (a Comparison or a plain dict with a "name") to ``$BENCH_RESULTS``."""
    path = os.environ.get("BENCH_RESULTS")
    if not path:
        return
    data = asdict(result) if isinstance(result, Comparison) else dict(result)
    data.setdefault("kind", "comparison" if isinstance(result, Comparison) else "measurement")
    with open(path, "a") as f:
        f.write(json.dumps(data) + "\n")


def measure(name: str, fn: Callable[[], dict], keys: list[str], command: str = "", note: str = "") -> dict:
    """One measurement without a baseline (e.g. a size the baseline cannot reach); printed and recorded."""
    load = load_average()
    got = fn()
    print(f"--- {name} (load average {load}): " + ", ".join(f"{k} {float(got[k]):.4g}" for k in keys), flush=True)
    data = {"name": name, "kind": "measurement", "values": {k: float(got[k]) for k in keys}, "load_before": load,
            "load_after": load_average(), "command": command or " ".join(sys.argv), "note": note}
    record(data)
    return got
