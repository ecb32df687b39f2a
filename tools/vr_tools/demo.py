"""``vr-tools demo`` (what ``make demo`` runs): the whole pipeline on the embedded default, on CPU."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="demo")
@click.option("--run-dir", default="runs/demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the commands only.")
def command(run_dir, dry_run):
    """Tiny model built locally + bundled checkable problems: prepare, train pi_0 and q, sample,
    score, rollout, verify, build (gml, acc), train the final models, evaluate; then print where every
    artefact is and the evaluation table."""
    from vr_plugins.demo import DEMO_CONFIG, print_artefacts
    from vr_plugins.pipeline.config import load_config
    from vr_plugins.pipeline.runner import run_pipeline

    config = load_config(DEMO_CONFIG)
    run_pipeline(config, DEMO_CONFIG, run_dir, dry_run=dry_run, echo=click.echo)
    if not dry_run:
        print_artefacts(Path(run_dir), config, echo=click.echo)
