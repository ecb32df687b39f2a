"""A real single-host SLURM cluster for tests: munged, slurmctld and slurmd on localhost (as root).

:func:`start` writes a ``slurm.conf`` for this host into a folder, starts the three daemons with it and
waits until the node is idle; :meth:`Cluster.stop` stops exactly the daemons it started. Clients
(``sbatch``, ``squeue``) find the cluster through ``SLURM_CONF`` (:meth:`Cluster.env`). When a daemon
cannot start (not root, no packages, a container without what slurmd needs), :class:`Unavailable` says
why, so the test can skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

MUNGE_SOCKET_DIR = Path("/run/munge")
#: more CPUs than the machine has (config_overrides): every stage's tasks fit in one allocation
CPUS = 8


class Unavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    folder: Path
    conf: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def stop(self) -> None:
        """SIGTERM each started daemon (last started first), SIGKILL after 10 s; reap it."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self.procs.clear()

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.folder.glob("*.log")))


def _config(folder: Path, host: str) -> str:
    return f"""ClusterName=vrtest
SlurmctldHost={host}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1,sched_min_interval=100000
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName={host} NodeAddr=127.0.0.1 CPUs={CPUS} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""


def _start(argv: list[str], env: dict[str, str], cluster: Cluster, log: Path) -> None:
    out = open(log, "ab")
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    cluster.procs.append(proc)
    time.sleep(0.5)
    if proc.poll() is not None:
        raise Unavailable(f"{argv[0]} exited at once ({proc.returncode}): {log.read_text()[-800:]}")


def start(folder: Path, timeout: float = 60.0) -> Cluster:
    if os.geteuid() != 0:
        raise Unavailable("the SLURM daemons need root (the test starts munged, slurmctld and slurmd itself)")
    missing = [d for d in ("munged", "slurmctld", "slurmd", "sbatch", "scontrol") if shutil.which(d) is None
               and not Path(f"/usr/sbin/{d}").exists()]
    if missing:
        raise Unavailable(f"not installed: {', '.join(missing)} (Debian: apt-get install slurm-wlm munge, "
                          "or scripts/setup_system.sh as root)")
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool"):
        (folder / sub).mkdir(exist_ok=True)
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(_config(folder, host))
    cluster = Cluster(folder, conf)
    env = dict(os.environ, SLURM_CONF=str(conf))
    try:
        if not (MUNGE_SOCKET_DIR / "munge.socket.2").exists():
            MUNGE_SOCKET_DIR.mkdir(parents=True, exist_ok=True)
            shutil.chown(MUNGE_SOCKET_DIR, "munge", "munge")
            _start(["runuser", "-u", "munge", "--", "/usr/sbin/munged", "--foreground"], env, cluster,
                   folder / "munged.log")
        _start(["/usr/sbin/slurmctld", "-D", "-i", "-f", str(conf)], env, cluster, folder / "slurmctld.out.log")
        _start(["/usr/sbin/slurmd", "-D", "-f", str(conf)], env, cluster, folder / "slurmd.out.log")
        deadline = time.time() + timeout
        state = ""
        while time.time() < deadline:
            proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True)
            state = (proc.stdout or proc.stderr).strip()
            if proc.returncode == 0 and state.startswith("idle"):
                return cluster
            time.sleep(1)
        raise Unavailable(f"the node did not become idle in {timeout:.0f}s (sinfo: {state!r})\n{cluster.log_tail()}")
    except BaseException:
        cluster.stop()
        raise


def wait_for_jobs(cluster: Cluster, jobs: list[str], timeout: float) -> dict[str, str]:
    """Wait until none of ``jobs`` is queued or running; returns job id -> final state (sacct-free)."""
    env = dict(os.environ, **cluster.env())
    deadline = time.time() + timeout
    while time.time() < deadline:
        proc = subprocess.run(["squeue", "-h", "-j", ",".join(jobs), "-o", "%i %T %r"], env=env,
                              capture_output=True, text=True)
        active = [line for line in proc.stdout.splitlines() if line.strip()]
        if not active:
            break
        if any("DependencyNeverSatisfied" in line for line in active):
            break
        time.sleep(2)
    states = {}
    for job in jobs:
        proc = subprocess.run(["scontrol", "show", "job", job, "-o"], env=env, capture_output=True, text=True)
        fields = dict(w.split("=", 1) for w in proc.stdout.split() if "=" in w)
        states[job] = fields.get("JobState", "GONE")
    return states
