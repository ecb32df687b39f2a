"""``vr-tools pipeline``: the nine steps of docs/method.md plus evaluation from one config."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="pipeline")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="Pipeline YAML (see recipes/pipeline/ and docs/pipeline.md).")
@click.option("--run-dir", required=True, type=click.Path(path_type=Path), help="Run directory (created if missing).")
@click.option("--from", "start", default=None, help="First stage to run (earlier stages must have their outputs).")
@click.option("--until", default=None, help="Last stage to run.")
@click.option("--dry-run", is_flag=True, help="Print the exact commands of every stage and whether it is done; run nothing.")
def command(config_path, run_dir, start, until, dry_run):
    """Run the pipeline; stages whose outputs are complete for this config are skipped, so an
    interrupted run continues where it stopped."""
    from vr_plugins.pipeline.config import ConfigError, load_config
    from vr_plugins.pipeline.runner import StageFailed, run_pipeline
    from vr_plugins.registry import UnknownNameError

    try:
        config = load_config(config_path)
        run_pipeline(config, config_path, run_dir, start=start, until=until, dry_run=dry_run, echo=click.echo)
    except (ConfigError, UnknownNameError, FileNotFoundError, StageFailed) as exc:
        raise click.ClickException(str(exc)) from None
