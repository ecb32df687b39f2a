"""Security battery of the code sandbox (docs/verification.md).

Every attack prints the expected output AFTER attempting its effect, so a sandbox that let the effect
happen silently would grade it correct: the battery can fail both ways. Each attack runs through a
shared CheckPool, followed by a correct program that must still pass (the pool keeps working), and
the effect itself is checked from outside (the victim file exists, the listener received nothing, no
process survives, the secret never appears). ``os_only`` repeats the attacks with the audit hook off,
so the OS layers (bubblewrap, seccomp, rlimits; Landlock in the reduced mode) are shown to hold on their
own. tests/test_verify_sandbox_attacks.py is the battery of the attack classes of the threat model.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import pytest
from proc_scan import processes_with

from vr_plugins.verify import sandbox
from vr_plugins.verify.pool import CheckPool, Item
from vr_plugins.verify.sandbox import Limits, SandboxIsolationWarning, run_program

TESTS = json.dumps({"inputs": [""], "outputs": ["ok\n"]})
GOOD = "```python\nprint('ok')\n```"
FAST = {"startup_s": 3.0}


def fence(code: str) -> str:
    return f"```python\n{code}\n```"


@pytest.fixture(scope="module")
def pool():
    with CheckPool("vr_plugins.verify.code:check", workers=2, preload=["vr_plugins.verify.code"]) as p:
        yield p


@pytest.fixture(scope="module")
def isolation():
    """What this machine's kernel provides (some layers are skipped in os_only mode without it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_program("print(1)", [""], lambda i, d: (True, ""), limits=Limits(timeout_s=2)).isolation


def grade(pool, code: str, audit_hook: bool = True, timeout_s: float = 1.0, memory_mb: int = 256, tests=TESTS):
    options = {"code_timeout_s": timeout_s, "memory_mb": memory_mb, "sandbox": {**FAST, "audit_hook": audit_hook}}
    row = {"tests": tests}
    good = {**options, "code_timeout_s": 10.0}  # runs beside the attack, on a machine the attack may load
    outs = {o.key: o for o in pool.run([Item("attack", [row, fence(code), options], 30.0),
                                        Item("good", [row, GOOD, good], 30.0)])}
    assert outs["good"].correct, f"pool broken after the attack: {outs['good'].reason}"
    return outs["attack"]


MODES = [pytest.param(True, id="all_layers"), pytest.param(False, id="os_only")]


def fs_isolated(iso: dict) -> bool:
    """Host files are out of the program's reach by the OS (bubblewrap's read-only view, or Landlock)."""
    return bool(iso.get("readonly_view") or iso.get("landlock"))


def test_correct_program_is_graded_correct(pool):
    out = grade(pool, "import sys\nprint(sys.stdin.read() or 'ok')")
    assert out.correct and out.reason.startswith("passed")


@pytest.mark.parametrize("audit_hook", MODES)
@pytest.mark.parametrize("how", ["os.remove", "posix.unlink", "os.rename"])
def test_cannot_delete_a_file_outside(pool, tmp_path, isolation, audit_hook, how):
    if not audit_hook and not fs_isolated(isolation):
        pytest.skip("no Landlock on this kernel: only the audit hook protects files of the same user")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    call = {"os.remove": f"import os; os.remove({str(victim)!r})",
            "posix.unlink": f"import posix; posix.unlink({str(victim)!r})",
            "os.rename": f"import os; os.rename({str(victim)!r}, 'stolen')"}[how]
    out = grade(pool, call + "\nprint('ok')", audit_hook)
    assert not out.correct and "runtime error" in out.reason
    assert victim.read_text() == "keep me"


@pytest.mark.parametrize("audit_hook", MODES)
def test_cannot_write_a_file_outside(pool, tmp_path, isolation, audit_hook):
    if not audit_hook and not fs_isolated(isolation):
        pytest.skip("no Landlock on this kernel")
    target = tmp_path / "written.txt"
    out = grade(pool, f"open({str(target)!r}, 'w').write('pwned')\nprint('ok')", audit_hook)
    assert not out.correct and not target.exists()


def test_fork_bomb(pool, isolation):
    start = time.monotonic()
    out = grade(pool, "import os\nwhile True:\n    os.fork()\nprint('ok')")
    assert not out.correct and time.monotonic() - start < 20


