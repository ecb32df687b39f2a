"""``vr-tools build``: the final training dataset of a run, with a registered estimator."""

from __future__ import annotations

import time

import click


def _parse_extra(pairs):
    extra = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--option")
        extra[key] = value
    return extra


@click.command(name="build")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="Run directory (questions.parquet, scores/, and rollouts/ + verified/ for acc and rft).")
@click.option("--estimator", required=True, help="Registered estimator: gml, acc, snis, rft, or a plugin's.")
@click.option("--mix/--no-mix", default=True, show_default=True,
              help="Prepend all original reference examples (source -2): 2N rows for gml/acc.")
@click.option("--max-think-tokens", type=click.IntRange(min=1), default=28000, show_default=True,
              help="A trace is a candidate only if think_tokens is below this.")
@click.option("--fallback-families", default="ruc", show_default=True,
              help="Comma-separated source families that fall back to the GML choice under acc ('' for none).")
@click.option("--log-weight", type=click.Choice(["gml", "iwae", "acc"]), default="gml", show_default=True,
              help="snis only: the log importance weight of a trace.")
@click.option("--resample", type=click.IntRange(min=1), default=None,
              help="snis only: draw this many traces per question by weight instead of writing soft weights.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --resample.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Extra option for a plugin estimator (repeatable).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output .parquet (default RUN/datasets/<estimator>[-mix].parquet); dataset_info.json goes beside it.")
@click.option("--force", is_flag=True, help="Overwrite an output built before with different parameters.")
def command(run_dir, estimator, mix, max_think_tokens, fallback_families, log_weight, resample, seed, options, out,
            force):
    """Select training rows with an estimator and write the dataset + its dataset_info.json entry."""
    from vr_plugins.estimators.build import build_dataset
    from vr_plugins.estimators.candidates import BuildOptions
    from vr_plugins.registry import UnknownNameError
    from vr_plugins.rundir.io import RunDirError

    opts = BuildOptions(
        max_think_tokens=max_think_tokens,
        fallback_families=tuple(f.strip() for f in fallback_families.split(",") if f.strip()),
        seed=seed, resample=resample, log_weight=log_weight, extra=_parse_extra(options),
    )
    start = time.perf_counter()
    try:
        result = build_dataset(run_dir, estimator, opts, mix=mix, out=out, force=force)
    except (RunDirError, UnknownNameError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {result.path} ({result.rows} rows) in {time.perf_counter() - start:.1f}s; "
               f"dataset_info.json entry {result.name!r}")
    width = max(len(k) for k in result.summary)
    for key, value in result.summary.items():
        click.echo(f"  {key:<{width}}  {value}")
    click.echo(f"train with: dataset_dir: {result.path.parent}  dataset: {result.name}")
