"""The seccomp allow list of the code sandbox (vr_plugins/verify/sandbox_seccomp.py, docs/verification.md).

The filter is default-deny: a syscall not in ``ALLOW`` fails with EPERM. These tests run programs
through the real sandbox with the audit hook off (ctypes, fork and subprocess reach the kernel, so only
the OS layers stand) and grade them by what they print: an unlisted, harmless-looking call must come
back EPERM with the filter and not without it (so the test can fail both ways), ``clone3`` ENOSYS, and
correct programs that use threads, processes, subprocess, numpy, files and CPU time must still pass.
"""

from __future__ import annotations

import errno

import pytest
from test_verify_sandbox_attacks import LIMITS, run

from vr_plugins.verify import sandbox_bwrap, sandbox_seccomp
from vr_plugins.verify.sandbox import Limits

OS_ONLY = Limits(**{**LIMITS.__dict__, "audit_hook": False, "timeout_s": 4.0, "memory_mb": 1024})  # 8 threads: 8 stacks
NO_FILTER = Limits(**{**OS_ONLY.__dict__, "seccomp": False})


@pytest.fixture(scope="module")
def sandboxed():
    why = sandbox_bwrap.unavailable()
    if why:
        pytest.skip(f"needs bubblewrap: {why}")
    bpf = sandbox_seccomp.compiled_filter()
    if not isinstance(bpf, bytes):
        pytest.skip(f"needs libseccomp: {bpf}")


def _denied() -> set[str]:
    return {name for names in sandbox_seccomp.DENY.values() for name in names}


def test_allow_and_deny_are_disjoint():
    allowed = sandbox_seccomp.allowed_names()
    assert not allowed & _denied()
    assert "clone3" not in allowed  # ENOSYS, its own rule
    assert {"socket", "socketpair", "ptrace", "keyctl", "mount", "unshare", "shmget", "bpf"} <= _denied()
    assert all(names and len(set(names)) == len(names) for names in sandbox_seccomp.ALLOW.values())


def _errno_of(name: str, args: str) -> str:
    """A program that makes syscall ``name`` and prints its errno (0: it succeeded)."""
    nr = sandbox_seccomp.syscall_number(name)
    return ("import ctypes, mmap\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n"
            "buf = ctypes.create_string_buffer(64)\npage = mmap.mmap(-1, 4096)\n"
            "addr = ctypes.addressof(ctypes.c_char.from_buffer(page))\n"
            f"rc = libc.syscall(ctypes.c_long({nr}), {args})\nprint(ctypes.get_errno() if rc < 0 else 0)")


#: unlisted, harmless-looking syscalls that CPython does not make, with arguments that make them succeed
#: (or fail with some errno other than EPERM) without the filter
UNLISTED = {
    "getcpu": "ctypes.byref(buf, 0), ctypes.byref(buf, 8), None",
    "mincore": "ctypes.c_void_p(addr), ctypes.c_size_t(4096), ctypes.byref(buf)",
    "landlock_create_ruleset": "None, ctypes.c_size_t(0), ctypes.c_uint32(1)",  # asks the ABI version
    "sysfs": "ctypes.c_int(3)",  # how many filesystem types the kernel knows
}


@pytest.mark.parametrize("name", sorted(UNLISTED))
def test_an_unlisted_syscall_gets_eperm(sandboxed, name):
    if sandbox_seccomp.syscall_number(name) is None:
        pytest.skip(f"{name} is not a syscall on this architecture")
    assert name not in sandbox_seccomp.allowed_names() | _denied()
    code = _errno_of(name, UNLISTED[name])
    report = run(code, expect=b"%d\n" % errno.EPERM, limits=OS_ONLY)
    assert report.passed and report.isolation.get("seccomp"), report.reason
    # the EPERM is the filter's: without it the same call succeeds or fails otherwise
    report = run(code, expect=b"%d\n" % errno.EPERM, limits=NO_FILTER)
    assert not report.passed and report.reason.startswith("wrong answer"), report.reason


def test_clone3_gets_enosys_and_clone_with_namespace_flags_eperm(sandboxed):
    code = _errno_of("clone3", "None, ctypes.c_size_t(0)")
    assert run(code, expect=b"%d\n" % errno.ENOSYS, limits=OS_ONLY).passed
    report = run(code, expect=b"%d\n" % errno.ENOSYS, limits=NO_FILTER)  # EFAULT/EINVAL: NULL arguments
    assert not report.passed and report.reason.startswith("wrong answer"), report.reason
    for flag in sandbox_seccomp.CLONE_NS_FLAGS:  # SIGCHLD | one namespace flag: never a child
        report = run(_errno_of("clone", f"ctypes.c_ulong({flag | 17}), None, None, None, None"),
                     expect=b"%d\n" % errno.EPERM, limits=OS_ONLY)
        assert report.passed, (hex(flag), report.reason)


