"""``RUN/manifest.json``: the parameters each step ran with, so outputs of different settings never mix.

Shards of one step run concurrently on many nodes, so updates take an exclusive lock on a sibling
lock file and replace the manifest atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vr_plugins.rundir.columns import MANIFEST_FILE
from vr_plugins.rundir.io import RunDirError, file_lock, write_text_atomic


class ManifestMismatch(RunDirError):
    """A step was re-run on existing outputs with different parameters."""


def _locked(run_dir: Path):
    return file_lock(run_dir / MANIFEST_FILE)


def read_manifest(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / MANIFEST_FILE
    if not path.exists():
        return {"steps": {}}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc})") from exc
    data.setdefault("steps", {})
    return data


def step_params(run_dir: str | os.PathLike, step: str) -> dict[str, Any] | None:
    entry = read_manifest(run_dir)["steps"].get(step)
    return None if entry is None else entry.get("params")


def _normalise(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, sort_keys=True, default=str))


def record_step(run_dir: str | os.PathLike, step: str, params: dict[str, Any], force: bool = False) -> bool:
    """Record ``params`` for ``step``; refuse different parameters unless ``force``.

    Returns True when the manifest already held these parameters (a resume), False when it is new or
    was overwritten with ``force``.
    """
    run_dir = Path(run_dir)
    params = _normalise(params)
    with _locked(run_dir):
        manifest = read_manifest(run_dir)
        old = manifest["steps"].get(step, {}).get("params")
        if old == params:
            return True
        if old is not None and not force:
            diff = {k: (old.get(k), params.get(k)) for k in sorted(set(old) | set(params)) if old.get(k) != params.get(k)}
            lines = "\n".join(f"  {k}: recorded {a!r}, now {b!r}" for k, (a, b) in diff.items())
            raise ManifestMismatch(
                f"{run_dir / MANIFEST_FILE}: step {step!r} was run with different parameters:\n{lines}\n"
                f"Use a new run directory, or pass --force to discard the step's outputs and redo it."
            )
        manifest["steps"][step] = {"params": params}
        write_text_atomic(json.dumps(manifest, indent=2, sort_keys=True) + "\n", run_dir / MANIFEST_FILE)
        return False


def mark_complete(run_dir: str | os.PathLike, step: str, outputs: list[str]) -> None:
    """Record that ``step`` finished and which files it produced (relative paths)."""
    run_dir = Path(run_dir)
    with _locked(run_dir):
        manifest = read_manifest(run_dir)
        entry = manifest["steps"].setdefault(step, {})
        done = set(entry.get("outputs", [])) | set(outputs)
        entry["outputs"] = sorted(done)
        write_text_atomic(json.dumps(manifest, indent=2, sort_keys=True) + "\n", run_dir / MANIFEST_FILE)
