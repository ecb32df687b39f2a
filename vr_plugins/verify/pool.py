"""Worker processes with a hard kill per item: a CPU-time budget (math checks) or a wall clock.

Signal-based timeouts (SIGALRM, which SkyThought's and Math-Verify's checkers use) only work on a main
thread and only when the C code returns to the interpreter; a sympy simplification of ``9^{9^{9}}``
never does. Here every check runs in a worker process and the parent SIGKILLs the worker (and the
process group of the sandbox it was running, which the worker publishes in shared memory: a worker stuck
in C code could not clean up itself) when the item's deadline passes,
grades the item incorrect with a "timeout" reason and starts a replacement. A pathological input costs
at most its timeout and never wedges the pool.

An item with ``cpu_s`` is budgeted in CPU time: the worker is killed once IT has used ``cpu_s`` seconds of
CPU on the item (read from ``/proc/<pid>/stat``), so a check that would pass on an idle machine passes on
a busy one too (a wall clock gives a loaded worker less CPU per second and flips grades). Its ``timeout_s`` is then only a
generous wall-clock backstop (a worker blocked without using CPU). The parent needs no polling: a worker
cannot use more CPU than wall time, so it sleeps until the earliest moment a budget could run out.

Workers are forked from a ``forkserver`` that preloads the checker modules, so a replacement is ready
in milliseconds rather than re-importing sympy. Items and results cross the pipes as JSON (plain
strings, never pickled data). The pool never starts more workers than usable cores unless asked to.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
import warnings
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any
from collections.abc import Iterable, Iterator

from vr_plugins.errors import UserError

#: Modules each forkserver imports once, so workers (and replacements after a kill) start warm.
PRELOAD = ["vr_plugins.verify._warm"]


READY_TIMEOUT_S = 120.0



class WorkersError(UserError, ValueError):
    """A verify worker count that cannot be used (``--workers``, ``verify.workers``)."""

def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(requested: int | None) -> int:
    """``None`` -> the usable cores; more than the cores is honoured with a warning (an explicit ask)."""
    cores = usable_cores()
    if requested is None:
        return cores
    if requested < 1:
        raise WorkersError(f"--workers must be >= 1, got {requested}")
    if requested > cores:
        warnings.warn(f"{requested} verify workers on {cores} usable core(s): oversubscribed as requested",
                      RuntimeWarning, stacklevel=2)
    return requested


@dataclass(frozen=True)
class Item:
    """One check: ``args`` are JSON-serialisable arguments of the target; ``timeout_s`` its wall clock;
    ``cpu_s`` (optional) its budget of the worker's CPU seconds, with ``timeout_s`` as the backstop."""

    key: Any
    args: list
    timeout_s: float
    cpu_s: float | None = None


_CLOCK_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``); None where unreadable."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICK  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class Outcome:
    key: Any
    correct: bool
    reason: str
    status: str  # "ok" | "timeout" | "error"
    seconds: float


def _worker_main(conn, target: str, preload: list[str], sandbox_group) -> None:
    import ctypes

    from vr_plugins.types import resolve
    from vr_plugins.verify import sandbox

    try:  # not dumpable: a sandboxed program cannot read this worker's /proc/<pid>/environ or memory
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass

    def on_term(signum, frame):
        sandbox.kill_active_groups()
        os._exit(1)

    def publish(pgid: int) -> None:
        sandbox_group.value = pgid

    sandbox.group_hook = publish
    signal.signal(signal.SIGTERM, on_term)  # a polite stop (e.g. the parent exiting) still cleans up
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    for name in preload:  # no-ops when the forkserver preloaded them (it may have started with another list)
        try:
            __import__(name)
        except ImportError:
            pass
    fn = resolve(target)
    conn.send_bytes(b'{"ready": true}')  # deadlines start only once the worker can take work
    while True:
        try:
            message = conn.recv_bytes()
        except EOFError:
            return
        job = json.loads(message)
        try:
            correct, reason = fn(*job["args"])
            if correct is not True and correct is not False:
                out = {"correct": False, "reason": f"checker returned {type(correct).__name__} {correct!r:.40}, not a bool",
                       "status": "error"}
            else:
                out = {"correct": correct, "reason": str(reason), "status": "ok"}
        except Exception as exc:  # noqa: BLE001 - a checker crash grades the item incorrect, with the error
            out = {"correct": False, "reason": f"checker error: {type(exc).__name__}: {str(exc)[:200]}", "status": "error"}
        conn.send_bytes(json.dumps(out).encode())


