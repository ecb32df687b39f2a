"""The seccomp filter of the code sandbox, compiled with libseccomp (Debian ``libseccomp2``) through ctypes.

bubblewrap loads it (``--seccomp FD``) right before it executes the runner, so it binds the runner and
every program process, and no process in the sandbox can remove it (filters only ever add up).

Default ALLOW with a deny list, not an allow list of every syscall CPython, numpy and the stdlib may
make: the deny list is short enough to justify line by line (``DENY`` below), and a program that needs
a denied call fails with ``EPERM`` (``ENOSYS`` for ``clone3``, so glibc falls back to ``clone``, whose
namespace flags are filtered). Other architectures' syscall ABIs (i386's ``socketcall``, x32) are not in
the filter and are killed by libseccomp's bad-architecture action.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import tempfile

ALLOW = 0x7FFF0000
ERRNO = 0x00050000
MASKED_EQ = 7  # SCMP_CMP_MASKED_EQ: (arg & datum_a) == datum_b

#: denied syscalls, grouped by what they would let a program do
DENY: dict[str, tuple[str, ...]] = {
    # new sockets of any family: host unix sockets, netlink, abstract sockets, packet sockets
    "sockets": ("socket", "socketpair"),
    # io_uring runs operations (socket, connect, openat) that seccomp never sees
    "io_uring": ("io_uring_setup", "io_uring_enter", "io_uring_register"),
    # reading or writing other processes (the runner), stealing their fds
    "ptrace": ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
    # kernel keyrings outlive the process that made them
    "keyring": ("keyctl", "add_key", "request_key"),
    # remounting a read-only view writable, new mount trees
    "mount": ("mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
              "open_tree", "move_mount", "mount_setattr"),
    # new namespaces (a user namespace would give the program capabilities inside it again)
    "namespaces": ("unshare", "setns"),
    # SysV and POSIX IPC objects outlive the process that made them
    "ipc": ("shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop",
            "semtimedop", "semctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify",
            "mq_getsetattr"),
    "hostname": ("sethostname", "setdomainname"),
    # kernel attack surface no solution needs (personality: switching ASLR off)
    "kernel": ("bpf", "perf_event_open", "userfaultfd", "fanotify_init", "open_by_handle_at", "name_to_handle_at",
               "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
               "swapon", "swapoff", "acct", "quotactl", "syslog", "vhangup", "iopl", "ioperm", "settimeofday",
               "clock_settime", "clock_adjtime", "adjtimex", "lookup_dcookie", "uselib",
               "personality"),
}
#: clone() flags that create namespaces: denied (EPERM); plain fork/thread clones are allowed
CLONE_NS_FLAGS = (0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x02000000)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _lib():
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


@functools.lru_cache(maxsize=1)
def compiled_filter() -> bytes | str:
    """The BPF program (bytes), or a string saying why there is none (libseccomp missing)."""
    try:
        lib = _lib()
    except OSError as exc:
        return f"libseccomp not found ({exc}); install Debian libseccomp2 (scripts/setup_system.sh)"
    ctx = lib.seccomp_init(ALLOW)
    if not ctx:
        return "seccomp_init failed"
    try:
        deny = ERRNO | errno.EPERM
        for names in DENY.values():
            for name in names:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr < 0:  # not a syscall on this architecture
                    continue
                rc = lib.seccomp_rule_add_array(ctx, deny, nr, 0, None)
                if rc < 0 and rc != -errno.EEXIST:
                    return f"seccomp_rule_add({name}) failed: {os.strerror(-rc)}"
        nr = lib.seccomp_syscall_resolve_name(b"clone3")
        if nr >= 0:
            lib.seccomp_rule_add_array(ctx, ERRNO | errno.ENOSYS, nr, 0, None)
        clone = lib.seccomp_syscall_resolve_name(b"clone")
        for flag in CLONE_NS_FLAGS:
            cmp = (_ArgCmp * 1)(_ArgCmp(0, MASKED_EQ, flag, flag))
            rc = lib.seccomp_rule_add_array(ctx, deny, clone, 1, cmp)
            if rc < 0:
                return f"seccomp_rule_add(clone & {flag:#x}) failed: {os.strerror(-rc)}"
        with tempfile.TemporaryFile() as fh:
            rc = lib.seccomp_export_bpf(ctx, fh.fileno())
            if rc < 0:
                return f"seccomp_export_bpf failed: {os.strerror(-rc)}"
            fh.seek(0)
            return fh.read()
    finally:
        lib.seccomp_release(ctx)


def filter_fd() -> int | None:
    """A fresh readable fd holding the filter (bwrap reads it once), or None without libseccomp."""
    bpf = compiled_filter()
    if not isinstance(bpf, bytes):
        return None
    r, w = os.pipe()
    os.write(w, bpf)  # a few hundred bytes: far below the pipe buffer
    os.close(w)
    return r
