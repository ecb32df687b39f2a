"""``vr-tools reference-data``: register RUN/questions.parquet for the initial and posterior trainings."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="reference-data")
@click.option("--run-dir", required=True, type=click.Path(path_type=Path), help="Run directory with questions.parquet.")
def command(run_dir):
    """Write the `vr_reference` (format vr_reasoning) and `vr_posterior_train` (format vr_posterior)
    entries into RUN/datasets/dataset_info.json."""
    from vr_plugins.pipeline.reference_data import write_reference_datasets

    path = write_reference_datasets(run_dir)
    click.echo(f"wrote {path}")