def test_fork_bomb_os_layers(pool, isolation):
    if os.geteuid() == 0 and not isolation.get("bwrap"):
        pytest.skip("reduced mode as root: the kernel exempts root from RLIMIT_NPROC; the audit hook is the limit")
    out = grade(pool, "import os\nfor _ in range(100000):\n    os.fork()\nprint('ok')", audit_hook=False)
    assert not out.correct


@pytest.mark.parametrize("audit_hook", MODES)
def test_memory_bomb(pool, audit_hook):
    out = grade(pool, "x = bytearray(1 << 33)\nprint('ok')", audit_hook, memory_mb=256)
    assert not out.correct and "MemoryError" in out.reason


@pytest.mark.parametrize("audit_hook", MODES)
@pytest.mark.parametrize("kind", ["tcp", "udp"])
def test_no_network_to_localhost(pool, isolation, audit_hook, kind):
    if not audit_hook and not isolation.get("net_ns") and (kind == "udp" or not isolation.get("landlock_net")):
        pytest.skip("no network namespace here (and Landlock covers TCP only)")
    stype = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, stype) as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        if kind == "tcp":
            listener.listen(1)
            attack = f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'leak')"
        else:
            attack = f"import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'leak', ('127.0.0.1', {port}))"
        out = grade(pool, attack + "\nprint('ok')", audit_hook)
        assert not out.correct
        listener.settimeout(0.3)
        with pytest.raises(socket.timeout):
            listener.accept() if kind == "tcp" else listener.recvfrom(16)


def _processes_with_cmdline(marker: str) -> list[int]:
    return processes_with(marker, "cmdline")


def _processes_with_env(marker: str) -> list[int]:
    return processes_with(marker, "environ")


@pytest.mark.parametrize("audit_hook", MODES)
def test_grandchild_does_not_outlive_the_check(isolation, audit_hook):
    if not audit_hook and not isolation.get("pid_ns"):
        pytest.skip("no PID namespace here: a setsid() grandchild can escape the process group")
    seen = {}

    def judge(i, data):
        seen["home"] = data.decode().strip()
        return True, ""

    marker = f"60.{uuid.uuid4().int % 10**9}"  # the grandchild becomes `sleep <marker>`: findable from here
    code = ("import os, time\nprint(os.environ['HOME'], flush=True)\npid = os.fork()\nif pid == 0:\n"
            f"    os.setsid()\n    if os.fork() == 0:\n        os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
            "    os._exit(0)\ntime.sleep(0.3)\nos.waitpid(pid, 0)")
    report = run_program(code, [""], judge, limits=Limits(timeout_s=2, audit_hook=audit_hook, **FAST))
    if audit_hook:  # the audit hook refuses the fork itself: no grandchild ever exists
        assert not report.passed and "os.fork" in report.reason
        return
    assert report.passed, report.reason
    time.sleep(0.2)
    assert _processes_with_cmdline(marker) == []
    if not report.isolation.get("bwrap"):  # reduced mode: a host temp dir, removed afterwards
        assert not os.path.exists(seen["home"]), "the sandbox's temp dir was not removed"


@pytest.mark.parametrize("audit_hook", MODES)
def test_ignoring_sigalrm_and_infinite_loop(pool, audit_hook):
    for code in ["while True:\n    pass", "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass"]:
        start = time.monotonic()
        out = grade(pool, code + "\nprint('ok')", audit_hook)
        assert not out.correct and ("timeout" in out.reason or "SIGXCPU" in out.reason or "CPU" in out.reason)
        assert time.monotonic() - start < 15


@pytest.mark.parametrize("audit_hook", MODES)
def test_megabytes_of_stdout(pool, audit_hook):
    out = grade(pool, "import sys\nsys.stdout.write('x' * (64 << 20))\nprint('ok')", audit_hook)
    assert not out.correct and "output limit" in out.reason
    out = grade(pool, "while True:\n    print('y' * 4096)", audit_hook)
    assert not out.correct and "output limit" in out.reason


