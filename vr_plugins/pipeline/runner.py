"""Runs the stages in order, skipping those whose outputs are complete for this config.

State lives in ``RUN/pipeline.json``: the config the run directory was created with and, per stage, the
fingerprint of the commands that completed it. A run directory created by a different config is refused
before any work (changes under ``eval`` are allowed: evaluation is the last stage and re-runs). An
interrupted stage simply re-runs: the data steps resume from their own parts, trainings restart.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable

from vr_plugins.pipeline.config import ConfigError, PipelineConfig, to_dict
from vr_plugins.pipeline.stages import Stage, Step, build_stages
from vr_plugins.rundir.io import tmp_path_for, write_text_atomic

STATE_FILE = "pipeline.json"
#: config sections that may change on an existing run directory
MUTABLE_SECTIONS = ("eval",)
_BIN = Path(sys.executable).parent


def stage_fingerprint(stage: Stage, run: str | os.PathLike | None = None) -> str:
    """Hash of the stage's commands; with ``run``, its path is replaced by ``$RUN`` first, so a copied or
    moved run directory keeps the fingerprints it recorded."""
    text = "\n".join(step.shell() for step in stage.steps)
    if run is not None:
        text = text.replace(str(run), "$RUN")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_state(run: Path) -> dict:
    path = run / STATE_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _write_state(run: Path, state: dict) -> None:
    write_text_atomic(json.dumps(state, indent=2, sort_keys=True) + "\n", run / STATE_FILE)


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


def is_done(stage: Stage, state: dict) -> bool:
    """Recorded with these commands (run-relative, or absolute as older run dirs did) and outputs present."""
    recorded = state["stages"].get(stage.name)
    return recorded in (stage_fingerprint(stage, state.get("run")), stage_fingerprint(stage)) and all(
        p.exists() for p in stage.outputs)


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


class StageFailed(RuntimeError):
    pass


def run_pipeline(config: PipelineConfig, config_path: Path, run: Path, start: str | None = None,
                 until: str | None = None, dry_run: bool = False, echo: Callable[[str], None] = print) -> list[Stage]:
    run = Path(run).resolve()
    stages = build_stages(config, run)
    selected = select_stages(stages, start, until)
    state = check_run_dir(config, run, config_path) if (run / STATE_FILE).exists() or not dry_run else {"stages": {}}
    if dry_run:
        for stage in selected:
            status = "done" if is_done(stage, state) else "todo"
            echo(f"# stage {stage.name} [{status}]{': ' + stage.description if stage.description else ''}")
            for step in stage.steps:
                echo(step.shell())
        return selected
    first = stages.index(selected[0])
    missing = [s.name for s in stages[:first] if not all(p.exists() for p in s.outputs)]
    if missing:
        raise ConfigError(f"--from {selected[0].name}: earlier stage(s) {', '.join(missing)} have no outputs in {run}")
    run.mkdir(parents=True, exist_ok=True)
    _write_state(run, state)
    execute_stages(selected, state, lambda s: _write_state(run, s), run / "logs", echo)
    return selected


def execute_stages(stages: list[Stage], state: dict, save: Callable[[dict], None], log_dir: Path,
                   echo: Callable[[str], None] = print) -> None:
    """Skip the stages already done, run the others command by command, record each when complete."""
    for stage in stages:
        if is_done(stage, state):
            echo(f"[{stage.name}] done already, skipped")
            continue
        started = time.time()
        echo(f"[{stage.name}] running {len(stage.steps)} command(s); log: {log_dir / (stage.name + '.log')}")
        for step in stage.steps:
            run_step(step, log_dir / f"{stage.name}.log")
        absent = [str(p) for p in stage.outputs if not p.exists()]
        if absent:
            raise StageFailed(f"[{stage.name}] finished but did not produce: {', '.join(absent)}")
        state["stages"][stage.name] = stage_fingerprint(stage, state.get("run"))
        save(state)
        echo(f"[{stage.name}] done in {time.time() - started:.1f}s{_work_time(stage)}")


def _work_time(stage: Stage) -> str:
    """`` (work 4.0s: train_runtime)`` when the stage records its work time, else empty."""
    if stage.work_time is None:
        return ""
    try:
        return f" (work {float(stage.work_time.resolve()):.1f}s: {stage.work_time.key})"
    except (RuntimeError, ValueError):
        return ""
