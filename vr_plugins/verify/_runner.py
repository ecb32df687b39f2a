"""The runner that executes INSIDE the sandbox (``python -I -S _runner.py CONFIG``): a zygote per program.

Standard library only and a single file: it runs first in a fresh isolated interpreter. It never runs
the untrusted program itself. For each test the trusted parent sends (input, nonce); the runner forks a
child, the child drops to per-test limits and runs the program once, and the runner sends back
``(nonce, exit status, the program's answer bytes)``. The parent sequences the tests, times each one
from outside and compares answers; expected outputs never enter the sandbox.

Why the program cannot forge the exchange: it runs in a different process from the runner; the runner's
pipes to the parent are closed in the child; the runner is not dumpable (no ``/proc/1/mem``, ``/proc/1/fd``
for the program) and, under bubblewrap, is PID 1 of the sandbox's PID namespace (the kernel does not
deliver SIGKILL from inside the namespace to it); seccomp forbids ptrace. A program that still manages to
write to the parent can only break the framing or the nonce, which the parent grades as a failure.

Framing (both ways): 8 hex digits with the length of a JSON header, the header, then ``header["len"]``
raw payload bytes.

Without bubblewrap (reduced mode, ``CONFIG["selfiso"]``) it isolates itself as well as the OS lets an
unprivileged process: network/PID namespaces, Landlock, rlimits (docs/verification.md, Reduced modes).
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

CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID, CLONE_NEWIPC, CLONE_NEWUTS = 0x10000000, 0x40000000, 0x20000000, 0x08000000, 0x04000000
PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE = 38, 4
SYS_LANDLOCK = (444, 445, 446)  # create_ruleset, add_rule, restrict_self (same number on every arch)
EXIT_ERROR = 3  # the child's "the program failed" status; its message is in status.txt
MSG_CAP = 300

_libc = ctypes.CDLL(None, use_errno=True)


# --- framing --------------------------------------------------------------------------------------
def _read_exact(fd, n):
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv(fd):
    header = json.loads(_read_exact(fd, int(_read_exact(fd, 8), 16)))
    return header, _read_exact(fd, header.get("len", 0))


def send(fd, header, payload=b""):
    header = dict(header, len=len(payload))
    raw = json.dumps(header).encode()
    data = b"%08x" % len(raw) + raw + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# --- reduced mode: isolate this process itself ----------------------------------------------------
def unshare_namespaces(iso):
    """New network + PID (+ IPC, UTS) namespaces (root), or inside a new user namespace (unprivileged)."""
    base = CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    attempts = [base, CLONE_NEWNET] if os.geteuid() == 0 else [CLONE_NEWUSER | base, CLONE_NEWUSER | CLONE_NEWNET]
    for flags in attempts:
        if _libc.unshare(ctypes.c_int(flags)) == 0:
            iso["net_ns"] = True
            iso["pid_ns"] = bool(flags & CLONE_NEWPID)
            iso["ipc_ns"] = iso["uts_ns"] = bool(flags & CLONE_NEWIPC)
            return
        iso["unshare_error"] = os.strerror(ctypes.get_errno())
    iso["net_ns"] = iso["pid_ns"] = False


def landlock(readable, iso):
    """Writes only under the cwd, reads only where Python and its libraries live, no TCP, no signals
    to processes outside the sandbox: as far as the kernel's Landlock ABI allows."""
    syscall = _libc.syscall
    abi = syscall(SYS_LANDLOCK[0], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        iso["landlock"] = 0
        return
    fs_all = (1 << 13) - 1 | (1 << 13 if abi >= 2 else 0) | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    file_rights = 1 | 2 | 4 | (1 << 14 if abi >= 3 else 0) | (1 << 15 if abi >= 5 else 0)
    net = 0b11 if abi >= 4 else 0
    scoped = 0b11 if abi >= 6 else 0
    attr = (ctypes.c_uint64 * 3)(fs_all, net, scoped)
    size = 24 if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = syscall(SYS_LANDLOCK[0], ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        iso["landlock"] = 0
        iso["landlock_error"] = os.strerror(ctypes.get_errno())
        return

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]

    read = 1 | 4 | 8  # execute, read file, read dir
    rules = [(p, read) for p in readable] + [("/proc/self", read), ("/dev/urandom", 4)]
    rules += [(os.getcwd(), fs_all), ("/dev/null", 2 | 4 | (1 << 14 if abi >= 3 else 0))]
    for path, rights in rules:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        if not os.path.isdir(path):
            rights &= file_rights
        rule = PathBeneath(rights, fd)
        syscall(SYS_LANDLOCK[1], ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0))
        os.close(fd)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    ok = syscall(SYS_LANDLOCK[2], ctypes.c_int(ruleset), ctypes.c_uint32(0)) == 0
    os.close(ruleset)
    iso["landlock"] = abi if ok else 0
    iso["landlock_net"] = ok and bool(net)
    iso["landlock_signals"] = ok and bool(scoped)


