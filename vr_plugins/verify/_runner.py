"""The program runner that executes INSIDE the sandbox (``python -I -S _runner.py`` in an empty temp dir).

Standard library only and a single file: it runs before anything else in a fresh isolated interpreter.
It isolates itself (network/PID namespaces, rlimits, Landlock, an audit hook), then runs the untrusted
program once per test in this one interpreter and reports *observations* only (status per test; the
program's output stays in ``out-<i>`` files that the trusted parent reads and judges). The expected
outputs never enter the sandbox, so a program that forges the report cannot forge a pass.

Protocol: the parent writes ``job.json`` into the cwd; this script reads and deletes it and writes JSON
lines to its stdout (the only fd the parent listens to): ``meta``, ``compile_error``, ``start``, ``done``,
``end``.
"""

import builtins
import ctypes
import io
import json
import math
import os
import resource
import signal
import sys
import time

CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x10000000, 0x40000000, 0x20000000
PR_SET_NO_NEW_PRIVS = 38
SYS_LANDLOCK = (444, 445, 446)  # create_ruleset, add_rule, restrict_self (same number on every arch)

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_RESULT_FD = os.dup(1)  # the pipe to the parent; fd 1 becomes each test's output file
os.set_inheritable(_RESULT_FD, False)


def emit(**event):
    os.write(_RESULT_FD, (json.dumps(event) + "\n").encode())


# --- isolation ------------------------------------------------------------------------------------
def unshare_namespaces(iso):
    """New network + PID namespaces (root), or inside a new user namespace (unprivileged)."""
    base = CLONE_NEWNET | CLONE_NEWPID
    attempts = [base] if os.geteuid() == 0 else [CLONE_NEWUSER | base]
    attempts += [CLONE_NEWUSER | CLONE_NEWNET] if os.geteuid() != 0 else [CLONE_NEWNET]
    for flags in attempts:
        if _libc.unshare(ctypes.c_int(flags)) == 0:
            iso["net_ns"] = True
            iso["pid_ns"] = bool(flags & CLONE_NEWPID)
            return
        iso["unshare_error"] = os.strerror(ctypes.get_errno())
    iso["net_ns"] = iso["pid_ns"] = False


def set_limits(job, iso):
    wall = job["timeout_s"] * max(1, len(job["inputs"])) + job["timeout_s"]
    cpu = int(math.ceil(wall)) + 1
    limits = {
        "RLIMIT_CORE": 0,
        "RLIMIT_CPU": cpu,
        "RLIMIT_AS": job["memory_mb"] * 1024 * 1024,
        "RLIMIT_FSIZE": job["output_limit"],
        "RLIMIT_NOFILE": job["open_files"],
    }
    if os.geteuid() != 0:
        uid = os.getuid()
        try:
            mine = sum(1 for e in os.scandir("/proc") if e.name.isdigit() and e.stat().st_uid == uid)
        except OSError:
            mine = 0
        limits["RLIMIT_NPROC"] = mine + job["procs"]
    else:
        iso["nproc_note"] = "uid 0: the kernel exempts root from RLIMIT_NPROC"
    for name, value in limits.items():
        res = getattr(resource, name)
        hard = value + 1 if name == "RLIMIT_CPU" else value
        try:
            resource.setrlimit(res, (value, hard))
        except (ValueError, OSError) as exc:
            iso.setdefault("rlimit_errors", []).append(f"{name}: {exc}")
    iso["rlimits"] = sorted(limits)