CONTROLS = {
    "deep_recursion": """
import sys, threading
sys.setrecursionlimit(10**6)
threading.stack_size(32 << 20)
def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)
out = []
t = threading.Thread(target=lambda: out.append(depth(10**5)))
t.start()
t.join()
print('ok' if out == [10**5] and depth(10**5) == 10**5 else 'bad')
""",
    "threads": """
import concurrent.futures as cf, queue, threading, time
q = queue.Queue()
lock = threading.Lock()
def work(i):
    with lock:
        q.put(i)
    time.sleep(0.01)
    return i * i
with cf.ThreadPoolExecutor(8) as ex:
    r = list(ex.map(work, range(64)))
print('ok' if r == [i * i for i in range(64)] and q.qsize() == 64 else 'bad')
""",
    # Process and one-way Pipes work; Pool/Queue/Lock need /dev/shm semaphores, which the view lacks
    "multiprocessing": """
import multiprocessing as mp
def child(w):
    w.send(sum(range(10**5)))
    w.close()
ctx = mp.get_context('fork')
r, w = ctx.Pipe(duplex=False)
ps = [ctx.Process(target=child, args=(w,)) for _ in range(3)]
[p.start() for p in ps]
got = [r.recv() for _ in ps]
[p.join() for p in ps]
print('ok' if got == [sum(range(10**5))] * 3 and all(p.exitcode == 0 for p in ps) else 'bad')
""",
    "subprocess_of_python": """
import subprocess, sys
r = subprocess.run([sys.executable, '-c', 'import sys; print(6 * int(sys.stdin.read()))'], input=b'7',
                   capture_output=True, timeout=3)
s = subprocess.run(['/bin/sh', '-c', 'echo 1'], capture_output=True, timeout=3)
print('ok' if r.stdout == b'42\\n' and s.stdout == b'1\\n' else ('bad', r, s))
""",
    "dirs_and_files": """
import os, shutil, sqlite3, tempfile
os.makedirs('a/b', exist_ok=True)
os.mkdir('d', 0o755)
os.chmod('d', 0o700)
with open('a/b/f', 'w') as fh:
    fh.write('x' * 10000)
shutil.copy2('a/b/f', 'd/g')
os.symlink('d/g', 'ln')
os.rename('ln', 'ln2')
os.utime('d/g')
with tempfile.TemporaryDirectory(dir='.') as t:
    open(os.path.join(t, 'x'), 'w').close()
db = sqlite3.connect('db')
db.execute('create table t(x)')
db.commit()
db.close()
shutil.rmtree('a')
print('ok' if sorted(os.listdir('d')) == ['g'] and os.path.getsize('ln2') == 10000 else 'bad')
""",
    "one_second_of_cpu": """
import time
t = time.process_time()
n = 0
while time.process_time() - t < 0.8:
    n += 1
print('ok')
""",
    "sleep_signals_select": """
import select, signal, time
fired = []
signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
signal.setitimer(signal.ITIMER_REAL, 0.05)
time.sleep(0.2)
select.select([], [], [], 0.01)
select.poll().poll(10)
print('ok' if fired else 'bad')
""",
}


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_correct_programs_pass_under_the_allow_list(sandboxed, name):
    report = run(CONTROLS[name], inputs=["", ""], limits=OS_ONLY)
    assert report.passed and report.isolation.get("seccomp"), (report.reason, report.stderr_tail)


def test_numpy_passes_under_the_allow_list(sandboxed):
    pytest.importorskip("numpy")
    code = ("import numpy as np\na = np.random.default_rng(0).random((200, 200))\nb = a @ a.T + np.eye(200)\n"
            "x = np.linalg.solve(b, a[0])\nf = np.fft.fft(a[0])\n"
            "print('ok' if np.allclose(b @ x, a[0]) and abs(f[0] - a[0].sum()) < 1e-9 else 'bad')")
    report = run(code, limits=Limits(**{**OS_ONLY.__dict__, "timeout_s": 10.0}))
    assert report.passed and report.isolation.get("seccomp"), (report.reason, report.stderr_tail)