@pytest.mark.parametrize("audit_hook", MODES)
def test_environment_secrets_never_reach_the_program(monkeypatch, isolation, audit_hook):
    if not audit_hook and not fs_isolated(isolation):
        pytest.skip("no Landlock: /proc/<pid>/environ of same-user processes is guarded by the audit hook only")
    secret = "vr-secret-" + uuid.uuid4().hex
    monkeypatch.setenv("VR_TEST_SECRET", secret)  # inherited by anything that does not scrub
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                              env={**os.environ, "VR_TEST_SECRET": secret})
    seen = []

    def judge(i, data):
        seen.append(data.decode("utf-8", "replace"))
        return True, ""

    code = ("import os, sys\nout = repr(dict(os.environ))\npids = sys.stdin.read().split()\n"
            "for p in ['self', str(os.getppid()), '1'] + pids:\n"
            "    try:\n        out += open(f'/proc/{p}/environ', 'rb').read().decode('latin1')\n"
            "    except Exception as e:\n        out += repr(e)\n"
            "try:\n    out += ''.join(open(f'/proc/{d}/environ','rb').read().decode('latin1') for d in os.listdir('/proc') if d.isdigit())\n"
            "except Exception as e:\n    out += repr(e)\nprint(out)")
    try:
        run_program(code, [f"{holder.pid} {os.getpid()}"], judge, limits=Limits(timeout_s=2, audit_hook=audit_hook, **FAST))
    finally:
        holder.kill()
        holder.wait()
    assert seen and "PATH" in seen[0]  # the program did run and print its environment
    assert secret not in seen[0]


def test_missing_layers_are_warned_about_loudly(monkeypatch):
    monkeypatch.setattr(sandbox, "_warned", set())
    with pytest.warns(SandboxIsolationWarning) as record:
        report = run_program("print(1)", [""], lambda i, d: (d == b"1\n", ""),
                             limits=Limits(timeout_s=2, bwrap=False, namespaces=False, landlock=False, **FAST))
    assert report.passed
    text = " ".join(str(w.message) for w in record)
    assert "no bubblewrap" in text and "no PID namespace" in text and "no Landlock" in text
    assert report.isolation["pid_ns"] is False and report.isolation["audit_hook"] is True


def test_pool_survives_a_killed_worker():
    """A checker that hangs in C code is killed at its deadline; the pool answers the next item."""
    with CheckPool("vr_plugins.verify.math:grade_math", workers=1, preload=["vr_plugins.verify.math"]) as p:
        outs = list(p.run([Item("hang", [r"\boxed{9^{9^{9^{9}}}}", "7"], 1.0), Item("ok", [r"\boxed{7}", "7"], 30.0)]))
    by_key = {o.key: o for o in outs}
    assert by_key["hang"].status == "timeout" and not by_key["hang"].correct
    assert by_key["ok"].correct and p.restarts == 1


def test_workers_default_to_cores_and_more_is_an_explicit_choice():
    from vr_plugins.verify.pool import resolve_workers, usable_cores

    assert resolve_workers(None) == usable_cores()
    with pytest.warns(RuntimeWarning, match="oversubscribed"):
        assert resolve_workers(usable_cores() + 1) == usable_cores() + 1
    with pytest.raises(ValueError):
        resolve_workers(0)


def test_checker_returning_a_non_bool_is_incorrect():
    """SkyThought's error codes (-1) are truthy; a checker must return a real bool to pass."""
    with CheckPool("builtins:divmod", workers=1, preload=[]) as p:
        out = list(p.run([Item(0, [-1, 1], 30.0)]))[0]  # divmod(-1, 1) == (-1, 0): truthy "correct" -1
    assert out.correct is False and out.status == "error" and "not a bool" in out.reason


