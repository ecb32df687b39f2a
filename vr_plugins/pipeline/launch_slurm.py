"""The ``slurm`` launcher: one sbatch script per stage in ``RUN/launch/``, chained with ``afterok``.

- a training is ``srun`` over the allocation's nodes, one torchrun launcher per node: ``NODE_RANK`` is
  ``$SLURM_NODEID``, ``MASTER_ADDR`` the allocation's first host (``scontrol show hostnames``), the port
  ``cluster.master_port`` (fixed, so every node agrees);
- a data step is one ``srun`` task per GPU group with ``--shard $SLURM_PROCID/$SLURM_NTASKS`` (the shard
  that finishes last merges the shard files); a guard first refuses more shards than questions;
- the evaluation is one task per evaluation step (SkyThought: per (model, benchmark); the local backend:
  per benchmark, every model in one process), then the summary table;
- the other stages are one process.

Each job ends by recording its stage in ``RUN/pipeline.json`` (``python -m vr_plugins.pipeline.launch_slurm
record``), so submitting again after a failure skips the finished stages, as a local run does. Jobs after
a failed one are cancelled by Slurm (``--kill-on-invalid-dep=yes``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from vr_plugins.pipeline.config import ConfigError, PipelineConfig
from vr_plugins.pipeline.launch import DATA_ROLES, Layout, layout, sharded, training_env, with_env
from vr_plugins.pipeline.stages import Stage, Step
from vr_plugins.pipeline.state import STATE_FILE, is_done, read_state, stage_fingerprint, write_state

LAUNCH_DIR = "launch"
SCRIPT_SUFFIX = ".sbatch"
#: shell expressions a task expands itself (srun sets them per task; the batch script exports MASTER_ADDR)
_TASK_EXPRESSIONS = ("$SLURM_NODEID", "$MASTER_ADDR", "$SLURM_PROCID/$SLURM_NTASKS")
FIRST_HOST = 'export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"'


class SlurmError(ConfigError):
    """sbatch missing or refusing a script."""


def require_sbatch() -> str:
    path = shutil.which("sbatch")
    if path is None:
        raise SlurmError("launcher slurm: `sbatch` is not on PATH. Run on a SLURM login node (or one with the "
                         "slurm client installed), or print the scripts only with --dry-run, or use "
                         "launcher=torchrun / launcher=local. Nothing was written.")
    return path


def _task_line(step: Step) -> str:
    line = step.shell(with_env_path=True)
    for expr in _TASK_EXPRESSIONS:
        line = line.replace(shlex.quote(expr), f'"{expr}"')
    return line


def _srun(options: str, step: Step) -> str:
    return f"srun {options} bash -c {shlex.quote(_task_line(step))}"


def _header(config: PipelineConfig, run: Path, stage: Stage, lay: Layout) -> list[str]:
    roles = {step.role for step in stage.steps}
    gpus = config.cluster.request_gpus
    opts = [f"--job-name={config.name}-{stage.name}", f"--output={run / 'logs' / stage.name}.slurm-%j.log"]
    if "train" in roles:
        opts += [f"--nodes={lay.nodes}", "--ntasks-per-node=1"]
        if gpus:
            opts.append(f"--gpus-per-node={lay.gpus_per_node}")
    elif roles & set(DATA_ROLES):
        opts.append(f"--ntasks={lay.data_tasks}")
        if gpus and "gpu" in roles:
            opts.append(f"--gpus-per-task={lay.tensor_parallel_size}")
    elif "eval" in roles:
        opts.append(f"--ntasks={sum(step.role == 'eval' for step in stage.steps)}")
        if gpus and config.eval.backend == "skythought":
            opts.append(f"--gpus-per-task={config.eval.tensor_parallel_size}")
    else:
        opts.append("--ntasks=1")
    return ["#!/bin/bash", *(f"#SBATCH {o}" for o in [*opts, *config.cluster.sbatch])]


def body(config: PipelineConfig, run: Path, stage: Stage) -> list[str]:
    """The commands of one stage's job (what ``--dry-run`` prints under each script's name)."""
    lay = layout(config)
    lines: list[str] = []
    evals = 0
    for step in stage.steps:
        if step.role == "train":
            lines.append(FIRST_HOST)
            node = with_env(step, training_env(lay, "$SLURM_NODEID", "$MASTER_ADDR"))
            lines.append(_srun(f"--nodes={lay.nodes} --ntasks-per-node=1", node))
        elif step.role in DATA_ROLES:
            lines.append(f"{shlex.quote(sys.executable)} -m vr_plugins.pipeline.launch_slurm check-shards "
                         f"{shlex.quote(str(run))} {lay.data_tasks}")
            count = "$SLURM_NTASKS" if lay.data_tasks > 1 else 1
            lines.append(_srun(f"--ntasks={lay.data_tasks}", sharded(step, "$SLURM_PROCID", count)))
        elif step.role == "eval":
            if not evals:
                lines.append("pids=()")
            evals += 1
            lines.append(f"{_srun('--ntasks=1 --exact', step)} & pids+=($!)")
        else:
            if evals:
                lines.append('for pid in "${pids[@]}"; do wait "$pid"; done')
                evals = 0
            lines.append(step.shell(with_env_path=True))
    if evals:
        lines.append('for pid in "${pids[@]}"; do wait "$pid"; done')
    return lines


def script(config: PipelineConfig, run: Path, stage: Stage, fingerprint: str) -> str:
    bin_dir = Path(sys.executable).parent
    record = [sys.executable, "-m", "vr_plugins.pipeline.launch_slurm", "record", str(run), stage.name, fingerprint,
              *map(str, stage.outputs)]
    lines = [*_header(config, run, stage, layout(config)),
             f"# stage {stage.name}{': ' + stage.description if stage.description else ''} (written by vr-tools pipeline)",
             "set -euo pipefail",
             f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"',
             f"cd {shlex.quote(os.getcwd())}",
             *body(config, run, stage),
             shlex.join(record)]
    return "\n".join(lines) + "\n"


def submit(config: PipelineConfig, config_path: Path, run: Path, stages: list[Stage], state: dict,
           overrides: tuple[str, ...], echo: Callable[[str], None], dry_run: bool = False) -> list[str]:
    """Write the scripts of the stages not done yet and submit them chained (``dry_run``: write and print)."""
    if not dry_run:
        require_sbatch()
    launch = run / LAUNCH_DIR
    launch.mkdir(parents=True, exist_ok=True)
    (run / "logs").mkdir(parents=True, exist_ok=True)
    previous: str | None = None
    jobs: list[str] = []
    for index, stage in enumerate(stages):
        if is_done(stage, state):
            echo(f"# stage {stage.name} [done]: not submitted")
            continue
        path = launch / f"{index:02d}-{stage.name}{SCRIPT_SUFFIX}"
        path.write_text(script(config, run, stage, stage_fingerprint(stage, state.get("run"))))
        argv = ["sbatch", "--parsable"]
        if previous is not None:
            argv += [f"--dependency=afterok:{previous}", "--kill-on-invalid-dep=yes"]
        argv.append(str(path))
        echo(f"# stage {stage.name} [todo]{': ' + stage.description if stage.description else ''}")
        if dry_run:
            for line in body(config, run, stage):
                echo(line)
            shown = [a if not a.startswith("--dependency") else "--dependency=afterok:$PREVIOUS_JOB" for a in argv]
            echo(f"# submit: {shlex.join(shown)}")
            previous = "$PREVIOUS_JOB"
            continue
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SlurmError(f"sbatch refused {path} (exit {proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
        previous = proc.stdout.strip().split(";")[0]
        jobs.append(previous)
        echo(f"[{stage.name}] submitted job {previous}: {path}")
    if jobs:
        echo(f"submitted {len(jobs)} job(s); follow them with: squeue -j {','.join(jobs)}  (logs: {run / 'logs'})")
    elif not dry_run:
        echo("every stage is done; nothing submitted")
    return jobs


# --- the commands the scripts call -------------------------------------------------------------------
def _record(run: Path, stage: str, fingerprint: str, outputs: list[str]) -> None:
    absent = [p for p in outputs if not Path(p).exists()]
    if absent:
        raise SystemExit(f"[{stage}] finished but did not produce: {', '.join(absent)}")
    state = read_state(run)
    state.setdefault("stages", {})[stage] = fingerprint
    write_state(run, state)
    print(f"[{stage}] done (recorded in {run / STATE_FILE})")


def main(argv: list[str] | None = None) -> int:
    from vr_plugins.pipeline.launch import check_shards

    parser = argparse.ArgumentParser(prog="python -m vr_plugins.pipeline.launch_slurm")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-shards")
    check.add_argument("run", type=Path)
    check.add_argument("count", type=int)
    record = sub.add_parser("record")
    record.add_argument("run", type=Path)
    record.add_argument("stage")
    record.add_argument("fingerprint")
    record.add_argument("outputs", nargs="*")
    args = parser.parse_args(argv)
    try:
        if args.command == "check-shards":
            check_shards(args.run, args.count)
        else:
            _record(args.run, args.stage, args.fingerprint, args.outputs)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
