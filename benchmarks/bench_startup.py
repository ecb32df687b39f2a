"""Start-up cost of the .pth bootstrap on ``python -c pass`` when no host is imported.

The same interpreter with the hook active and with ``VR_PLUGINS_DISABLE=1`` (the .pth line then returns
before importing anything), interleaved (benchmarks/harness.py); each repetition's value is the median of
``BENCH_RUNS`` (default 10) starts. Target: overhead under 5 % or under 10 ms.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "10"))


def starts(env: dict[str, str]) -> dict:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
        times.append(time.perf_counter() - start)
    return {"ms": statistics.median(times) * 1000}


def main() -> int:
    base_env = {k: v for k, v in os.environ.items() if k != "VR_PLUGINS_DISABLE"}
    off_env = dict(base_env, VR_PLUGINS_DISABLE="1")
    starts(base_env), starts(off_env)  # warm the page cache
    result = compare(f"python -c pass, median of {RUNS} starts per repetition", {"hook active": lambda: starts(base_env),
                     "hook disabled": lambda: starts(off_env)}, {"ms": "lower"}, repeats=5,
                     targets={"ms": "< 1.05 or < 10 ms more"}, command="python benchmarks/bench_startup.py")
    on, off = (statistics.median(result.values["ms"][k]) for k in ("hook active", "hook disabled"))
    ok = on / off < 1.05 or on - off < 10
    print(f"  overhead {on - off:+.2f} ms (medians): target {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
