"""The seccomp filter of the code sandbox, compiled with libseccomp (Debian ``libseccomp2``) through ctypes.

bubblewrap loads it (``--seccomp FD``) right before it executes the runner, so it binds the runner and
every program process, and no process in the sandbox can remove it (filters only ever add up).

Default deny, with an allow list (``ALLOW`` below, grouped by purpose, one justification per group).
A deny list only stops the calls someone thought of; every syscall a kernel adds later, and every old
one nobody listed, would be open to the program. With an allow list the program reaches only what
CPython 3, its standard library and numpy are seen to use, plus the other spellings of the same
operations that glibc or CPython pick on other versions or code paths (``open``/``openat``,
``stat``/``newfstatat``/``statx``, ``dup2``/``dup3``, ``select``/``pselect6``, ...).

What a program gets for a call that is not listed: ``EPERM`` (the call fails, the program carries on and
may report it), never a kill. ``clone3`` gets ``ENOSYS`` instead, so glibc falls back to ``clone``,
which is allowed only without namespace flags (its flags are an argument seccomp can read; ``clone3``'s
are in memory it cannot). Other architectures' syscall ABIs (i386's ``socketcall``, x32) are not in the
filter and are killed by libseccomp's bad-architecture action.

``DENY`` documents what must never enter the allow list (sockets, io_uring, ptrace, keyrings, mount,
namespaces, SysV/POSIX IPC, hostname, kernel attack surface); those calls get ``EPERM`` like every other
unlisted one, and the tests check that no ``DENY`` name is in ``ALLOW``.

How the list was derived: typical programs (the sandbox tests' correct-solution controls, numpy linear
algebra/FFT/random, multiprocessing, subprocess of python and of ``/bin/sh``, threads and thread pools,
tempfile/shutil/sqlite3/mmap file work in the temp dir, sleeps, timers, signals, select/poll/epoll, and
the runner's own zygote loop) were run through the real sandbox, with the previous default-allow
filter, under ``strace -f -qq -s 0 -o TRACE -e trace=all bwrap ...`` (the bubblewrap command line of
:func:`vr_plugins.verify.sandbox_bwrap.command` with strace in front); every syscall made after bwrap's
``prctl(PR_SET_SECCOMP)`` (bwrap itself only calls ``execve`` of the runner after it) is in ``ALLOW``
(93 calls on CPython 3.11, glibc 2.36, numpy 2.4, x86-64), except ``clone3``.
Re-derive it the same way after upgrading the interpreter, glibc or numpy; a missing call shows up as
an ``EPERM`` in the program's error (tests/test_verify_seccomp.py runs the controls).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import tempfile

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000  # | errno
MASKED_EQ = 7  # SCMP_CMP_MASKED_EQ: (arg & datum_a) == datum_b
SCMP_FLTATR_CTL_OPTIMIZE = 8  # libseccomp >= 2.5: 2 = binary tree of syscall numbers

#: allowed syscalls, grouped by purpose; names this architecture lacks (``open`` on arm64) are skipped
ALLOW: dict[str, tuple[str, ...]] = {
    # the runner forks a child per test; programs fork/exec (subprocess of python, /bin tools,
    # multiprocessing.Process) and wait; clone only without namespace flags (rule below); limits can
    # only be lowered (no CAP_SYS_RESOURCE); prctl acts on the caller only (no capabilities left)
    "process lifetime": ("execve", "execveat", "fork", "vfork", "clone", "exit", "exit_group", "wait4", "waitid",
                         "getpid", "getppid", "getpgrp", "getpgid", "setpgid", "getsid", "setsid", "prctl",
                         "arch_prctl", "set_tid_address", "prlimit64", "getrlimit", "setrlimit", "getrusage"),
    # the process's own address space, bounded by RLIMIT_AS and the cgroup (mbind/get_mempolicy:
    # OpenBLAS's NUMA hints; map_shadow_stack: glibc >= 2.39 thread stacks under CET)
    "memory": ("brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "msync", "mbind", "get_mempolicy",
               "map_shadow_stack"),
    # every host path in view is mounted read-only (writes, chmod, utime fail with EROFS) and the rest
    # of the host is not in view; writes land in the size-limited private tmpfs /tmp
    "files (the read-only view and the private temp dir)": (
        "open", "openat", "creat", "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv",
        "pwritev", "preadv2", "pwritev2", "lseek", "sendfile", "copy_file_range", "stat", "fstat", "lstat",
        "newfstatat", "statx", "statfs", "fstatfs", "access", "faccessat", "faccessat2", "readlink",
        "readlinkat", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "umask", "mkdir", "mkdirat",
        "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat", "symlink",
        "symlinkat", "chmod", "fchmod", "fchmodat", "truncate", "ftruncate", "fallocate", "fadvise64", "fsync",
        "fdatasync", "flock", "utime", "utimes", "utimensat", "futimesat", "getxattr", "lgetxattr",
        "fgetxattr", "listxattr", "llistxattr", "flistxattr"),
    # reading clocks, sleeping, interval timers (CPU-time clocks and sleeps are real syscalls, not vDSO)
    "time": ("clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "times",
             "alarm", "getitimer", "setitimer"),
    # handlers, masks and sending: the PID namespace holds only the sandbox's processes and the kernel
    # does not let them signal its PID 1 (the runner) to death; restart_syscall resumes an interrupted sleep
    "signals": ("rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
                "rt_sigtimedwait", "sigaltstack", "pause", "restart_syscall", "kill", "tkill", "tgkill"),
    # pthreads (threading, thread pools, OpenBLAS): thread clones pass the clone rule; RLIMIT_NPROC and
    # the cgroup's pids.max bound their number
    "threads/futex": ("futex", "set_robust_list", "rseq", "gettid"),
    # descriptors the process already has or makes for itself (pipes); ioctl: no terminal in the session,
    # the only devices are null/zero/random/urandom, and without capabilities no privileged request works
    "fd/polling": ("close", "close_range", "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "ioctl", "select",
                   "pselect6", "poll", "ppoll", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
                   "epoll_pwait", "epoll_pwait2"),
    # the caller's own scheduling: without CAP_SYS_NICE priority can only be lowered; the cgroup bounds CPU
    "scheduling": ("sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_getscheduler",
                   "sched_get_priority_min", "sched_get_priority_max", "getpriority", "setpriority"),
    # read-only facts about the process and the machine (uname shows the sandbox's own UTS namespace)
    "info": ("uname", "sysinfo", "getrandom", "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid",
             "getgroups"),
}

#: syscalls that must never be allowed, grouped by what they would let a program do (they get EPERM
#: like any unlisted call; kept as documentation and for the test that none is in ALLOW)
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
#: clone() flags that create namespaces: a clone with any of them is not allowed (EPERM)
CLONE_NS_FLAGS = (0x00020000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x02000000)


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


def _lib():
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def syscall_number(name: str) -> int | None:
    """The number of syscall ``name`` on this architecture (libseccomp's table), or None."""
    try:
        nr = _lib().seccomp_syscall_resolve_name(name.encode())
    except OSError:
        return None
    return nr if nr >= 0 else None


def allowed_names() -> set[str]:
    return {name for names in ALLOW.values() for name in names}


@functools.lru_cache(maxsize=1)
def compiled_filter() -> bytes | str:
    """The BPF program (bytes), or a string saying why there is none (libseccomp missing)."""
    clash = allowed_names() & {name for names in DENY.values() for name in names}
    if clash:
        return f"syscalls both allowed and denied: {sorted(clash)}"
    try:
        lib = _lib()
    except OSError as exc:
        return f"libseccomp not found ({exc}); install Debian libseccomp2 (scripts/setup_system.sh)"
    ctx = lib.seccomp_init(SCMP_ACT_ERRNO | errno.EPERM)
    if not ctx:
        return "seccomp_init failed"
    try:
        lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)  # older libseccomp: keeps its linear list
        for name in sorted(allowed_names() - {"clone"}):
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:  # not a syscall on this architecture
                continue
            rc = lib.seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 0, None)
            if rc < 0 and rc != -errno.EEXIST:
                return f"seccomp_rule_add({name}) failed: {os.strerror(-rc)}"
        nr = lib.seccomp_syscall_resolve_name(b"clone3")
        if nr >= 0:
            lib.seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO | errno.ENOSYS, nr, 0, None)
        ns = functools.reduce(lambda a, b: a | b, CLONE_NS_FLAGS)
        cmp = (_ArgCmp * 1)(_ArgCmp(0, MASKED_EQ, ns, 0))  # allowed only when (flags & ns) == 0
        rc = lib.seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, lib.seccomp_syscall_resolve_name(b"clone"), 1, cmp)
        if rc < 0:
            return f"seccomp_rule_add(clone without namespace flags) failed: {os.strerror(-rc)}"
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
    os.write(w, bpf)  # a few kilobytes: below the pipe buffer (64 KiB)
    os.close(w)
    return r
