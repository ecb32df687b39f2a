"""A cgroup per sandbox: a process/thread count and a memory limit for the whole sandbox.

Why: rlimits are per process, and RLIMIT_NPROC does not bind a sandbox started by root (the user
namespace maps its uid to host root, which the kernel exempts), so a fork bomb needs ``pids.max``.
``memory.max`` counts what RLIMIT_AS does not: every process together, tmpfs pages, and (v2, or v1's
``memory.kmem.tcp``) kernel memory such as socket buffers.

cgroup v2 where its ``pids``/``memory`` controllers are enabled, else the v1 ``pids`` and ``memory``
hierarchies (hybrid machines). Needs write access to our own cgroup (root, or a delegated subtree);
otherwise the layer is reported missing and the sandbox warns.
"""

from __future__ import annotations

import itertools
import os
import time

_ROOT = "/sys/fs/cgroup"
_counter = itertools.count()


def _own_paths() -> dict[str, str]:
    """controller ('pids', 'memory', or '' for v2) -> our cgroup's directory."""
    out = {}
    try:
        with open("/proc/self/cgroup") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return out
    for line in lines:
        _, ctrls, path = line.split(":", 2)
        for c in ctrls.split(",") if ctrls else [""]:
            if c in ("pids", "memory"):
                out[c] = os.path.join(_ROOT, c) + path
            elif c == "" and os.path.exists(os.path.join(_ROOT, "cgroup.controllers")):
                out[""] = _ROOT + path
    return out


def _v2_base() -> str | None:
    base = _own_paths().get("")
    if not base:
        return None
    try:
        with open(os.path.join(base, "cgroup.subtree_control")) as fh:
            enabled = fh.read().split()
    except OSError:
        return None
    return base if {"pids", "memory"} <= set(enabled) and os.access(base, os.W_OK) else None


def _write(path: str, value: str) -> bool:
    try:
        with open(path, "w") as fh:
            fh.write(value)
        return True
    except OSError:
        return False


class SandboxCgroup:
    """``create()`` -> a cgroup (or None with ``why``); ``add(pid)``; ``remove()`` when its processes are gone."""

    def __init__(self, dirs: list[str], kind: str):
        self.dirs, self.kind = dirs, kind

    @classmethod
    def create(cls, pids_max: int, memory_bytes: int) -> tuple[SandboxCgroup | None, str]:
        name = f"vr-sandbox-{os.getpid()}-{next(_counter)}"
        v2 = _v2_base()
        if v2:
            d = os.path.join(v2, name)
            try:
                os.mkdir(d)
            except OSError as exc:
                return None, f"cannot create a cgroup under {v2}: {exc.strerror}"
            ok = _write(f"{d}/pids.max", str(pids_max)) and _write(f"{d}/memory.max", str(memory_bytes))
            _write(f"{d}/memory.swap.max", "0")
            cg = cls([d], "v2")
            if not ok:
                cg.remove()
                return None, f"cannot set limits in {d}"
            return cg, ""
        own = _own_paths()
        if "pids" not in own or "memory" not in own:
            return None, "no cgroup v2 pids+memory controllers and no v1 pids/memory hierarchies"
        dirs = []
        for c in ("pids", "memory"):
            d = os.path.join(own[c], name)
            try:
                os.mkdir(d)
            except OSError as exc:
                cls(dirs, "v1").remove()
                return None, f"cannot create a v1 {c} cgroup under {own[c]}: {exc.strerror}"
            dirs.append(d)
        ok = _write(f"{dirs[0]}/pids.max", str(pids_max)) and _write(f"{dirs[1]}/memory.limit_in_bytes", str(memory_bytes))
        _write(f"{dirs[1]}/memory.memsw.limit_in_bytes", str(memory_bytes))  # no swap beyond the limit, where swap accounting is on
        _write(f"{dirs[1]}/memory.kmem.tcp.limit_in_bytes", str(memory_bytes))  # socket buffers (v1 counts them only once set)
        cg = cls(dirs, "v1")
        if not ok:
            cg.remove()
            return None, "cannot set v1 cgroup limits"
        return cg, ""

    def add(self, pid: int) -> bool:
        return all(_write(f"{d}/cgroup.procs", str(pid)) for d in self.dirs)

    def remove(self) -> None:
        for d in self.dirs:
            for _ in range(50):  # the kernel may take a moment to drop exited tasks
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def remove_cgroups_of(pid: int) -> None:
    """Remove the cgroups of sandboxes started by process ``pid`` (a pool worker that was killed: its
    sandboxes are killed by then, so the cgroups are empty or about to be)."""
    import glob

    for base in set(_own_paths().values()):
        SandboxCgroup(sorted(glob.glob(os.path.join(base, f"vr-sandbox-{pid}-*"))), "").remove()
