"""``vr-tools study`` (what ``make study`` runs): the micro-scale study of docs/study.md on CPU."""

from __future__ import annotations

from pathlib import Path

import click


def _seeds(ctx, param, value):
    if not value:
        return None
    try:
        return tuple(int(s) for s in value.replace(",", " ").split())
    except ValueError:
        raise click.BadParameter(f"expected integers like '0,1,2', got {value!r}") from None


@click.command(name="study")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Study folder (created; resumable).")
@click.option("--tiny", is_flag=True, help="The CI preset: every arm once on a handful of questions (minutes).")
@click.option("--seeds", callback=_seeds, default=None, help="Model seeds, e.g. '0,1,2' (default: the preset's).")
@click.option("--dry-run", is_flag=True, help="Print every command of every seed; run nothing.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Seeds run at the same time (one thread each: use the number of cores).")
@click.option("--aggregate-only", is_flag=True, help="Only collect the finished evaluations into the table/plots.")
def command(out, tiny, seeds, dry_run, jobs, aggregate_only):
    """Synthetic arithmetic task, tiny model pretrained from scratch: pi_0, q (templates a and b), the
    pipeline's gml / acc / snis finals, SFT and RFT baselines, a K sweep, a learning curve; every model
    evaluated on a held-out split; then OUT/results.md (mean ± sd over seeds, hardest third) and plots."""
    from vr_plugins.study.arms import FULL, TINY, with_seeds
    from vr_plugins.study.driver import run_study
    from vr_plugins.study.results import aggregate

    config = with_seeds(TINY if tiny else FULL, seeds)
    if not aggregate_only:
        run_study(config, out, echo=click.echo, dry_run=dry_run, jobs=jobs)
    if not dry_run:
        _, table = aggregate(out)
        click.echo(f"\n{out / 'results.md'}:\n")
        click.echo((out / "results.md").read_text())
