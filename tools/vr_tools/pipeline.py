"""``vr-tools pipeline``: the nine steps of docs/method.md plus evaluation from one config."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="pipeline", context_settings={"ignore_unknown_options": False})
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="Pipeline YAML (see recipes/pipeline/ and docs/pipeline.md).")
@click.option("--run-dir", required=True, type=click.Path(path_type=Path), help="Run directory (created if missing).")
@click.option("--from", "start", default=None, help="First stage to run (earlier stages must have their outputs).")
@click.option("--until", default=None, help="Last stage to run.")
@click.option("--dry-run", is_flag=True, help="Print the exact commands of every stage and whether it is done; run "
              "nothing (launcher slurm: write the sbatch scripts into RUN/launch/ without submitting them).")
@click.option("--launcher", type=click.Choice(["local", "torchrun", "slurm"]), default=None,
              help="Override the config's launcher (same as launcher=...).")
@click.option("--node-rank", default=0, show_default=True, type=int,
              help="launcher torchrun: this machine's rank (run the same command on every node with its rank).")
@click.argument("overrides", nargs=-1)
def command(config_path, run_dir, start, until, dry_run, launcher, node_rank, overrides):
    """Run the pipeline; stages whose outputs are complete for this config are skipped, so an
    interrupted run continues where it stopped. OVERRIDES are key=value words applied to the config
    (nested keys with dots, values read as YAML: sampling.max_new_tokens=512 launcher=slurm), checked
    like the file's keys."""
    from vr_plugins.pipeline.config import load_config
    from vr_plugins.pipeline.runner import run_pipeline

    overrides = tuple(overrides) + ((f"launcher={launcher}",) if launcher else ())
    config = load_config(config_path, overrides)
    run_pipeline(config, config_path, run_dir, start=start, until=until, dry_run=dry_run, echo=click.echo,
                 node_rank=node_rank, overrides=overrides)
