"""Attack battery of the code sandbox: one test per attack class of the threat model (docs/verification.md).

Each attack runs twice, through the real sandbox with every layer on: ``plain``, and ``guards_off``,
where the program first switches off every in-process guard it can reach (it clears the audit hook's
tables in the runner's module, cancels timers, patches the clocks), so only the OS layers and the
parent-side protocol stand. An attack attempts its effect and then prints the right answer, so a
sandbox that let the effect happen would grade it correct: every attack must be graded incorrect, and
its effect is checked absent from the host. Controls are correct programs that must pass.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import sysconfig
import time
import uuid
import warnings

import pytest
from proc_scan import processes_with

from vr_plugins.verify import sandbox_bwrap
from vr_plugins.verify.sandbox import Limits, probe_isolation, run_program

GUARDS_OFF = """
import sys, signal, time
_m = sys.modules.get("__main__")
for _n in ("_BLOCKED", "_PATH_EVENTS"):
    _t = getattr(_m, _n, None)
    if hasattr(_t, "clear"):
        _t.clear()
if _m is not None:
    _m._WRITE_FLAGS = 0
signal.setitimer(signal.ITIMER_REAL, 0)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
time.monotonic = time.perf_counter = time.time = lambda: 0.0
"""
VARIANTS = [pytest.param("", id="plain"), pytest.param(GUARDS_OFF, id="guards_off")]
LIMITS = Limits(timeout_s=1.0, memory_mb=256, startup_s=5.0, disk_mb=16)


@pytest.fixture(scope="module", autouse=True)
def full_isolation():
    why = sandbox_bwrap.unavailable()
    if why:
        pytest.skip(f"the battery checks the full sandbox; bubblewrap is unavailable here: {why}")


def run(code: str, inputs=("",), expect=b"ok\n", limits=LIMITS, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_program(code, list(inputs), lambda i, d: (d == expect, f"got {d[:40]!r}"), limits=limits, **kw)


def attack(prefix: str, body: str) -> str:
    return prefix + "\n" + body + "\nprint('ok')"


def test_guards_off_prelude_really_switches_the_guards_off():
    """Without this, the guards_off variants would test nothing beyond the plain ones."""
    probe = "import ctypes\nctypes.CDLL(None).getpid()\nimport os\nos.fork() or os._exit(0)\nprint('ok')"
    assert not run(probe).passed  # the audit hook refuses ctypes and fork
    assert run(GUARDS_OFF + probe).passed, run(GUARDS_OFF + probe).reason


# --- the protocol ---------------------------------------------------------------------------------
FORGE = """
import os, json
def frame(h, p=b""):
    raw = json.dumps(dict(h, len=len(p))).encode()
    return b"%08x" % len(raw) + raw + p
fake = b"".join(frame({"e": "answer", "n": n, "s": "ok", "m": ""}, b"42\\n") for n in ("", "0", None))
fake += frame({"e": "compiled"}) + b"garbage\\n" + b'{"e": "end"}\\n'
for fd in range(3, 64):
    try:
        os.write(fd, fake)
    except OSError:
        pass
for fd in os.listdir("/proc/1/fd") if os.access("/proc/1/fd", os.R_OK) else []:
    try:
        os.write(os.open(f"/proc/1/fd/{fd}", os.O_WRONLY), fake)
    except OSError:
        pass
