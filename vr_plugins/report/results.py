"""The results sections of a run report: the evaluation table (the result folders the pipeline's
``evaluate`` stage writes under ``RUN/eval``) and the training-loss history of every model under
``RUN/models`` (the ``log_history`` of the ``trainer_state.json`` a Hugging Face Trainer saves).

Both are read leniently: an unreadable file is listed in the report's errors instead of stopping it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

EVAL_DIR = "eval"
MODELS_DIR = "models"
TRAINER_STATE = "trainer_state.json"


@dataclass
class LossCurve:
    model: str
    path: Path
    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    train_loss: float | None = None  #: the Trainer's mean over the run (last log_history entry)
    runtime: float | None = None


def eval_results(run_dir: Path, errors: list[str]) -> list:
    """Every result under ``RUN/eval`` (:func:`vr_plugins.eval.summary.collect`); [] when none."""
    from vr_plugins.errors import UserError
    from vr_plugins.eval.summary import SUMMARY_FILENAME, collect

    folder = run_dir / EVAL_DIR
    if not folder.is_dir() or not any(folder.rglob(SUMMARY_FILENAME)):
        return []
    try:
        return collect([folder])
    except UserError as exc:
        errors.append(f"eval: {exc}")
        return []


def _state_file(model_dir: Path) -> Path | None:
    """``trainer_state.json`` of a finished training, else that of its latest checkpoint."""
    if (model_dir / TRAINER_STATE).is_file():
        return model_dir / TRAINER_STATE
    checkpoints = sorted((p for p in model_dir.glob(f"checkpoint-*/{TRAINER_STATE}")),
                         key=lambda p: int(p.parent.name.rsplit("-", 1)[-1]) if p.parent.name.rsplit("-", 1)[-1].isdigit() else -1)
    return checkpoints[-1] if checkpoints else None


def loss_curves(run_dir: Path, errors: list[str]) -> list[LossCurve]:
    """One curve per model folder with a trainer state (models without one, e.g. the base, are skipped)."""
    folder = run_dir / MODELS_DIR
    curves = []
    for model_dir in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        path = _state_file(model_dir)
        if path is None:
            continue
        try:
            history = json.loads(path.read_text())["log_history"]
            if not isinstance(history, list):
                raise TypeError("log_history is not a list")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            errors.append(f"{path}: no readable log_history ({type(exc).__name__}: {exc})")
            continue
        curve = LossCurve(model_dir.name, path)
        for entry in history:
            if isinstance(entry, dict) and "loss" in entry and "step" in entry:
                curve.steps.append(int(entry["step"]))
                curve.losses.append(float(entry["loss"]))
            elif isinstance(entry, dict) and "train_loss" in entry:
                curve.train_loss = float(entry["train_loss"])
                curve.runtime = entry.get("train_runtime")
        curves.append(curve)
    return curves


def training_rows(curves: list[LossCurve]) -> list[dict]:
    return [{"model": c.model, "logged steps": len(c.steps), "last step": c.steps[-1] if c.steps else None,
             "first loss": round(c.losses[0], 4) if c.losses else None,
             "last loss": round(c.losses[-1], 4) if c.losses else None,
             "train_loss": None if c.train_loss is None else round(c.train_loss, 4),
             "train_runtime (s)": c.runtime} for c in curves]
