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
@click.option("--preset", type=click.Choice(["powered", "powered-400", "full", "tiny"]), default="powered",
              show_default=True,
              help="powered: the two comparisons with 95% intervals, 12 seeds (make study); powered-400: the same "
                   "with 400 training steps (a variant, 6 seeds); full: every arm, 3 seeds (templates, K sweep, "
                   "learning curves); tiny: the CI preset, every arm once (minutes).")
@click.option("--tiny", is_flag=True, help="Same as --preset tiny.")
@click.option("--seeds", callback=_seeds, default=None, help="Model seeds, e.g. '0,1,2' (default: the preset's).")
@click.option("--dry-run", is_flag=True, help="Print every command of every seed; run nothing.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Seeds run at the same time (one thread each: use the number of cores).")
@click.option("--aggregate-only", is_flag=True, help="Only collect the finished evaluations into the table/plots.")
def command(out, preset, tiny, seeds, dry_run, jobs, aggregate_only):
    """Synthetic arithmetic task, tiny model pretrained on CPU: pi_0 (the same-budget SFT baseline), the
    posterior, the pipeline's gml / acc / snis finals and the RFT baseline, every model evaluated on a
    held-out split; then OUT/results.md (mean ± sd over seeds, the paired comparisons with 95% intervals)
    and plots. The full preset adds template A, a K sweep and learning curves."""
    from vr_plugins.study.arms import PRESETS, with_seeds
    from vr_plugins.study.driver import run_study
    from vr_plugins.study.results import aggregate

    config = with_seeds(PRESETS["tiny" if tiny else preset], seeds)
    if not aggregate_only:
        run_study(config, out, echo=click.echo, dry_run=dry_run, jobs=jobs)
    if not dry_run:
        _, table = aggregate(out)
        click.echo(f"\n{out / 'results.md'}:\n")
        click.echo((out / "results.md").read_text())