print("wrong")
"""


@pytest.mark.parametrize("prefix", VARIANTS)
def test_forged_progress_and_result_messages(prefix):
    report = run(prefix + FORGE, inputs=["", "", ""], expect=b"42\n")
    assert not report.passed and report.tests_passed == 0, report.reason
    assert report.reason.startswith("wrong answer on test 0"), report.reason


@pytest.mark.parametrize("prefix", VARIANTS)
def test_tampering_with_the_runner_process(prefix):
    """ptrace, /proc/1/mem and signals to the runner (PID 1 of the sandbox) all fail."""
    body = ("import os, ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "assert libc.ptrace(16, 1, 0, 0) != 0, 'ptrace attached'\n"
            "try:\n    open('/proc/1/mem', 'rb').read(1)\n    raise SystemExit('read the runner memory')\nexcept OSError:\n    pass\n"
            "os.kill(1, 9)\nos.kill(1, 15)\nprint('wrong')")
    report = run(prefix + body, expect=b"ok\n")
    assert not report.passed
    # the runner survived the signals: what failed is the answer (or the audit hook refused ctypes)
    assert report.reason.startswith(("wrong answer", "runtime error on test 0: PermissionError")), report.reason


@pytest.mark.parametrize("prefix", VARIANTS)
def test_time_limit_cannot_be_tampered_with(prefix):
    for body in ("t = 0\nfor _ in range(10**9):\n    t += 1", "import select\nselect.select([], [], [], 3)"):
        start = time.monotonic()
        report = run(attack(prefix, body), inputs=["", ""])
        assert not report.passed and report.timed_out, report.reason
        assert time.monotonic() - start < 4


# --- sockets and the network ------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", VARIANTS)
def test_unix_socket_to_a_host_socket(prefix):
    """A pathname socket inside the sandbox's read-only view, and an abstract one: neither is reachable."""
    site = os.path.realpath(sysconfig.get_paths()["purelib"])
    path = os.path.join(site, f"vr-battery-{uuid.uuid4().hex[:12]}.sock")
    abstract = f"\0vr-battery-{uuid.uuid4().hex}"
    listeners = []
    try:
        for address in (path, abstract):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(address)
            s.listen(1)
            s.settimeout(0.2)
            listeners.append(s)
        for address in (path, abstract):
            body = (f"import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                    f"s.connect({address!r})\ns.sendall(b'leak')")
            report = run(attack(prefix, body))
            assert not report.passed, report.reason
        for s in listeners:
            with pytest.raises(socket.timeout):
                s.accept()
    finally:
        for s in listeners:
            s.close()
        if os.path.exists(path):
            os.unlink(path)


@pytest.mark.parametrize("prefix", VARIANTS)
@pytest.mark.parametrize("family", ["AF_INET", "AF_NETLINK", "AF_PACKET", "socketpair"])
def test_no_new_sockets_of_any_family(prefix, family):
    body = ("import socket\nsocket.socketpair()" if family == "socketpair"
            else f"import socket\nsocket.socket(socket.{family}, socket.SOCK_RAW if '{family}' != 'AF_INET' else socket.SOCK_DGRAM)")
    report = run(attack(prefix, body))
    assert not report.passed and "runtime error" in report.reason, report.reason


# --- host files and their metadata ----------------------------------------------------------------
def _stat(path):
    st = os.stat(path)
    return st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, os.listxattr(path)


@pytest.mark.parametrize("prefix", VARIANTS)
@pytest.mark.parametrize("op", ["chmod", "chown", "utime", "setxattr", "write", "unlink"])
def test_host_file_metadata_and_contents_outside_tmp(prefix, op):
    """The interpreter binary, the runner and /dev/null are visible inside: none can be changed."""
    targets = [os.path.realpath(sys.executable), "/dev/null"]
    before = [_stat(t) for t in targets]
    calls = {"chmod": "os.chmod(t, 0o777)", "chown": "os.chown(t, 12345, 12345)", "utime": "os.utime(t, (0, 0))",
             "setxattr": "os.setxattr(t, 'user.vr', b'x')", "write": "open(t, 'ab').write(b'')" if False else "open(t, 'r+b').write(b'\\0')",
             "unlink": "os.unlink(t)"}
    for t in targets + ["/opt/vr/runner.py"]:
        if t == "/dev/null" and op == "write":
            continue  # writing to /dev/null is allowed and harmless
        report = run(attack(prefix, f"import os\nt = {t!r}\n{calls[op]}"))
        assert not report.passed, (t, report.reason)
    assert [_stat(t) for t in targets] == before


@pytest.mark.parametrize("prefix", VARIANTS)
def test_secret_host_files_are_not_in_view(prefix, tmp_path):
    """Only the bound paths exist (their parent directories are empty skeletons)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("vr-secret")
    body = (f"import os\nseen = []\nfor p in [{str(secret)!r}, '/etc/shadow', '/etc/passwd', '/proc/1/environ']:\n"
            "    try:\n        seen.append(open(p).read())\n    except OSError:\n        pass\n"
            f"bound = {sorted({os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)})!r}\n"
            "for top in ['/root', '/work', '/home', '/run', '/var', '/etc', '/tmp']:\n"
            "    for root, dirs, files in os.walk(top):\n        seen += files\n"
            "        dirs[:] = [d for d in dirs if os.path.join(root, d) not in bound]\n"
            "print(seen)")
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = run_program(prefix + body, [""], lambda i, d: (seen.append(d) or True, ""), limits=LIMITS)
    assert report.passed and seen, report.reason
    assert b"vr-secret" not in seen[0] and b"root:" not in seen[0] and b"secret.txt" not in seen[0]
    assert set(eval(seen[0])) <= {"ld.so.cache", "localtime", "in.txt", "out.txt", "stderr.txt"}, seen[0]


@pytest.mark.parametrize("prefix", VARIANTS)
def test_chattr_immutable_leaves_nothing_behind(prefix):
    body = ("import fcntl, os, struct\nopen('f', 'w').close()\nfd = os.open('f', os.O_RDONLY)\n"
            "fcntl.ioctl(fd, 0x40086602, struct.pack('l', 0x10))")  # FS_IOC_SETFLAGS, FS_IMMUTABLE_FL
    ours = lambda: {p for p in os.listdir("/tmp") if p.startswith(f"vr-sandbox-{os.getpid()}-")}  # noqa: E731
    before = ours()  # a warm reduced-mode sandbox of an earlier test may own one; this check must add none
    report = run(attack(prefix, body))
    assert not report.passed
    assert not ours() - before


@pytest.mark.parametrize("prefix", VARIANTS)
def test_disk_fill_beyond_the_quota(prefix):
    body = "chunk = b'x' * (1 << 20)\nwith open('fill', 'wb') as fh:\n    for _ in range(200):\n        fh.write(chunk)"
    start = time.monotonic()
    report = run(attack(prefix, body), limits=Limits(**{**LIMITS.__dict__, "output_limit_bytes": 1 << 30}))
    assert not report.passed and "No space left" in report.reason, report.reason
    assert time.monotonic() - start < 5


# --- kernel objects that outlive processes --------------------------------------------------------
@pytest.mark.parametrize("prefix", VARIANTS)
def test_sethostname(prefix):
    host = socket.gethostname()
    report = run(attack(prefix, "import socket\nsocket.sethostname('pwned')"))
    assert not report.passed and socket.gethostname() == host


def _sysv_keys() -> set[str]:
    keys = set()
    for kind in ("shm", "msg", "sem"):
        try:
            with open(f"/proc/sysvipc/{kind}") as fh:
                keys |= {line.split()[0] for line in fh.readlines()[1:]}
        except OSError:
            pass
    return keys


@pytest.mark.parametrize("prefix", VARIANTS)
@pytest.mark.parametrize("kind", ["shmget", "msgget", "semget", "add_key"])
def test_sysv_ipc_and_keyrings_do_not_persist(prefix, kind):
    key = 0x5652_0000 + uuid.uuid4().int % 0xFFFF
    desc = f"vr-battery-{uuid.uuid4().hex[:8]}"
    calls = {"shmget": f"libc.shmget({key}, 4096, 0o1666)", "msgget": f"libc.msgget({key}, 0o1666)",
             "semget": f"libc.semget({key}, 1, 0o1666)",
             "add_key": f"libc.syscall(248, b'user', {desc.encode()!r}, b'x', 1, -2)"}  # KEY_SPEC_SESSION_KEYRING
    body = f"import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nif {calls[kind]} < 0:\n    raise OSError(ctypes.get_errno(), '{kind}')"
    report = run(attack(prefix, body))
    assert not report.passed, report.reason
    assert str(key) not in _sysv_keys()
    with open("/proc/keys") as fh:
        assert desc not in fh.read()


# --- processes and memory -------------------------------------------------------------------------
def _processes_with_cmdline(marker: str) -> list[int]:
    return processes_with(marker, "cmdline")


@pytest.mark.parametrize("prefix", VARIANTS)
def test_fork_bomb_and_survivors(prefix):
    if prefix and os.geteuid() == 0 and not probe_isolation().get("cgroup"):
        pytest.skip("root without a writable cgroup: RLIMIT_NPROC does not bind, an unguarded fork bomb "
                    "would exhaust this machine (the sandbox warns about the missing layer)")
    marker = f"61.{uuid.uuid4().int % 10**9}"
    body = (f"import os\nif os.fork() == 0:\n    os.setsid()\n    os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
            "while True:\n    os.fork()")
    start = time.monotonic()
    report = run(attack(prefix, body))
    assert not report.passed and time.monotonic() - start < 6, report.reason
    time.sleep(0.2)
    assert _processes_with_cmdline(marker) == []


@pytest.mark.parametrize("prefix", VARIANTS)
def test_threads_count_against_the_process_limit(prefix):
    body = "import threading, time\nfor _ in range(200):\n    threading.Thread(target=time.sleep, args=(5,), daemon=True).start()"
    report = run(attack(prefix, body))
    assert not report.passed and "can't start new thread" in report.reason, report.reason


@pytest.mark.parametrize("prefix", VARIANTS)
def test_memory_bomb(prefix):
    report = run(attack(prefix, "x = bytearray(1 << 31)"))
    assert not report.passed and "MemoryError" in report.reason, report.reason


@pytest.mark.parametrize("prefix", VARIANTS)
def test_nested_namespaces_and_mounts(prefix):
    for body in ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.unshare(0x10000000) != 0, 'new userns'",
                 "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                 "assert libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) != 0, 'mounted'\n"
                 "assert libc.mount(None, b'/usr', None, 0x20 | 0x1000, None) != 0, 'remounted'"):
        report = run(prefix + body + "\nprint('wrong')")
        assert not report.passed and not report.reason.startswith("runtime error on test 0: AssertionError"), report.reason


# --- correct programs must pass -------------------------------------------------------------------
CONTROLS = {
    "dirs_and_files": ("import os, shutil\nos.makedirs('a/b/c', exist_ok=True)\nos.mkdir('d', 0o755)\nos.chmod('d', 0o700)\n"
                       "open('a/b/c/f.txt', 'w').write('x')\nos.rename('a/b/c/f.txt', 'd/g.txt')\nos.utime('d/g.txt')\n"
                       "shutil.rmtree('a')\nprint('ok' if os.listdir('d') == ['g.txt'] else 'bad')"),
    "deep_recursion": ("import sys\nsys.setrecursionlimit(10**6)\ndef depth(n):\n    return 0 if n == 0 else 1 + depth(n - 1)\n"
                       "print('ok' if depth(10**5) == 10**5 else 'bad')"),
    "stdlib": ("import collections, heapq, itertools, re, json, fractions, decimal, datetime, random, bisect, functools, math, "
               "statistics, string, array, tempfile\n"
               "h = [5, 1, 3]; heapq.heapify(h)\n@functools.lru_cache(None)\ndef fib(n): return n if n < 2 else fib(n-1) + fib(n-2)\n"
               "ok = h[0] == 1 and fib(80) == 23416728348467685 and fractions.Fraction(1, 3) * 3 == 1 and re.match(r'a+', 'aaa')\n"
               "tempfile.NamedTemporaryFile().close()\nprint('ok' if ok else 'bad')"),
    "one_second_of_cpu": ("import time\nt = time.process_time()\nn = 0\nwhile time.process_time() - t < 0.8:\n    n += 1\nprint('ok')"),
    "large_input": "import sys\ndata = sys.stdin.buffer.read()\nprint('ok' if len(data) == 2 << 20 else len(data))",
    "threads": ("import threading\nout = []\nts = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]\n"
                "[t.start() for t in ts]\n[t.join() for t in ts]\nprint('ok' if sorted(out) == list(range(8)) else 'bad')"),
    "exit_itself": "import os, sys\nprint('ok')\nsys.stdout.flush()\nos._exit(0)",
}


@pytest.mark.parametrize("name", sorted(CONTROLS))
def test_correct_programs_pass(name):
    inputs = ["x" * (2 << 20)] if name == "large_input" else ["", ""]
    report = run(CONTROLS[name], inputs=inputs, limits=Limits(**{**LIMITS.__dict__, "timeout_s": 4.0}))
    assert report.passed, report.reason
    assert all(wall <= 4.0 for wall, _ in report.seconds)


def test_numpy_control_if_installed():
    pytest.importorskip("numpy")
    report = run("import numpy as np\nprint('ok' if int(np.arange(10).sum()) == 45 else 'bad')",
                 limits=Limits(**{**LIMITS.__dict__, "timeout_s": 10.0, "memory_mb": 1024}))
    assert report.passed, report.reason


def test_call_based_answers_are_return_values():
    report = run("class Solution:\n    def f(self, x):\n        print('noise')\n        return x + 1", inputs=[[1], [2]],
                 mode="call", fn_name="f", expect=None)
    assert not report.passed  # expect=None never matches: the judge saw the JSON, not the prints
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = run_program("class Solution:\n    def f(self, x):\n        print('noise')\n        return x + 1", [[1], [2]],
                             lambda i, d: (json.loads(d) == [2, 3][i], d), mode="call", fn_name="f", limits=LIMITS)
    assert report.passed, report.reason


def test_an_environment_under_tmp_is_importable_and_the_rest_of_tmp_stays_hidden(monkeypatch, tmp_path_factory):
    """A checkout or venv in /tmp/...: bound read-only above the private tmpfs, so its packages import; the
    host's other /tmp files are still not there (the tmpfs hides them), and the bound one is not writable."""
    import tempfile

    from vr_plugins.verify import sandbox

    site = tempfile.mkdtemp(prefix="vr-site-", dir="/tmp")
    secret = tempfile.mkdtemp(prefix="vr-secret-", dir="/tmp")
    try:
        with open(os.path.join(site, "vr_tmp_probe.py"), "w") as fh:
            fh.write("VALUE = 45\n")
        with open(os.path.join(secret, "key"), "w") as fh:
            fh.write("hidden\n")
        monkeypatch.setattr(sandbox, "_site_paths", lambda: [site])
        code = (f"import os, sys\nsys.path.insert(0, {site!r})\nimport vr_tmp_probe\n"
                f"hidden = not os.path.exists({os.path.join(secret, 'key')!r})\n"
                f"try:\n    open({os.path.join(site, 'x')!r}, 'w'); writable = True\n"
                f"except OSError:\n    writable = False\n"
                f"print('ok' if vr_tmp_probe.VALUE == 45 and hidden and not writable else 'bad')")
        # a disk size no other test uses: a fresh sandbox built with the patched view, not a warm one
        report = run(code, limits=Limits(**{**LIMITS.__dict__, "disk_mb": 19, "timeout_s": 5.0}))
        assert report.passed, report.reason
    finally:
        sandbox._close_idle()
        for d in (site, secret):
            for name in os.listdir(d):
                os.unlink(os.path.join(d, name))
            os.rmdir(d)