# --- the audit hook (defence in depth only: the program can switch it off; the OS layers must hold) -
_BLOCKED = {
    "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system", "subprocess.Popen",
    "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "ctypes.dlopen", "ctypes.dlsym",
    "ctypes.dlsym/handle", "ctypes.call_function", "ctypes.cdata", "ctypes.cdata/buffer",
    "socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
    "socket.gethostbyname", "os.chroot", "os.setuid", "sys._current_frames",
}
#: audit event -> positions of its path arguments and of its dir_fd argument (None: it has none)
_PATH_EVENTS = {
    "os.remove": ((0,), 1), "os.rmdir": ((0,), 1), "os.rename": ((0, 1), 2), "os.link": ((0, 1), 2),
    "os.symlink": ((0, 1), 2), "os.truncate": ((0,), None), "os.chmod": ((0,), 2), "os.chown": ((0,), 3),
    "os.mkdir": ((0,), 2), "os.utime": ((0,), 4), "shutil.rmtree": ((0,), None),
    "shutil.copyfile": ((0, 1), None), "os.setxattr": ((0,), None), "os.removexattr": ((0,), None),
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def install_audit_hook(root):
    root = os.path.realpath(root)
    realpath, join, isinstance_, fspath, readlink = os.path.realpath, os.path.join, isinstance, os.fspath, os.readlink

    def inside(path):
        if isinstance_(path, int):  # an fd the program already holds: opened under these same rules
            return True
        p = realpath(join(root, fspath(path) if not isinstance_(path, bytes) else os.fsdecode(path)))
        return p == root or p.startswith(root + "/") or p == "/dev/null"

    def hook(event, args):
        if event in _BLOCKED:
            raise PermissionError(f"sandbox: {event} is not allowed")
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (mode is None and flags & _WRITE_FLAGS)
            if writing and not inside(path):
                raise PermissionError(f"sandbox: open({path!r}) is not allowed")
        elif event in _PATH_EVENTS:
            paths, dir_fd = _PATH_EVENTS[event]
            for k in paths:
                if k < len(args) and args[k] is not None and not inside(args[k]):
                    raise PermissionError(f"sandbox: {event}({args[k]!r}) is not allowed")
            if dir_fd is not None and dir_fd < len(args) and isinstance_(args[dir_fd], int) and args[dir_fd] >= 0:
                try:  # relative to an open directory (shutil.rmtree does this): that directory must be inside
                    ok = inside(readlink(f"/proc/self/fd/{args[dir_fd]}"))
                except OSError:
                    ok = False
                if not ok:
                    raise PermissionError(f"sandbox: {event} with a dir_fd outside the temp dir is not allowed")

    sys.addaudithook(hook)


# --- one test, in a forked child ------------------------------------------------------------------
def _describe(exc):
    if isinstance(exc, OSError) and exc.errno == 27:
        return "output limit exceeded"
    if isinstance(exc, MemoryError):
        return "MemoryError (memory limit)"
    return f"{type(exc).__name__}: {str(exc)[:MSG_CAP]}"


def _child_limits(job):
    cpu = int(math.ceil(job["timeout_s"])) + 1
    limits = {"RLIMIT_CORE": (0, 0), "RLIMIT_CPU": (cpu, cpu + 1),
              "RLIMIT_AS": (job["memory_mb"] << 20,) * 2, "RLIMIT_FSIZE": (job["output_limit"] + 1,) * 2,
              "RLIMIT_NOFILE": (job["open_files"],) * 2}
    if os.geteuid() != 0:  # the kernel exempts root; under bubblewrap the uid is 65534 without capabilities
        uid = os.getuid()
        try:
            mine = sum(1 for e in os.scandir("/proc") if e.name.isdigit() and e.stat().st_uid == uid)
        except OSError:
            mine = 1
        limits["RLIMIT_NPROC"] = (mine + job["procs"],) * 2
    for name, value in limits.items():
        try:
            resource.setrlimit(getattr(resource, name), value)
        except (ValueError, OSError):
            pass


def _run_child(job, code, test_dir, payload, fds, status_w):
    """In the forked child: never returns. Its failure message goes to ``status_w`` (a pipe: a full
    disk cannot swallow it)."""
    status = EXIT_ERROR
    try:
        for fd in fds:
            os.close(fd)
        os.chdir(test_dir)
        call = job["mode"] == "call"
        if not call:
            with open("in.txt", "wb") as fh:
                fh.write(payload)
        for fd, path, flags in ((0, "in.txt" if not call else "/dev/null", os.O_RDONLY),
                                (1, "out.txt" if not call else "prints.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                                (2, "stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
            new = os.open(path, flags, 0o600)
            os.dup2(new, fd)
            os.close(new)
        for sig in (signal.SIGPIPE, signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG instead
        _child_limits(job)
        if job["guard"]:
            install_audit_hook(os.getcwd())
        sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8", errors="replace")
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8")
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", write_through=True)
        args = json.loads(payload) if call else None
        g = {"__name__": "__main__", "__builtins__": builtins}
        msg = ""
        try:
            exec(code, g)
            if call:
                name = job["fn_name"]
                if isinstance(g.get("Solution"), type) and hasattr(g["Solution"], name):
                    fn = getattr(g["Solution"](), name)
                elif callable(g.get(name)):
                    fn = g[name]
                else:
                    raise NameError(f"function {name!r} is not defined")
                text = json.dumps(fn(*args), default=repr)
                with open("answer.json", "w") as fh:
                    fh.write(text)
            sys.stdout.flush()
            status = 0
        except SystemExit as exc:
            if exc.code in (None, 0) and not call:
                sys.stdout.flush()
                status = 0
            else:
                msg = f"exit status {exc.code!r}" if exc.code not in (None, 0) else "exited before returning"
        except BaseException as exc:  # noqa: BLE001 - the program's own failure
            msg = _describe(exc)
        if status:
            try:
                os.write(status_w, msg.encode("utf-8", "replace")[:MSG_CAP])
            except BaseException:  # noqa: BLE001
                pass
    finally:
        os._exit(status)


def _read_capped(path, cap):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        import stat

        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, cap + 1) if cap < (1 << 20) else b"".join(iter(lambda: os.read(fd, 1 << 20), b""))[: cap + 1]
    finally:
        os.close(fd)


def _reap_leftovers(pid1):
    """Kill whatever the test's process left behind (PID 1 only: kill(-1) reaches the whole namespace)."""
    if pid1:
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG if not pid1 else 0)[0] == 0:
                return
        except ChildProcessError:
            return


def _wipe(root):
    """Remove everything under ``root`` (the next program starts with an empty temp dir), even where the
    program took permissions away from its own folders (same uid: it cannot stop its owner)."""
    for dirpath, dirs, files in os.walk(root, topdown=True):
        for d in dirs:
            try:
                os.chmod(os.path.join(dirpath, d), 0o700, follow_symlinks=False)
            except OSError:
                pass
    for dirpath, dirs, files in os.walk(root, topdown=False):
        for name in files:
            try:
                os.unlink(os.path.join(dirpath, name))
            except OSError:
                pass
        for name in dirs:
            path = os.path.join(dirpath, name)
            try:
                os.unlink(path) if os.path.islink(path) else os.rmdir(path)
            except OSError:
                pass


def serve(ctl_in, ctl_out, iso):
    """One program per job; after each, leftovers are killed (per test) and the temp dir wiped, then
    ``clean`` tells the parent this sandbox may take the next program (PID-1 mode only)."""
    send(ctl_out, {"e": "ready", "iso": iso})
    site_done, k = False, 0
    while True:
        job, _ = recv(ctl_in)
        if job.get("e") != "job":
            return
        if not site_done:  # -S skipped site: site-packages (numpy etc.) without running .pth files
            sys.path.extend(job["site"])
            site_done = True
        job["pid1"] = os.getpid() == 1
        k = run_job(ctl_in, ctl_out, job, k)
        _wipe(job["root"])
        send(ctl_out, {"e": "clean"})


def run_job(ctl_in, ctl_out, job, k):
    try:
        code = compile(job["code"], "<solution>", "exec")
    except BaseException as exc:  # noqa: BLE001 - SyntaxError, ValueError (null bytes), RecursionError
        send(ctl_out, {"e": "compile_error", "m": _describe(exc)})
        recv(ctl_in)  # the parent's "end" (any other message ends this job too)
        return k
    send(ctl_out, {"e": "compiled"})
    while True:
        header, payload = recv(ctl_in)
        if header.get("e") != "test":
            return k
        test_dir = os.path.join(job["root"], f"t{k}")
        k += 1
        os.mkdir(test_dir, 0o700)
        status_r, status_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            _run_child(job, code, test_dir, payload, (ctl_in, ctl_out, status_r), status_w)
        os.close(status_w)
        _, wstatus = os.waitpid(pid, 0)
        _reap_leftovers(job["pid1"])  # after this nobody holds status_w: the read below cannot block
        os.set_blocking(status_r, False)  # reduced mode: a leftover process may still hold status_w
        try:
            note = os.read(status_r, MSG_CAP)
        except BlockingIOError:
            note = b""
        os.close(status_r)
        rc = os.waitstatus_to_exitcode(wstatus)
        answer = b""
        if rc == 0:
            status, msg = "ok", ""
            got = _read_capped(os.path.join(test_dir, "answer.json" if job["mode"] == "call" else "out.txt"), job["output_limit"])
            if got is None:
                status, msg = "error", "no answer was written"
            elif len(got) > job["output_limit"]:
                status, msg = "error", "output limit exceeded"
            else:
                answer = got
        elif rc == EXIT_ERROR:
            status = "error"
            msg = note.decode("utf-8", "replace")[:MSG_CAP]
        elif rc < 0:
            status, msg = "signal", signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        else:
            status, msg = "error", f"the interpreter exited with status {rc}"
        tail = (_read_capped(os.path.join(test_dir, "stderr.txt"), 4096) or b"")[-1000:].decode("utf-8", "replace")
        send(ctl_out, {"e": "answer", "n": header.get("n"), "s": status, "m": msg, "stderr": tail}, answer)


def main():
    cfg = json.loads(sys.argv[1])
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # the program (same uid) cannot open /proc/<runner>/mem or fd
    ctl_in, ctl_out = os.dup(0), os.dup(1)  # dup'd fds are not inheritable; 0/1/2 become /dev/null
    null = os.open("/dev/null", os.O_RDONLY)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    iso = {}
    if cfg.get("selfiso"):
        iso.update(net_ns=False, pid_ns=False)
        if cfg["namespaces"]:
            unshare_namespaces(iso)
        if iso["pid_ns"]:
            pid = os.fork()  # the child is PID 1 of the new namespace: when it dies, every process in it dies
            if pid:
                os.close(ctl_in)
                os.close(ctl_out)
                _, status = os.waitpid(pid, 0)
                os._exit(0)
            _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        if cfg["landlock"]:
            landlock(cfg["readable"], iso)
    try:
        serve(ctl_in, ctl_out, iso)
    except (EOFError, BrokenPipeError, ValueError, KeyError):
        pass  # the parent went away or spoke nonsense: nothing to do but stop


if __name__ == "__main__":
    main()
    os._exit(0)  # skip interpreter teardown
