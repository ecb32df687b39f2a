"""Runs the stages in order, skipping those whose outputs are complete for this config.

State lives in ``RUN/pipeline.json``: the config the run directory was created with and, per stage, the
fingerprint of the commands that completed it. A run directory created by a different config is refused
before any work (changes under ``eval`` are allowed: evaluation is the last stage and re-runs). An
interrupted stage simply re-runs: the data steps resume from their own parts, trainings restart.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable

from vr_plugins.errors import UserError
from vr_plugins.pipeline.config import ConfigError, PipelineConfig, to_dict
from vr_plugins.pipeline.launch import DATA_ROLES, check_shards, layout
from vr_plugins.pipeline.stages import Stage, Step, build_stages
from vr_plugins.pipeline.state import STATE_FILE, is_done, stage_fingerprint
from vr_plugins.pipeline.state import read_state as _read_state
from vr_plugins.pipeline.state import write_state as _write_state
from vr_plugins.rundir.io import tmp_path_for

#: config sections that may change on an existing run directory
MUTABLE_SECTIONS = ("eval", "launcher", "cluster", "envs")  # where the commands run is not what they compute
_BIN = Path(sys.executable).parent


def check_run_dir(config: PipelineConfig, run: Path, config_path: Path) -> dict:
    """Refuse a run directory made by a different config; returns the state to continue from."""
    state = _read_state(run)
    old = state.get("config")
    new = to_dict(config)
    if old is not None:
        diff = sorted(k for k in set(old) | set(new) if k not in MUTABLE_SECTIONS and old.get(k) != new.get(k))
        if diff:
            details = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
            raise ConfigError(
                f"{run / STATE_FILE}: this run directory was created by a different config ({details}). "
                f"Use a new --run-dir for {config_path}."
            )
    state.setdefault("stages", {})
    state["config"] = new
    state["run"] = str(run)  # where the fingerprints are computed now (they are recorded relative to it)
    return state


def select_stages(stages: list[Stage], start: str | None, until: str | None) -> list[Stage]:
    names = [s.name for s in stages]
    for label, name in (("--from", start), ("--until", until)):
        if name is not None and name not in names:
            raise ConfigError(f"{label} {name!r} is not a stage of this config. Stages: {', '.join(names)}")
    lo = names.index(start) if start else 0
    hi = names.index(until) + 1 if until else len(names)
    if lo >= hi:
        raise ConfigError(f"--from {start} comes after --until {until}. Stages: {', '.join(names)}")
    return stages[lo:hi]


def _executable(word: str) -> str:
    candidate = _BIN / word
    return str(candidate) if candidate.exists() else word


def run_step(step: Step, log_path: Path) -> None:
    argv = step.resolved()
    argv[0] = _executable(argv[0])
    env = dict(os.environ, **{k: str(v) for k, v in step.env.items()})
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"\n$ {step.shell()}\n")
        log.flush()
        if step.stdout_to is None:
            proc = subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        else:
            step.stdout_to.parent.mkdir(parents=True, exist_ok=True)
            tmp = tmp_path_for(step.stdout_to)
            with open(tmp, "w") as out:
                proc = subprocess.run(argv, env=env, stdout=out, stderr=log)
            if proc.returncode == 0:
                os.replace(tmp, step.stdout_to)
            else:
                tmp.unlink(missing_ok=True)
    if proc.returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-40:])
        raise StageFailed(f"command failed (exit {proc.returncode}): {step.shell()}\n--- last lines of {log_path}\n{tail}")


class StageFailed(UserError, RuntimeError):
    """A stage's command exited non-zero; the message names the stage, its log and the log's last lines (the
    CLI reports it like any user error: what failed is in the command's own output, not in this traceback)."""


def run_pipeline(config: PipelineConfig, config_path: Path, run: Path, start: str | None = None,
                 until: str | None = None, dry_run: bool = False, echo: Callable[[str], None] = print,
                 node_rank: int = 0, overrides: tuple[str, ...] = ()) -> list[Stage]:
    """Run (or print) the selected stages with the config's launcher: ``local`` and ``torchrun`` here
    (``node_rank``: this machine's rank under torchrun), ``slurm`` by submitting one job per stage."""
    from vr_plugins.pipeline import launch_nodes, launch_slurm

    run = Path(run).resolve()
    stages = build_stages(config, run)
    selected = select_stages(stages, start, until)
    if config.launcher == "slurm" and not dry_run:
        launch_slurm.require_sbatch()  # before anything is written
    if not 0 <= node_rank < config.cluster.nodes or (node_rank and config.launcher != "torchrun"):
        raise ConfigError(f"--node-rank {node_rank}: needs launcher=torchrun and 0 <= rank < cluster.nodes "
                          f"({config.cluster.nodes})")
    state = check_run_dir(config, run, config_path) if (run / STATE_FILE).exists() or not dry_run else {"stages": {}}
    if dry_run and config.launcher == "slurm":
        launch_slurm.submit(config, config_path, run, selected, state, overrides, echo, dry_run=True)
        return selected
    if dry_run:
        for stage in selected:
            status = "done" if is_done(stage, state) else "todo"
            echo(f"# stage {stage.name} [{status}]{': ' + stage.description if stage.description else ''}")
            for line in launch_nodes.dry_run_lines(stage, config):
                echo(line)
        return selected
    first = stages.index(selected[0])
    missing = [s.name for s in stages[:first] if not all(p.exists() for p in s.outputs)]
    if missing:
        raise ConfigError(f"--from {selected[0].name}: earlier stage(s) {', '.join(missing)} have no outputs in {run}")
    if config.launcher == "torchrun" and config.cluster.nodes > 1 and not config.cluster.master_addr:
        raise ConfigError(f"{config_path}: launcher torchrun on {config.cluster.nodes} nodes needs node 0's address: "
                          "cluster.master_addr=<host> (the same on every node)")
    run.mkdir(parents=True, exist_ok=True)
    if node_rank == 0:
        _write_state(run, state)
    if config.launcher == "slurm":
        launch_slurm.submit(config, config_path, run, selected, state, overrides, echo)
        return selected

    def plan(stage: Stage) -> list[list[Step]]:
        for step in stage.steps:
            if step.role in DATA_ROLES:
                check_shards(run, layout(config).data_tasks)
        return launch_nodes.node_plan(stage, config, node_rank)

    if node_rank == 0:
        save = lambda s: _write_state(run, s)  # noqa: E731
    else:
        save = lambda s: None  # noqa: E731  (node 0 records the stages)
    wait = config.launcher == "torchrun" and config.cluster.nodes > 1
    execute_stages(selected, state, save, run / "logs", echo, plan=plan,
                   reload=(lambda: _read_state(run) or state) if wait else None, wait_for_outputs=wait)
    return selected


def execute_stages(stages: list[Stage], state: dict, save: Callable[[dict], None], log_dir: Path,
                   echo: Callable[[str], None] = print, plan: Callable[[Stage], list[list[Step]]] | None = None,
                   reload: Callable[[], dict] | None = None, wait_for_outputs: bool = False) -> None:
    """Skip the stages already done, run the others group by group (``plan``; default: each step alone,
    in order), record each when complete. ``wait_for_outputs``: other nodes produce part of a stage, so
    wait until its outputs exist; ``reload`` re-reads the state another node records."""
    plan = plan or (lambda stage: [[step] for step in stage.steps])
    for stage in stages:
        if reload is not None:
            state = reload()
            state.setdefault("stages", {})
        if is_done(stage, state):
            echo(f"[{stage.name}] done already, skipped")
            continue
        started = time.time()
        log = log_dir / (stage.name + ".log")
        groups = plan(stage)
        echo(f"[{stage.name}] running {sum(len(g) for g in groups)} command(s); log: {log}")
        for group in groups:
            run_group(group, log)
        if wait_for_outputs:
            _wait_for(stage, echo)
        absent = [str(p) for p in stage.outputs if not p.exists()]
        if absent:
            raise StageFailed(f"[{stage.name}] finished but did not produce: {', '.join(absent)}")
        state.setdefault("stages", {})[stage.name] = stage_fingerprint(stage, state.get("run"))
        save(state)
        echo(f"[{stage.name}] done in {time.time() - started:.1f}s{_work_time(stage)}")


def run_group(group: list[Step], log: Path) -> None:
    """One process, or several at the same time (each shard logs to its own file)."""
    if len(group) == 1:
        run_step(group[0], log)
        return
    from concurrent.futures import ThreadPoolExecutor

    logs = [log.with_name(f"{log.stem}.{i}{log.suffix}") for i in range(len(group))]
    with ThreadPoolExecutor(len(group)) as pool:
        futures = [pool.submit(run_step, step, path) for step, path in zip(group, logs)]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]


def _wait_for(stage: Stage, echo: Callable[[str], None], poll: float = 5.0) -> None:
    announced = False
    while not all(p.exists() for p in stage.outputs):
        if not announced:
            echo(f"[{stage.name}] waiting for the other nodes: {', '.join(str(p) for p in stage.outputs if not p.exists())}")
            announced = True
        time.sleep(poll)


def _work_time(stage: Stage) -> str:
    """`` (work 4.0s: train_runtime)`` when the stage records its work time, else empty."""
    if stage.work_time is None:
        return ""
    try:
        return f" (work {float(stage.work_time.resolve()):.1f}s: {stage.work_time.key})"
    except (RuntimeError, ValueError):
        return ""
