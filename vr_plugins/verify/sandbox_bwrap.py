"""The bubblewrap command line of the code sandbox (Debian ``bubblewrap``, the sandbox behind Flatpak).

What each part stops (docs/verification.md, Code sandbox):

- ``--unshare-user --uid 65534 --gid 65534 --cap-drop ALL``, and ``no_new_privs`` (bwrap always sets it):
  no capabilities, even when the verifier runs as root (sethostname, chattr +i, mknod, raising
  rlimits, RLIMIT_NPROC exemption); ``--disable-userns`` stops nested user namespaces.
- ``--unshare-ipc --unshare-uts --unshare-pid --unshare-net --unshare-cgroup-try``: SysV IPC objects,
  the hostname, processes and abstract unix sockets are private and die with the sandbox; no network.
- A read-only view of only what Python needs (``/usr``, the interpreter's prefix, site-packages, the
  runner): no host file is writable and no host file's metadata changeable (chmod/chown/utime/setxattr
  fail with EROFS). As root, bwrap itself runs as host uid 65534, so the sandbox owns no host file
  (not even the device nodes bound into its /dev). Host sockets, /run, /home, /work, /root
  are not in the view at all.
- ``--size N --tmpfs /tmp``: the only writable place, with a quota; it vanishes with the mount namespace.
  An environment installed under /tmp is bound read-only on top of it (:func:`_tmp_view`); the host's
  other /tmp files stay hidden.
- ``--as-pid-1 --die-with-parent --new-session``: the runner is init of the PID namespace (its death
  kills every process in it; signals from inside do not kill it); killing bwrap kills the sandbox;
  no terminal to inject keystrokes into.
- ``--seccomp FD``: :mod:`vr_plugins.verify.sandbox_seccomp`.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile

INSIDE_RUNNER = "/opt/vr/runner.py"
UID = 65534
_DEVICE_NUMBERS = {"null": (1, 3), "zero": (1, 5), "random": (1, 8), "urandom": (1, 9)}


def _bwrap() -> str | None:
    return shutil.which("bwrap") or ("/usr/bin/bwrap" if os.access("/usr/bin/bwrap", os.X_OK) else None)


def _under_tmp(path: str) -> bool:
    return path == "/tmp" or path.startswith("/tmp/")


def _view_prefixes(py: str, site: list[str]) -> list[str]:
    """The interpreter's prefixes and site-packages, outermost first, none inside another or in /usr."""
    prefixes = sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix),
                       os.path.dirname(os.path.dirname(py))} | {os.path.realpath(p) for p in site})
    bound: list[str] = ["/usr"]
    for p in prefixes:
        if os.path.isdir(p) and not any(p == b or p.startswith(b + "/") for b in bound):
            bound.append(p)
    return bound[1:]


def _tmp_view(py: str, site: list[str]) -> list[str]:
    """Read-only binds of the environment's paths that lie under /tmp (a checkout or venv in /tmp/...).

    bubblewrap applies its arguments in order, so these come after ``--tmpfs /tmp``: bound before it, the
    private tmpfs would hide them and the program could not import the environment's packages."""
    args: list[str] = []
    for p in _view_prefixes(py, site):
        if _under_tmp(p):
            args += ["--ro-bind", p, p]
    return args


def _system_view(py: str, runner: str, site: list[str]) -> list[str]:
    args: list[str] = []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for f in ("/etc/ld.so.cache", "/etc/localtime"):
        args += ["--ro-bind-try", f, f]
    for p in _view_prefixes(py, site):
        if not _under_tmp(p):  # those under /tmp are bound after the private tmpfs (_tmp_view)
            args += ["--ro-bind", p, p]
    args += ["--ro-bind", runner, INSIDE_RUNNER, "--proc", "/proc"]
    return args + _devices()


def _devices() -> list[str]:
    """/dev/null, zero, random, urandom. Not bwrap's ``--dev`` when root: its nodes are binds of the
    host's, owned by root, and a sandbox started by root maps its uid to host root, so it could chmod the
    host's /dev/null. As root we make private nodes owned by host uid 65534 (unmapped inside: not the
    sandbox's to change); otherwise the host's nodes are not ours and ``--dev`` is safe."""
    if os.geteuid() != 0:
        return ["--dev", "/dev", "--remount-ro", "/dev"]
    base = _private_dev_dir()
    args = ["--dir", "/dev"]
    for name in _DEVICE_NUMBERS:
        args += ["--dev-bind", os.path.join(base, name), f"/dev/{name}"]
    return args + ["--symlink", "/proc/self/fd", "/dev/fd"]


