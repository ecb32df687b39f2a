"""``RUN/pipeline.json``: which stages completed, with the fingerprint of the commands that did it.

Its own module because every launcher reads and writes it: the runner (local and torchrun) and the
SLURM job scripts (``python -m vr_plugins.pipeline.launch_slurm record``), which must not import the runner.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from vr_plugins.pipeline.stages import Stage
from vr_plugins.rundir.io import write_text_atomic

STATE_FILE = "pipeline.json"


def stage_fingerprint(stage: Stage, run: str | os.PathLike | None = None) -> str:
    """Hash of the stage's commands; with ``run``, its path is replaced by ``$RUN`` first, so a copied or
    moved run directory keeps the fingerprints it recorded."""
    text = "\n".join(step.shell() for step in stage.steps)
    if run is not None:
        text = text.replace(str(run), "$RUN")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_state(run: Path) -> dict:
    """The recorded state; ``{}`` for a run directory no pipeline has started."""
    path = run / STATE_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def write_state(run: Path, state: dict) -> None:
    write_text_atomic(json.dumps(state, indent=2, sort_keys=True) + "\n", run / STATE_FILE)


def is_done(stage: Stage, state: dict) -> bool:
    """Recorded with these commands (run-relative, or absolute as older run dirs did) and outputs present."""
    recorded = state["stages"].get(stage.name)
    return recorded in (stage_fingerprint(stage, state.get("run")), stage_fingerprint(stage)) and all(
        p.exists() for p in stage.outputs)
