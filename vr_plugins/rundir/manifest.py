"""``RUN/manifest.json``: the parameters each step ran with, so outputs of different settings never mix.

Paths inside the run directory are stored relative to it (their keys listed under ``relative``), paths
outside as given, so a copied or moved run directory keeps matching the commands run on it; readers get
them back absolute. A step records its parameters only once it has succeeded (:func:`record_step` right
before its outputs are committed), so a failed run never blocks the corrected one.

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
from vr_plugins.rundir.paths import from_stored, to_stored

#: per step: the parameter keys whose values are paths stored relative to the run directory
RELATIVE_KEY = "relative"


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
    """The parameters ``step`` recorded, with run-relative paths made absolute for this location."""
    entry = read_manifest(run_dir)["steps"].get(step)
    if entry is None or entry.get("params") is None:
        return None
    params = dict(entry["params"])
    for key in entry.get(RELATIVE_KEY, []):
        if isinstance(params.get(key), str):
            params[key] = from_stored(params[key], Path(run_dir))
    return params


def _normalise(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, sort_keys=True, default=str))


def stored_params(run_dir: Path, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``params`` as stored: absolute paths inside ``run_dir`` made relative; returns (params, their keys)."""
    out, relative = {}, []
    for key, value in _normalise(params).items():
        out[key], is_rel = to_stored(value, run_dir)
        if is_rel:
            relative.append(key)
    return out, sorted(relative)


def _compare(run_dir: Path, manifest: dict, step: str, params: dict[str, Any], force: bool) -> bool:
    """True when ``manifest`` holds ``params`` (stored form) for ``step``; raise on a mismatch unless ``force``."""
    old = manifest["steps"].get(step, {}).get("params")
    if old is not None:  # manifests written before relative paths held absolute paths inside the run dir
        old = stored_params(run_dir, old)[0]
    if old == params:
        return True
    if old is not None and not force:
        diff = {k: (old.get(k), params.get(k)) for k in sorted(set(old) | set(params)) if old.get(k) != params.get(k)}
        lines = "\n".join(f"  {k}: recorded {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise ManifestMismatch(
            f"{run_dir / MANIFEST_FILE}: step {step!r} was run with different parameters:\n{lines}\n"
            f"Use a new run directory, or pass --force to discard the step's outputs and redo it."
        )
    return False


def check_step(run_dir: str | os.PathLike, step: str, params: dict[str, Any], force: bool = False) -> bool:
    """Raise :class:`ManifestMismatch` as :func:`record_step` would, writing nothing.

    Steps whose output is written in one atomic piece (``prepare``, ``build``) call this before their
    work and :func:`record_step` once the output is in place, so a failed run records nothing. Returns
    True when the manifest already holds these parameters.
    """
    run_dir = Path(run_dir)
    return _compare(run_dir, read_manifest(run_dir), step, stored_params(run_dir, params)[0], force)


def record_step(run_dir: str | os.PathLike, step: str, params: dict[str, Any], force: bool = False) -> bool:
    """Record ``params`` for ``step``; refuse different parameters unless ``force``.

    Returns True when the manifest already held these parameters (a resume), False when it is new or
    was overwritten with ``force``.
    """
    run_dir = Path(run_dir)
    params, relative = stored_params(run_dir, params)
    with _locked(run_dir):
        manifest = read_manifest(run_dir)
        if _compare(run_dir, manifest, step, params, force):
            return True
        manifest["steps"][step] = {"params": params, RELATIVE_KEY: relative}
        write_text_atomic(json.dumps(manifest, indent=2, sort_keys=True) + "\n", run_dir / MANIFEST_FILE)
        return False


def completed_outputs(run_dir: str | os.PathLike, step: str) -> list[str]:
    """The files (relative paths) :func:`mark_complete` recorded for ``step``; empty while it never finished."""
    return list(read_manifest(run_dir)["steps"].get(step, {}).get("outputs") or [])


def mark_complete(run_dir: str | os.PathLike, step: str, outputs: list[str]) -> None:
    """Record that ``step`` finished and which files it produced (relative paths)."""
    run_dir = Path(run_dir)
    with _locked(run_dir):
        manifest = read_manifest(run_dir)
        entry = manifest["steps"].setdefault(step, {})
        done = set(entry.get("outputs", [])) | set(outputs)
        entry["outputs"] = sorted(done)
        write_text_atomic(json.dumps(manifest, indent=2, sort_keys=True) + "\n", run_dir / MANIFEST_FILE)
