"""Run one untrusted program against a list of test inputs, isolated (docs/verification.md, Code sandbox).

Threat model: the program owns its whole interpreter and can undo any in-process guard. So its grade
depends only on the answer it gives to each test (stdout for stdin problems, the serialised return value
for call-based ones); this trusted parent sequences the tests, times each one from outside (wall clock
here, CPU from ``/proc/<runner>/stat``), compares answers with expected outputs the program never sees,
and treats every byte from the sandbox as untrusted: a malformed, early, repeated or forged message, or
one without the test's fresh nonce, can only fail the program.

Isolation is bubblewrap (:mod:`vr_plugins.verify.sandbox_bwrap`): user namespace mapped to uid 65534
without capabilities, ``no_new_privs``, new mount/IPC/UTS/PID/network/cgroup namespaces, a read-only view
of only the files Python needs, a size-limited private tmpfs, a seccomp filter
(:mod:`vr_plugins.verify.sandbox_seccomp`), rlimits per test process. Inside, :mod:`_runner` is a zygote:
it forks one child per test (so a test costs a fork, not an interpreter start). Where bubblewrap cannot
run, a reduced mode isolates the runner itself (namespaces where allowed, Landlock, rlimits); every
missing layer is named in one :class:`SandboxIsolationWarning` per process, never skipped silently.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable

from vr_plugins.verify import sandbox_bwrap
from vr_plugins.verify.sandbox_cgroup import SandboxCgroup

RUNNER = str(Path(__file__).with_name("_runner.py"))
TMP_PREFIX = "vr-sandbox-"  # + the pid of the process that created it, so its killer can clean up
_HEADER_CAP = 1 << 16  # bytes of one message header accepted from the sandbox
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class SandboxIsolationWarning(RuntimeWarning):
    """An isolation layer this machine does not provide (the others still apply)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one program run (per test for ``timeout_s``)."""

    timeout_s: float = 6.0
    memory_mb: int = 2048
    output_limit_bytes: int = 8 << 20
    procs: int = 32  # processes/threads the program may add (RLIMIT_NPROC = current count + this)
    open_files: int = 64
    disk_mb: int = 64  # size of the sandbox's private tmpfs (bubblewrap mode)
    startup_s: float = 5.0  # wall-clock allowance for interpreter start-up on a loaded machine
    # isolation layers, all on by default; switching one off is for tests of the others, for measuring
    # what each costs and for diagnosing a platform (a missing layer is warned about either way)
    audit_hook: bool = True
    bwrap: bool = True
    seccomp: bool = True
    namespaces: bool = True  # reduced mode only
    landlock: bool = True  # reduced mode only


@dataclass
class RunReport:
    """What happened to one program: ``passed`` only when every test was judged to pass."""

    passed: bool = False
    reason: str = ""
    tests_passed: int = 0
    isolation: dict = field(default_factory=dict)
    stderr_tail: str = ""
    timed_out: bool = False
    seconds: list = field(default_factory=list)  # (wall, cpu) per test, measured here


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
_published = 0  # the group last given to group_hook (warm sandboxes of other keys die with this process)


def kill_active_groups() -> None:
    """SIGKILL the process groups of sandboxes running in this process (a pool worker being killed)."""
    for pgid in list(_ACTIVE_GROUPS):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def missing_layers(iso: dict) -> list[str]:
    """One sentence per isolation layer that ``iso`` (a report's ``isolation``) lacks."""
    missing = []
    if iso.get("bwrap"):
        if not iso.get("seccomp"):
            missing.append(f"no seccomp filter ({iso.get('seccomp_error', 'switched off')}): new sockets, ptrace, "
                           "keyrings, SysV IPC and mount are limited only by namespaces and missing capabilities")
    else:
        missing.append(f"no bubblewrap ({iso.get('bwrap_error', 'switched off')}): reduced mode - no user "
                       "namespace (as root the program keeps its capabilities), no seccomp filter, no read-only "
                       "system view, no disk quota (RLIMIT_FSIZE per file only)")
    if not iso.get("bwrap") and "net_ns" in iso:  # a run's report (a probe cannot know these)
        if not iso.get("net_ns") and not iso.get("landlock_net"):
            missing.append("no network namespace and no Landlock TCP rules: programs can open sockets "
                           "(the audit hook still blocks Python's socket module)")
        if not iso.get("pid_ns"):
            missing.append("no PID namespace: a process that leaves the process group (setsid) could "
                           "outlive the check (RLIMIT_NPROC and the audit hook still limit process creation)")
        if not iso.get("landlock"):
            missing.append("no Landlock: filesystem writes outside the temp dir are blocked only by the "
                           "audit hook and file permissions")
    if not iso.get("cgroup"):
        missing.append(f"no cgroup ({iso.get('cgroup_error', 'unknown')}): memory is limited per process (RLIMIT_AS) "
                       "and processes per user (RLIMIT_NPROC, which does not bind a sandbox started by root); "
                       "socket buffers and other kernel memory are not counted")
    return missing


def _warn_isolation(iso: dict) -> None:
    for text in missing_layers(iso):
        if text not in _warned:
            _warned.add(text)
            warnings.warn(f"vr_plugins sandbox: {text}", SandboxIsolationWarning, stacklevel=4)


def probe_isolation(limits: Limits | None = None) -> dict:
    """The layers a sandbox started now would get from outside (for summaries; starts nothing lasting)."""
    limits = limits or Limits()
    cg, cg_why = SandboxCgroup.create(limits.procs + 3, (limits.memory_mb + limits.disk_mb + 64) << 20)
    iso = {"cgroup": cg.kind if cg else False}
    if cg is not None:
        cg.remove()
    else:
        iso["cgroup_error"] = cg_why
    why = sandbox_bwrap.unavailable() if limits.bwrap else "switched off"
    iso["bwrap"] = why is None
    if why:
        iso["bwrap_error"] = why
    else:
        iso.update(sandbox_bwrap.layers(limits.seccomp))
    return iso


class _Broken(Exception):
    """The sandbox's channel failed: ``timeout`` says whether it was the parent's clock."""

    def __init__(self, reason: str, timeout: bool = False):
        super().__init__(reason)
        self.timeout = timeout


class _Channel:
    """Framed messages over the runner's stdin/stdout pipes, every read under a deadline and a cap."""

    def __init__(self, rfd: int, wfd: int):
        self.rfd, self.wfd, self.buf = rfd, wfd, bytearray()
        os.set_blocking(wfd, False)

    def _need(self, n: int, deadline: float) -> None:
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Broken("deadline", timeout=True)
            if not select.select([self.rfd], [], [], left)[0]:
                continue
            chunk = os.read(self.rfd, max(65536, n - len(self.buf)))
            if not chunk:
                raise _Broken("the sandbox closed its channel")
            self.buf += chunk

    def _take(self, n: int) -> bytes:
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def recv(self, deadline: float, payload_cap: int = 0) -> tuple[dict, bytes]:
        self._need(8, deadline)
        try:
            size = int(self._take(8), 16)
        except ValueError:
            raise _Broken("malformed message from the sandbox") from None
        if not 0 < size <= _HEADER_CAP:
            raise _Broken("oversized message from the sandbox")
        self._need(size, deadline)
        try:
            header = json.loads(self._take(size))
            length = header["len"]
        except (ValueError, KeyError, TypeError):
            raise _Broken("malformed message from the sandbox") from None
        if not isinstance(header, dict) or not isinstance(length, int) or not 0 <= length <= payload_cap:
            raise _Broken("output limit exceeded" if isinstance(length, int) and length > payload_cap
                          else "malformed message from the sandbox")
        self._need(length, deadline)
        return header, self._take(length)

    def send(self, header: dict, payload: bytes, deadline: float) -> None:
        raw = json.dumps(dict(header, len=len(payload))).encode()
        view = memoryview(b"%08x" % len(raw) + raw + payload)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Broken("deadline", timeout=True)
            if not select.select([], [self.wfd], [], left)[1]:
                continue
            try:
                view = view[os.write(self.wfd, view):]
            except BlockingIOError:
                continue
            except OSError:
                raise _Broken("the sandbox closed its channel") from None


def _cpu_seconds(pid: int | None) -> float | None:
    """CPU of ``pid`` and of its reaped children, read from outside (the runner reaps every test child)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / _CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def _child_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            kids = fh.read().split()
        return int(kids[0]) if kids else None
    except (OSError, ValueError):
        return None


class _Session:
    """One sandbox (bubblewrap, or the reduced mode) with its runner, started and killed here."""

    def __init__(self, limits: Limits):
        self.limits, self.tmp, self.info_r, self.cgroup = limits, None, None, None
        why = sandbox_bwrap.unavailable() if limits.bwrap else "switched off"
        self.iso: dict = {"bwrap": why is None, "cgroup": False, "audit_hook": limits.audit_hook}
        py = os.path.realpath(sys.executable)
        pass_fds: list[int] = []
        if why is None:
            root = "/tmp"
            argv, pass_fds, self.info_r, layers = sandbox_bwrap.command(py, RUNNER, limits, _site_paths())
            self.iso.update(layers)
            cfg = {}
            cwd, env = "/", scrubbed_env(root)
        else:
            self.iso["bwrap_error"] = why
            root = self.tmp = tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-")
            cfg = {"selfiso": True, "namespaces": limits.namespaces, "landlock": limits.landlock,
                   "readable": _readable_paths()}
            argv, cwd, env = [py, "-I", "-S", RUNNER, json.dumps(cfg)], root, scrubbed_env(root)
        if why is None:
            argv = argv + [json.dumps(cfg)]
        self.root = root
        try:
            self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                                         pass_fds=pass_fds)
        finally:
            for fd in pass_fds:
                os.close(fd)
        _ACTIVE_GROUPS.add(self.proc.pid)
        global _published
        _published = self.proc.pid
        if group_hook:
            group_hook(self.proc.pid)
        self.chan = _Channel(self.proc.stdout.fileno(), self.proc.stdin.fileno())
        self.runner_pid: int | None = None
        self.full_iso: dict = {}
        self.reusable = False
        self.closed = False

    def find_runner(self, iso: dict) -> None:
        """The runner's host pid, for reading its CPU time from outside."""
        if self.info_r is not None:
            try:
                os.set_blocking(self.info_r, False)
                info = json.loads(os.read(self.info_r, 4096) or b"{}")
                self.runner_pid = int(info["child-pid"])
            except (OSError, ValueError, KeyError, TypeError):
                self.runner_pid = None
        elif iso.get("pid_ns"):
            self.runner_pid = _child_pid(self.proc.pid)
        else:
            self.runner_pid = self.proc.pid

    def confine(self, iso: dict) -> None:
        """Put the runner (before any program process exists) into a cgroup of its own."""
        lim = self.limits
        cg, why = SandboxCgroup.create(lim.procs + 3, (lim.memory_mb + lim.disk_mb + 64) << 20)
        if cg is not None and self.runner_pid and cg.add(self.runner_pid):
            self.cgroup = cg
            iso["cgroup"] = cg.kind
            return
        if cg is not None:
            cg.remove()
            why = why or "could not move the sandbox into its cgroup"
        iso["cgroup"] = False
        iso["cgroup_error"] = why

    def close(self) -> None:
        """Kill the whole sandbox, and return only once every process in it is gone."""
        if self.closed:
            return
        self.closed = True
        if self.info_r is not None and self.runner_pid:
            # the runner is PID 1 of the sandbox: its death makes the kernel kill every process of the
            # namespace, and bwrap (its parent, still alive, so the pid cannot be reused) exits only after
            try:
                os.kill(self.runner_pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process always goes
            pass
        _ACTIVE_GROUPS.discard(self.proc.pid)
        global _published
        if _published == self.proc.pid:
            _published = 0
            if group_hook:
                group_hook(0)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        if self.info_r is not None:
            os.close(self.info_r)
        if self.tmp:
            _remove_tree(self.tmp)
        if self.cgroup is not None:
            self.cgroup.remove()


Judge = Callable[[int, bytes], "tuple[bool, str]"]


def _key(limits: Limits) -> tuple:
    """What a reused sandbox must share with the next program (the per-test limits travel per job)."""
    why = sandbox_bwrap.unavailable() if limits.bwrap else "switched off"
    return (why, limits.seccomp, limits.disk_mb, limits.memory_mb, limits.procs, limits.namespaces, limits.landlock)


_idle: dict[tuple, _Session] = {}  # at most one warm sandbox per key, per process (a pool worker)


def _close_idle() -> None:
    while _idle:
        _idle.popitem()[1].close()


atexit.register(_close_idle)


def _start(limits: Limits) -> tuple[_Session, dict]:
    """A started sandbox (warm one if this process has it), and its isolation report."""
    key = _key(limits)
    session = _idle.pop(key, None)
    if session is not None and session.proc.poll() is None:
        return session, session.full_iso
    if session is not None:
        session.close()
    session = _Session(limits)
    try:
        header, _ = session.chan.recv(time.monotonic() + limits.startup_s)
        if header.get("e") != "ready" or not isinstance(header.get("iso"), dict):
            raise _Broken("the sandbox did not start")
    except _Broken:
        session.close()
        raise
    iso = {**header["iso"], **session.iso}
    session.find_runner(iso)
    session.confine(iso)
    session.full_iso = iso
    # reused only where the runner is PID 1 of its namespace: then nothing of a program survives it
    session.reusable = bool(iso.get("pid_ns")) and session.runner_pid is not None
    return session, iso


def run_program(code: str, inputs: list, judge: Judge, *, mode: str = "stdin", fn_name: str | None = None,
                limits: Limits = Limits()) -> RunReport:
    """Run ``code`` on every input, in order, stopping at the first failure;
    ``judge(i, answer_bytes) -> (ok, reason)`` decides each test.

    ``mode="stdin"``: inputs are strings fed on stdin, answers are the bytes written to stdout.
    ``mode="call"``: inputs are argument lists for ``fn_name`` (top-level or ``Solution`` method);
    answers are the JSON of the return value.

    The sandbox is reused for this process's next program when this one ended cleanly (the runner
    killed everything it left and wiped the temp dir); after a timeout or a broken exchange it is killed.
    """
    if not inputs:
        raise ValueError("run_program needs at least one test input")
    report = RunReport()
    try:
        session, report.isolation = _start(limits)
    except _Broken as exc:
        report.timed_out = exc.timeout
        report.reason = (f"timeout: the sandbox did not start within {limits.startup_s:g} s" if exc.timeout
                         else f"runtime error: the sandbox did not start ({exc})")
        return report
    _warn_isolation(report.isolation)
    keep = False
    try:
        clean = _drive(session, code, inputs, judge, mode, fn_name, limits, report)
        if clean and session.reusable:
            deadline = time.monotonic() + limits.startup_s
            session.chan.send({"e": "end"}, b"", deadline)
            header, _ = session.chan.recv(deadline)
            keep = header.get("e") == "clean"
    except _Broken:
        keep = False
    finally:
        if keep:
            old = _idle.pop(_key(limits), None)
            if old is not None:
                old.close()
            _idle[_key(limits)] = session
        else:
            session.close()
    return report


def _drive(session: _Session, code, inputs, judge, mode, fn_name, limits: Limits, report: RunReport) -> bool:
    """Run the tests; True when the runner is idle and in step (the sandbox may be reused)."""
    chan, i = session.chan, 0
    try:
        job = {"e": "job", "code": code, "mode": mode, "fn_name": fn_name, "timeout_s": limits.timeout_s,
               "memory_mb": limits.memory_mb, "output_limit": limits.output_limit_bytes, "procs": limits.procs,
               "open_files": limits.open_files, "guard": limits.audit_hook, "site": _site_paths(), "root": session.root}
        deadline = time.monotonic() + limits.startup_s
        chan.send(job, b"", deadline)
        header, _ = chan.recv(deadline)
        if header.get("e") == "compile_error":
            report.reason = f"compile error: {str(header.get('m', ''))[:300]}"
            return True
        if header.get("e") != "compiled":
            raise _Broken("unexpected message from the sandbox")
        for i, test_input in enumerate(inputs):
            payload = test_input.encode("utf-8", "replace") if mode == "stdin" else json.dumps(test_input).encode()
            nonce = secrets.token_hex(16)
            cpu0 = _cpu_seconds(session.runner_pid)
            t0 = time.monotonic()
            deadline = t0 + limits.timeout_s
            chan.send({"e": "test", "n": nonce}, payload, deadline)
            header, answer = chan.recv(deadline, limits.output_limit_bytes)
            wall = time.monotonic() - t0
            cpu1 = _cpu_seconds(session.runner_pid)
            cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
            report.seconds.append((wall, cpu))
            if header.get("e") != "answer" or header.get("n") != nonce:
                raise _Broken("a message without this test's nonce")
            tail = header.get("stderr")
            report.stderr_tail = tail[-1000:] if isinstance(tail, str) else ""
            if cpu is not None and cpu > limits.timeout_s:
                report.timed_out = True
                report.reason = f"timeout on test {i}: {cpu:.2f} s of CPU exceeded {limits.timeout_s:g} s"
                return True
            status, msg = header.get("s"), str(header.get("m", ""))[:300]
            if status == "signal":
                hint = {"SIGXCPU": " (CPU time limit)", "SIGKILL": " (killed: CPU or memory limit)",
                        "SIGSEGV": " (crash, often the memory limit)", "SIGXFSZ": " (output limit)"}.get(msg, "")
                if msg == "SIGXCPU":
                    report.timed_out = True
                report.reason = f"runtime error on test {i}: killed by {msg}{hint}"
                return True
            if status != "ok":
                report.reason = f"runtime error on test {i}: {msg}"
                return True
            ok, why = judge(i, answer)
            if not ok:
                report.reason = f"wrong answer on test {i}: {why}"
                return True
            report.tests_passed += 1
        report.passed = True
        report.reason = f"passed all {len(inputs)} tests"
        return True
    except _Broken as exc:
        if exc.timeout:
            report.timed_out = True
            report.reason = f"timeout on test {i}: exceeded {limits.timeout_s:g} s (wall clock, measured outside)"
        elif str(exc) == "output limit exceeded":
            report.reason = f"runtime error on test {i}: output limit exceeded"
        else:
            report.reason = f"runtime error on test {i}: {exc}"
        return False


def remove_temp_dirs_of(pid: int) -> None:
    """Remove the temp dirs (reduced mode) and cgroups of sandboxes started by process ``pid`` (a killed
    pool worker)."""
    from vr_plugins.verify.sandbox_cgroup import remove_cgroups_of

    for path in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{pid}-*"):
        _remove_tree(str(path))
    remove_cgroups_of(pid)


def _remove_tree(path: str) -> None:
    """Remove the temp dir even where the program took away permissions on its own subfolders."""
    for root, dirs, _ in os.walk(path):
        for d in dirs:
            try:
                os.chmod(os.path.join(root, d), 0o700, follow_symlinks=False)
            except (OSError, NotImplementedError):
                pass
    shutil.rmtree(path, ignore_errors=True)