def test_forged_reports_and_swapped_output_files_never_pass(tmp_path):
    """The program shares its process with the runner: it can write to the report pipe and replace its
    own output file. Neither may turn into a pass, and neither may hang the parent."""
    secret = tmp_path / "expected.txt"
    secret.write_text("42\n")
    forge_end = "import os\nos.write(3, b'{\"e\": \"end\"}\\n')\nimport time\ntime.sleep(30)"
    forge_done = ("import os\nos.write(3, b'{\"e\": \"done\", \"i\": 0, \"s\": \"ok\", \"m\": \"\"}\\n"
                  "{\"e\": \"done\", \"i\": 1, \"s\": \"ok\", \"m\": \"\"}\\n{\"e\": \"end\"}\\n')")
    symlink = f"import os\nos.unlink('out-0.txt')\nos.symlink({str(secret)!r}, 'out-0.txt')"  # the right answer, elsewhere
    fifo = "import os\nos.mkfifo('out-1.txt')\nos.write(3, b'{\"e\": \"done\", \"i\": 1, \"s\": \"ok\", \"m\": \"\"}\\n')"
    for code in (forge_end, forge_done, symlink, fifo):
        start = time.monotonic()
        report = run_program(code, ["", ""], lambda i, d: (d == b"42\n", "judged"),
                             limits=Limits(timeout_s=1, audit_hook=False, **FAST))
        assert not report.passed, (code, report.reason)
        assert time.monotonic() - start < 10


def test_killing_a_worker_kills_the_sandbox_it_was_running(tmp_path):
    """The pool's deadline (1.5 s) is shorter than the sandbox's own (10 s per test): the parent SIGKILLs
    the worker and the sandbox's process group, which the worker published. A heartbeat file (writable
    because Landlock and the audit hook are off for this test) must stop growing."""
    beat = tmp_path / "beat"
    code = f"import time\nwhile True:\n    open({str(beat)!r}, 'a').write('x')\n    time.sleep(0.05)"
    options = {"code_timeout_s": 10.0, "sandbox": {"audit_hook": False, "bwrap": False, "landlock": False, "startup_s": 3.0}}
    with CheckPool("vr_plugins.verify.code:check", workers=1, preload=["vr_plugins.verify.code"]) as p:
        assert list(p.run([Item(-1, [{"tests": TESTS}, GOOD, {}], 30.0)]))[0].correct
        worker_pid = p._pool[0].proc.pid
        out = list(p.run([Item(0, [{"tests": TESTS}, fence(code), options], 1.5)]))[0]
        assert out.status == "timeout" and not out.correct
        time.sleep(0.3)
        size = beat.stat().st_size
        assert size > 0  # the program did run
        time.sleep(0.6)
        assert beat.stat().st_size == size, "the sandbox outlived its killed worker"
        assert not list(Path(tempfile.gettempdir()).glob(f"{sandbox.TMP_PREFIX}{worker_pid}-*")), "temp dir left"
        assert not [p for p in Path("/sys/fs/cgroup").glob(f"**/vr-sandbox-{worker_pid}-*")], "cgroup left"
        assert list(p.run([Item(1, [{"tests": TESTS}, GOOD, {}], 30.0)]))[0].correct


def test_a_machine_without_bubblewrap_gets_the_reduced_mode_and_a_warning(monkeypatch):
    """No traceback: the program still runs (reduced mode), one warning names the missing layer."""
    from vr_plugins.verify import sandbox_bwrap

    monkeypatch.setattr(sandbox, "_warned", set())
    monkeypatch.setattr(sandbox_bwrap, "unavailable", lambda: "bwrap not found; install Debian bubblewrap")
    sandbox._close_idle()
    try:
        with pytest.warns(SandboxIsolationWarning, match="no bubblewrap \\(bwrap not found"):
            report = run_program("print(1)", [""], lambda i, d: (d == b"1\n", ""), limits=Limits(timeout_s=2, **FAST))
    finally:
        sandbox._close_idle()  # the warm reduced-mode sandbox must not serve a later test that expects bwrap
    assert report.passed and report.isolation["bwrap"] is False
    lines = sandbox.missing_layers(sandbox.probe_isolation())
    assert any("no bubblewrap" in line for line in lines)


def test_verify_summary_names_missing_layers_when_code_was_checked(monkeypatch, capsys):
    from vr_plugins.verify import sandbox_bwrap
    from vr_tools.verify import _echo_sandbox_layers

    monkeypatch.setattr(sandbox_bwrap, "unavailable", lambda: "bwrap not found")

    class Report:
        families = {"taco": None}

    _echo_sandbox_layers(Report())
    assert "code sandbox: reduced isolation: no bubblewrap (bwrap not found)" in capsys.readouterr().out
    Report.families = {"math": None}  # math only: nothing to say about the sandbox
    _echo_sandbox_layers(Report())
    assert capsys.readouterr().out == ""
