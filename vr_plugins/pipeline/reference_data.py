"""LLaMA-Factory dataset entries for the two trainings that use the reference traces.

``RUN/questions.parquet`` already holds question, reference_think and reference_solution, so the initial
model (format ``vr_reasoning``) and the posterior (format ``vr_posterior``) train straight from it: the
entries point at ``../questions.parquet`` from ``dataset_dir = RUN/datasets`` and map the format's
logical columns to the contract's column names. No copy of the data is made.
"""

from __future__ import annotations

import os
from pathlib import Path

from vr_plugins.estimators.build import update_dataset_info
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.io import RunDirError

REFERENCE_DATASET = "vr_reference"
POSTERIOR_DATASET = "vr_posterior_train"
_COLUMNS = {"question": C.QUESTION, "think": C.REFERENCE_THINK, "solution": C.REFERENCE_SOLUTION}


def reference_entries() -> dict:
    file_name = f"../{C.QUESTIONS_FILE}"
    return {
        REFERENCE_DATASET: {"file_name": file_name, "formatting": "vr_reasoning", "columns": dict(_COLUMNS)},
        POSTERIOR_DATASET: {"file_name": file_name, "formatting": "vr_posterior", "columns": dict(_COLUMNS)},
    }


def write_reference_datasets(run_dir: str | os.PathLike) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / C.QUESTIONS_FILE).exists():
        raise RunDirError(f"{run_dir / C.QUESTIONS_FILE}: file not found (run `vr-tools prepare` first)")
    datasets = run_dir / C.DATASETS_DIR
    datasets.mkdir(parents=True, exist_ok=True)
    path = datasets / C.DATASET_INFO_FILE
    for name, entry in reference_entries().items():
        path = update_dataset_info(datasets, {name: entry})
    return path