def landlock(job, iso):
    """Writes only under the temp dir, reads only where Python and its libraries live, no TCP, no
    signals to processes outside the sandbox: as far as the kernel's Landlock ABI allows."""
    abi = _syscall(SYS_LANDLOCK[0], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        iso["landlock"] = 0
        return
    fs_all = (1 << 13) - 1 | (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    file_rights = 1 | 2 | 4 | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    net = 0b11 if abi >= 4 else 0
    scoped = 0b11 if abi >= 6 else 0
    attr = (ctypes.c_uint64 * 3)(fs_all, net, scoped)
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = _syscall(SYS_LANDLOCK[0], ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        iso["landlock"] = 0
        iso["landlock_error"] = os.strerror(ctypes.get_errno())
        return

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]

    read = 1 | 4 | 8  # execute, read file, read dir
    rules = [(p, read) for p in job["readable"]] + [("/proc/self", read), ("/dev/urandom", 4)]
    rules += [(os.getcwd(), fs_all), ("/dev/null", 2 | 4 | (1 << 14 if abi >= 3 else 0))]
    for path, rights in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        if not os.path.isdir(path):
            rights &= file_rights
        rule = PathBeneath(rights, fd)
        _syscall(SYS_LANDLOCK[1], ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0))
        os.close(fd)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    ok = _syscall(SYS_LANDLOCK[2], ctypes.c_int(ruleset), ctypes.c_uint32(0)) == 0
    os.close(ruleset)
    iso["landlock"] = abi if ok else 0
    iso["landlock_net"] = ok and bool(net)
    iso["landlock_signals"] = ok and bool(scoped)


# --- the audit hook (defence in depth: Python-level, bypassable in principle, hence not the only layer)
_BLOCKED = {
    "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen",
    "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.dlopen", "ctypes.dlsym",
    "ctypes.dlsym/handle", "ctypes.call_function", "ctypes.cdata", "ctypes.cdata/buffer",
    "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
    "socket.gethostbyname", "os.chroot", "os.setuid",
    "sys._current_frames",
}
_PATH_EVENTS = {
    "os.remove": 1, "os.rmdir": 1, "os.rename": 2, "os.link": 2, "os.symlink": 2, "os.truncate": 1,
    "os.chmod": 1, "os.chown": 1, "os.mkdir": 1, "os.utime": 1, "shutil.rmtree": 1, "shutil.copyfile": 2,
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def install_audit_hook(root):
    root = os.path.realpath(root)
    me = str(os.getpid())
    realpath, join, isinstance_, fspath = os.path.realpath, os.path.join, isinstance, os.fspath

    def inside(path):
        if isinstance_(path, int):
            return True
        p = realpath(join(root, fspath(path) if not isinstance_(path, bytes) else os.fsdecode(path)))
        return p == root or p.startswith(root + "/") or p == "/dev/null"

    def proc_ok(path):
        if isinstance_(path, int):
            return True
        p = realpath(fspath(path) if not isinstance_(path, bytes) else os.fsdecode(path))
        if not p.startswith("/proc/"):
            return True
        part = p.split("/")[2]
        return part == me or not part.isdigit() and part not in ("self", "thread-self")

    def hook(event, args):
        if event in _BLOCKED:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (mode is None and flags & _WRITE_FLAGS)
            if (writing and not inside(path)) or not proc_ok(path):
                raise PermissionError(f"sandbox: open({path!r}) is not allowed")
        elif event in _PATH_EVENTS:
            for path in args[: _PATH_EVENTS[event]]:
                if path is not None and not inside(path):
                    raise PermissionError(f"sandbox: {event}({path!r}) is not allowed")
            if any(a is not None and isinstance_(a, int) and a >= 0 for a in args[_PATH_EVENTS[event]:]):
                raise PermissionError(f"sandbox: {event} with dir_fd is not allowed")

    sys.addaudithook(hook)


# --- running tests --------------------------------------------------------------------------------
class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def _describe(exc):
    if isinstance(exc, OSError) and exc.errno == 27:
        return "output limit exceeded"
    if isinstance(exc, MemoryError):
        return "MemoryError (memory limit)"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _redirect(fd, path, flags):
    new = os.open(path, flags, 0o600)
    if new != fd:  # the program may have closed fd (open(0) closes it on collection): then new == fd
        os.dup2(new, fd)
        os.close(new)


def _fresh_stdio():
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8", errors="replace")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8")


def _run_one(func, timeout_s):
    """Run ``func`` under a per-test alarm; returns (status, message)."""
    signal.signal(signal.SIGALRM, _alarm)
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    status, msg = "ok", ""
    try:
        func()
    except SystemExit as exc:
        if exc.code not in (None, 0):
            status, msg = "error", f"exit status {exc.code!r}"
    except _Timeout:
        status, msg = "timeout", f"exceeded {timeout_s:g} s"
    except BaseException as exc:  # noqa: BLE001 - the program's own failure
        status, msg = "error", _describe(exc)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        sys.stdout.flush()
    except BaseException as exc:  # noqa: BLE001
        if status == "ok":
            status, msg = "error", _describe(exc)
    if status == "ok" and time.monotonic() - start > timeout_s:
        status, msg = "timeout", f"exceeded {timeout_s:g} s"
    return status, msg


def run_tests(job, code):
    timeout_s = job["timeout_s"]
    if job["mode"] == "stdin":
        for i in range(job["first"], len(job["inputs"])):
            _redirect(0, f"in-{i}.txt", os.O_RDONLY)
            _redirect(1, f"out-{i}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            _fresh_stdio()
            g = {"__name__": "__main__", "__builtins__": builtins}
            emit(e="start", i=i)
            status, msg = _run_one(lambda g=g: exec(code, g), timeout_s)
            emit(e="done", i=i, s=status, m=msg)
            if status != "ok":
                return
        return
    # call-based: define once, call fn_name(*args) per test; the runner serialises each return value
    _redirect(0, "/dev/null", os.O_RDONLY)
    _redirect(1, "prints.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    _fresh_stdio()
    g = {"__name__": "__main__", "__builtins__": builtins}
    status, msg = _run_one(lambda: exec(code, g), timeout_s)
    if status != "ok":
        emit(e="done", i=job["first"], s=status, m="while defining the solution: " + msg)
        return
    name = job["fn_name"]
    for i in range(job["first"], len(job["inputs"])):
        emit(e="start", i=i)
        box = {}

        def call(i=i, box=box):
            if isinstance(g.get("Solution"), type) and hasattr(g["Solution"], name):
                fn = getattr(g["Solution"](), name)
            elif callable(g.get(name)):
                fn = g[name]
            else:
                raise NameError(f"function {name!r} is not defined")
            box["r"] = fn(*job["inputs"][i])

        status, msg = _run_one(call, timeout_s)
        if status == "ok":
            try:
                text = json.dumps(box.get("r"), default=repr)
                with open(f"out-{i}.json", "w") as fh:
                    fh.write(text)
            except BaseException as exc:  # noqa: BLE001
                status, msg = "error", "result not serialisable: " + _describe(exc)
        emit(e="done", i=i, s=status, m=msg)
        if status != "ok":
            return


def main():
    with open("job.json") as fh:
        job = json.load(fh)
    os.unlink("job.json")
    sys.path.extend(job["site"])  # -S skipped site: add site-packages (numpy etc.) without running .pth files
    try:
        code = compile(job["code"], "<solution>", "exec")
    except BaseException as exc:  # noqa: BLE001 - SyntaxError, ValueError (null bytes), RecursionError
        emit(e="compile_error", m=_describe(exc))
        return
    if job["mode"] == "stdin":
        for i in range(job["first"], len(job["inputs"])):
            with open(f"in-{i}.txt", "w", encoding="utf-8") as fh:
                fh.write(job["inputs"][i])
    iso = {"net_ns": False, "pid_ns": False}
    if job["namespaces"]:
        unshare_namespaces(iso)
    if iso["pid_ns"]:
        pid = os.fork()  # the child is PID 1 of the new namespace: when it dies, every process in it dies
        if pid:
            os.close(0)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            os._exit(128 - code if code < 0 else code)  # killed by signal N -> 128 + N, as a shell does
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG instead
    set_limits(job, iso)
    if job["landlock"]:
        landlock(job, iso)
    if job["guard"]:
        install_audit_hook(os.getcwd())
    iso["audit_hook"] = bool(job["guard"])
    emit(e="meta", iso=iso)
    _redirect(2, "stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", write_through=True)
    run_tests(job, code)
    emit(e="end")


if __name__ == "__main__":
    main()
    os._exit(0)  # skip interpreter teardown: atexit handlers the program may have registered never run