@functools.lru_cache(maxsize=1)
def _private_dev_dir() -> str:
    # one shared, persistent directory (not per process: killed pool workers could not remove theirs);
    # every node is checked (type, number, owner, mode) and replaced atomically when it is not right
    base = os.path.join(tempfile.gettempdir(), "vr-sandbox-dev")
    os.makedirs(base, mode=0o755, exist_ok=True)
    st = os.lstat(base)
    if st.st_uid != 0 or not stat.S_ISDIR(st.st_mode) or st.st_mode & 0o022:
        raise OSError(f"{base} is not a root-owned private directory")
    for name, (major, minor) in _DEVICE_NUMBERS.items():
        path = os.path.join(base, name)
        want = os.makedev(major, minor)
        try:
            st = os.lstat(path)
            ok = (stat.S_ISCHR(st.st_mode) and st.st_rdev == want and st.st_uid == UID
                  and stat.S_IMODE(st.st_mode) == 0o666)
        except FileNotFoundError:
            ok = False
        if not ok:
            tmp = f"{path}.{os.getpid()}.new"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.mknod(tmp, 0o666 | stat.S_IFCHR, want)
            os.chown(tmp, UID, UID)
            os.chmod(tmp, 0o666)
            os.replace(tmp, path)
    return base


def base_args(limits, py: str, runner: str, site: list[str]) -> list[str]:
    return [_bwrap() or "bwrap", "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net",
            "--unshare-uts", "--unshare-cgroup-try", "--disable-userns", "--uid", str(UID), "--gid", str(UID),
            "--hostname", "sandbox", "--cap-drop", "ALL", "--die-with-parent", "--new-session", "--as-pid-1",
            *_system_view(py, runner, site),
            "--size", str(limits.disk_mb << 20), "--perms", "0700", "--tmpfs", "/tmp", *_tmp_view(py, site),
            "--remount-ro", "/",
            "--chdir", "/tmp"]


def layers(seccomp: bool) -> dict:
    from vr_plugins.verify import sandbox_seccomp

    out = {"userns": True, "uid": UID, "caps": "none", "no_new_privs": True, "mount_ns": True, "ipc_ns": True,
           "uts_ns": True, "pid_ns": True, "net_ns": True, "cgroup_ns": True, "readonly_view": True,
           "tmpfs_quota": True}
    if not seccomp:
        out.update(seccomp=False, seccomp_error="switched off")
    else:
        bpf = sandbox_seccomp.compiled_filter()
        out["seccomp"] = isinstance(bpf, bytes)
        if not out["seccomp"]:
            out["seccomp_error"] = bpf
    return out


def command(py: str, runner: str, limits, site: list[str]) -> tuple[list[str], list[int], int, dict]:
    """(argv up to the runner's config argument, fds to pass, the info fd to read, the layers on)."""
    from vr_plugins.verify import sandbox_seccomp

    argv = base_args(limits, py, runner, site)
    fds: list[int] = []
    info_r, info_w = os.pipe()
    argv += ["--info-fd", str(info_w)]
    fds.append(info_w)
    lay = layers(limits.seccomp)
    if lay["seccomp"]:
        fd = sandbox_seccomp.filter_fd()
        argv += ["--seccomp", str(fd)]
        fds.append(fd)
    return argv + ["--", py, "-I", "-S", INSIDE_RUNNER], fds, info_r, lay


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """None when bubblewrap can start a sandbox here, else why not (checked once per process)."""
    exe = _bwrap()
    if exe is None:
        return "bwrap not found; install Debian bubblewrap (scripts/setup_system.sh)"
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"

    class _Probe:
        disk_mb, seccomp = 1, False

    py = os.path.realpath(sys.executable)
    try:
        # /dev/null must open: a nodev temp dir would make the private device nodes unusable
        argv = base_args(_Probe, py, __file__, []) + ["--", py, "-I", "-S", "-c", "open('/dev/null', 'rb')"]
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             timeout=30, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap could not start: {exc}"
    if res.returncode != 0:
        return f"bwrap failed: {res.stderr.decode('utf-8', 'replace').strip()[:300] or res.returncode}"
    return None
