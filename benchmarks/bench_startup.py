"""Start-up cost of the .pth bootstrap on ``python -c pass`` when no host is imported.

Runs the same interpreter alternately with the hook active and with ``VR_PLUGINS_DISABLE=1`` (the
.pth line then returns before importing anything) and prints the medians and their ratio.
Target (issue 2): overhead under 5 % or under 10 ms.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

RUNS = int(os.environ.get("BENCH_RUNS", "40"))


def one(env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - start


def main() -> int:
    base_env = {k: v for k, v in os.environ.items() if k != "VR_PLUGINS_DISABLE"}
    off_env = dict(base_env, VR_PLUGINS_DISABLE="1")
    on, off = [], []
    for _ in range(3):  # warm the page cache
        one(base_env), one(off_env)
    for _ in range(RUNS):
        on.append(one(base_env))
        off.append(one(off_env))
    m_on, m_off = statistics.median(on), statistics.median(off)
    overhead_ms = (m_on - m_off) * 1000
    print(f"startup  python -c pass  runs={RUNS}")
    print(f"  hook disabled (baseline) median {m_off * 1000:7.2f} ms")
    print(f"  hook active              median {m_on * 1000:7.2f} ms")
    print(f"  ratio active/baseline    {m_on / m_off:7.3f}   overhead {overhead_ms:+.2f} ms")
    ok = m_on / m_off < 1.05 or overhead_ms < 10
    print(f"  target (<5% or <10 ms): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
