"""Run one untrusted program against a list of test inputs, isolated (docs/design.md, Scale and safety).

Each call starts a fresh ``sys.executable -I -S`` running :mod:`vr_plugins.verify._runner` in its own
session/process group, in an empty temporary directory that is removed afterwards, with a scrubbed
environment. The runner isolates itself before the program runs: new network and PID namespaces
(as root, or inside an unprivileged user namespace), rlimits (CPU, address space, processes, file size,
open files, no core dumps), Landlock (writes only in the temp dir, reads only where Python lives, no TCP,
no signals out) and an audit hook. Whatever the OS does not allow is reported in ``isolation`` and
warned about once per process (:class:`SandboxIsolationWarning`), never skipped silently.

All tests of one program run in ONE sandboxed interpreter (process start-up would otherwise dominate);
a program that exits by itself after a test (``os._exit(0)``) is restarted for the remaining tests. The
runner reports observations only; expected outputs stay here and are judged by ``judge`` as results
arrive, so the first failing test stops the program. Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

RUNNER = str(Path(__file__).with_name("_runner.py"))
TMP_PREFIX = "vr-sandbox-"  # + the pid of the process that created it, so its killer can clean up
_STATUS_CAP = 1 << 20  # bytes of status lines accepted from one sandbox


class SandboxIsolationWarning(RuntimeWarning):
    """An isolation layer the OS does not provide here (the others still apply)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one program run (per test for ``timeout_s``)."""

    timeout_s: float = 6.0
    memory_mb: int = 2048
    output_limit_bytes: int = 8 << 20
    procs: int = 32  # processes the program may add (RLIMIT_NPROC = current count + this)
    open_files: int = 64
    startup_s: float = 5.0  # wall-clock allowance for interpreter start-up on a loaded machine
    # isolation layers, all on by default; switching one off is for tests of the others and for
    # diagnosing a platform (a missing layer is warned about either way)
    audit_hook: bool = True
    namespaces: bool = True
    landlock: bool = True


@dataclass
class RunReport:
    """What happened to one program: ``passed`` only when every test was judged to pass."""

    passed: bool = False
    reason: str = ""
    tests_passed: int = 0
    isolation: dict = field(default_factory=dict)
    stderr_tail: str = ""
    timed_out: bool = False


def _readable_paths() -> list[str]:
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= {"/usr/lib", "/usr/lib64", "/lib", "/lib64", "/usr/local/lib", "/etc/ld.so.cache",
              "/sys/devices/system/cpu", "/usr/share/zoneinfo"}
    return sorted(p for p in paths if os.path.exists(p))


def _site_paths() -> list[str]:
    return sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")})


def scrubbed_env(tmp: str) -> dict[str, str]:
    """The whole environment of a sandbox: nothing inherited, so no secrets."""
    return {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


_warned: set[str] = set()
_ACTIVE_GROUPS: set[int] = set()
#: called with a sandbox's process-group id when it starts and with 0 when it is gone; a pool worker
#: publishes it to the parent, which kills that group itself when it has to kill the worker
group_hook: Callable[[int], None] | None = None


def kill_active_groups() -> None:
    """SIGKILL the process groups of sandboxes running in this process (a pool worker being killed)."""
    for pgid in list(_ACTIVE_GROUPS):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _warn_isolation(iso: dict) -> None:
    missing = []
    if not iso.get("net_ns") and not iso.get("landlock_net"):
        missing.append("no network namespace and no Landlock TCP rules: programs can open sockets "
                       "(the audit hook still blocks Python's socket module)")
    if not iso.get("pid_ns"):
        missing.append("no PID namespace: a process that leaves the process group (setsid) could "
                       "outlive the check (RLIMIT_NPROC and the audit hook still limit process creation)")
    if not iso.get("landlock"):
        missing.append("no Landlock: filesystem writes outside the temp dir are blocked only by the "
                       "audit hook and file permissions")
    for text in missing:
        if text not in _warned:
            _warned.add(text)
            warnings.warn(f"vr_plugins sandbox: {text}. Detail: {iso}", SandboxIsolationWarning, stacklevel=3)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process always goes
        pass


def _read_output(tmp: str, name: str, limit: int) -> bytes | None:
    """Read a file the program could have replaced: never follow a symlink, never block on a FIFO."""
    try:
        fd = os.open(os.path.join(tmp, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


Judge = Callable[[int, bytes], "tuple[bool, str]"]


def run_program(code: str, inputs: list, judge: Judge, *, mode: str = "stdin", fn_name: str | None = None,
                limits: Limits = Limits()) -> RunReport:
    """Run ``code`` on every input; ``judge(i, output_bytes) -> (ok, reason)`` decides each test.

    ``mode="stdin"``: inputs are strings fed on stdin, outputs are the bytes written to stdout.
    ``mode="call"``: inputs are argument lists for ``fn_name`` (top-level or ``Solution`` method);
    outputs are the JSON of the return value.
    """
    if not inputs:
        raise ValueError("run_program needs at least one test input")
    report = RunReport()
    first = 0
    while first < len(inputs):
        first, done = _run_from(code, inputs, judge, mode, fn_name, limits, first, report)
        if done:
            break
    else:
        report.passed = True
    if report.passed:
        report.reason = f"passed all {len(inputs)} tests"
    return report


def _run_from(code, inputs, judge, mode, fn_name, limits, first, report) -> tuple[int, bool]:
    """One sandboxed interpreter running tests ``first..``; returns (next test to run, finished)."""
    tmp = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-")
    job = {"code": code, "mode": mode, "fn_name": fn_name, "inputs": inputs, "first": first,
           "timeout_s": limits.timeout_s, "memory_mb": limits.memory_mb, "output_limit": limits.output_limit_bytes,
           "procs": limits.procs, "open_files": limits.open_files, "guard": limits.audit_hook,
           "namespaces": limits.namespaces, "landlock": limits.landlock,
           "readable": _readable_paths(), "site": _site_paths()}
    with open(os.path.join(tmp, "job.json"), "w", encoding="utf-8") as fh:
        json.dump(job, fh)
    deadline = time.monotonic() + limits.startup_s + limits.timeout_s * (max(1, len(inputs) - first) + 1)
    proc = subprocess.Popen([sys.executable, "-I", "-S", RUNNER], cwd=tmp, env=scrubbed_env(tmp),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
    _ACTIVE_GROUPS.add(proc.pid)
    if group_hook:
        group_hook(proc.pid)
    buf, received, started, finished = b"", 0, None, False
    try:
        fd = proc.stdout.fileno()
        while not finished:  # not until EOF: a forked descendant may hold the pipe open
            left = deadline - time.monotonic()
            if left <= 0:
                report.timed_out = True
                report.reason = f"timeout: wall-clock limit reached (test {started if started is not None else first})"
                return first, True
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            received += len(chunk)
            if received > _STATUS_CAP:
                report.reason = "runtime error: the program flooded the sandbox's report channel"
                return first, True
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    event = json.loads(line)
                    kind = event["e"]
                except (ValueError, KeyError, TypeError):
                    report.reason = "runtime error: the program wrote to the sandbox's report channel"
                    return first, True
                if kind == "meta":
                    report.isolation = event.get("iso", {})
                    _warn_isolation(report.isolation)
                elif kind == "compile_error":
                    report.reason = f"compile error: {event.get('m', '')}"
                    return first, True
                elif kind == "start":
                    started = event["i"]
                elif kind == "done":
                    i, status, msg = event["i"], event["s"], event.get("m", "")
                    if i != first:
                        report.reason = "runtime error: tests reported out of order"
                        return first, True
                    if status == "timeout":
                        report.timed_out = True
                        report.reason = f"timeout on test {i}: {msg}"
                        return first, True
                    if status != "ok":
                        report.reason = f"runtime error on test {i}: {msg}"
                        return first, True
                    ok, why = _judge_file(tmp, mode, i, judge, limits)
                    if not ok:
                        report.reason = f"wrong answer on test {i}: {why}"
                        return first, True
                    report.tests_passed += 1
                    first, started = first + 1, None
                elif kind == "end":
                    finished = True
                    break
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        if first >= len(inputs):
            return first, False
        if finished:  # an "end" before every test ran can only be forged by the program
            report.reason = f"runtime error on test {first}: the run ended before every test ran"
            return first, True
        if started is not None and proc.returncode == 0 and mode == "stdin":
            # the program ended the interpreter itself (os._exit(0)) after answering test `started`
            ok, why = _judge_file(tmp, mode, started, judge, limits)
            if not ok:
                report.reason = f"wrong answer on test {started}: {why}"
                return first, True
            report.tests_passed += 1
            return first + 1, False
        report.reason = _death_reason(proc.returncode, started if started is not None else first)
        report.stderr_tail = (_read_output(tmp, "stderr.txt", 4096) or b"")[-1000:].decode("utf-8", "replace")
        return first, True
    except subprocess.TimeoutExpired:
        report.timed_out = True
        report.reason = "timeout: wall-clock limit reached"
        return first, True
    finally:
        _kill_group(proc)
        _ACTIVE_GROUPS.discard(proc.pid)
        if group_hook:
            group_hook(0)
        proc.stdout.close()
        if not report.stderr_tail:
            report.stderr_tail = (_read_output(tmp, "stderr.txt", 4096) or b"")[-1000:].decode("utf-8", "replace")
        _remove_tree(tmp)


def remove_temp_dirs_of(pid: int) -> None:
    """Remove the temp dirs of sandboxes started by process ``pid`` (a pool worker that was killed)."""
    for path in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{pid}-*"):
        _remove_tree(str(path))


def _remove_tree(path: str) -> None:
    """Remove the temp dir even where the program took away permissions on its own subfolders."""
    for root, dirs, _ in os.walk(path):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o700, follow_symlinks=False)
            except (OSError, NotImplementedError):
                pass
    shutil.rmtree(path, ignore_errors=True)


def _judge_file(tmp, mode, i, judge, limits):
    data = _read_output(tmp, f"out-{i}.txt" if mode == "stdin" else f"out-{i}.json", limits.output_limit_bytes)
    if data is None:
        return False, "no output file"
    if len(data) > limits.output_limit_bytes:
        return False, "output limit exceeded"
    return judge(i, data)


def _death_reason(returncode: int | None, test: int) -> str:
    if returncode is None:
        return f"runtime error on test {test}: the interpreter did not exit"
    if returncode < 0 or returncode > 128:
        sig = -returncode if returncode < 0 else returncode - 128
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = {"SIGXCPU": " (CPU time limit)", "SIGKILL": " (killed: CPU or memory limit)",
                "SIGSEGV": " (crash, often the memory limit)", "SIGXFSZ": " (output limit)"}.get(name, "")
        return f"runtime error on test {test}: killed by {name}{hint}"
    return f"runtime error on test {test}: the interpreter exited with status {returncode}"