class _Worker:
    def __init__(self, ctx, target: str, preload: list[str]):
        self.conn, child = ctx.Pipe(duplex=True)
        self.sandbox_group = ctx.Value("i", 0, lock=False)
        self.proc = ctx.Process(target=_worker_main, args=(child, target, preload, self.sandbox_group), daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(READY_TIMEOUT_S):
            self.kill()
            raise RuntimeError(f"a verify worker did not start within {READY_TIMEOUT_S:g} s")
        try:
            self.conn.recv_bytes()
        except EOFError:
            raise RuntimeError(f"a verify worker died while loading {target!r} (exit code {self.proc.exitcode})") from None
        self.item: Item | None = None
        self.started = 0.0
        self.cpu_start = 0.0

    def cpu_used(self) -> float:
        """CPU seconds this worker spent on its current item (0 where /proc is unreadable)."""
        now = process_cpu_seconds(self.proc.pid)
        return 0.0 if now is None else now - self.cpu_start

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()  # at once: a worker stuck in C code would never run a SIGTERM handler
            self.proc.join(5.0)
        pgid = self.sandbox_group.value
        if pgid > 0:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            from vr_plugins.verify.sandbox import remove_temp_dirs_of

            remove_temp_dirs_of(self.proc.pid)
        self.conn.close()


class CheckPool:
    """``with CheckPool("module:check_fn", workers=2) as pool: for out in pool.run(items): ...``"""

    def __init__(self, target: str, workers: int | None = None, preload: list[str] | None = None):
        self.target = target
        self.workers = resolve_workers(workers)
        self.ctx = mp.get_context("forkserver")
        self.preload = list(preload if preload is not None else PRELOAD) + [target.split(":")[0]]
        self.ctx.set_forkserver_preload(self.preload)
        self._pool: list[_Worker] = []
        self.restarts = 0

    def __enter__(self) -> CheckPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for w in self._pool:
            w.kill()
        self._pool = []

    def _spawn(self) -> _Worker:
        return _Worker(self.ctx, self.target, self.preload)

    def run(self, items: Iterable[Item]) -> Iterator[Outcome]:
        """Yield one :class:`Outcome` per item, in completion order."""
        todo = iter(items)
        for i, w in enumerate(self._pool):  # items left in flight by an abandoned earlier run()
            if w.item is not None:
                self._replace(i, w)
        while len(self._pool) < self.workers:
            self._pool.append(self._spawn())
        exhausted = False
        while True:
            for w in self._pool:  # hand out work
                if w.item is None and not exhausted:
                    item = next(todo, None)
                    if item is None:
                        exhausted = True
                        break
                    w.item, w.started = item, time.monotonic()
                    if item.cpu_s is not None:
                        w.cpu_start = process_cpu_seconds(w.proc.pid) or 0.0
                    w.conn.send_bytes(json.dumps({"args": item.args}).encode())
            busy = [w for w in self._pool if w.item is not None]
            if not busy:
                return
            now = time.monotonic()
            next_deadline = min(w.started + w.item.timeout_s for w in busy) - now
            for w in busy:  # CPU can't run out sooner than its remaining budget in wall seconds
                if w.item.cpu_s is not None:
                    next_deadline = min(next_deadline, max(0.01, w.item.cpu_s - w.cpu_used()))
            ready = wait([w.conn for w in busy], timeout=max(0.0, next_deadline))
            for i, w in enumerate(list(self._pool)):
                if w.item is None:
                    continue
                elapsed = time.monotonic() - w.started
                if w.conn in ready:
                    item = w.item
                    try:
                        out = json.loads(w.conn.recv_bytes())
                        w.item = None
                    except (EOFError, OSError):
                        w.proc.join(1.0)
                        out = {"correct": False, "status": "error",
                               "reason": f"checker process died (exit code {w.proc.exitcode})"}
                        self._replace(i, w)
                    yield Outcome(item.key, out["correct"] is True, out["reason"], out["status"], elapsed)
                elif w.item.cpu_s is not None and w.cpu_used() >= w.item.cpu_s:
                    item = w.item
                    self._replace(i, w)
                    yield Outcome(item.key, False, f"timeout: check used {item.cpu_s:g} s of CPU (worker killed)",
                                  "timeout", elapsed)
                elif elapsed >= w.item.timeout_s:
                    item = w.item
                    self._replace(i, w)
                    what = "wall-clock backstop" if item.cpu_s is not None else "check exceeded"
                    yield Outcome(item.key, False, f"timeout: {what} {item.timeout_s:g} s (worker killed)",
                                  "timeout", elapsed)

    def _replace(self, index: int, worker: _Worker) -> None:
        worker.kill()
        worker.item = None
        self._pool[index] = self._spawn()
        self.restarts += 1
