"""``vr-tools build``: the final training dataset of a run, with a registered estimator."""

from __future__ import annotations

import time

import click

from vr_plugins.estimators.options import AccOptions, CandidateOptions, SnisOptions
from vr_plugins.options import BuildStepOptions
from vr_tools._options import from_field, parse_list


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
@from_field(BuildStepOptions, "mix", "--mix/--no-mix")
@from_field(CandidateOptions, "max_think_tokens")
@from_field(AccOptions, "fallback_families")
@from_field(SnisOptions, "log_weight")
@from_field(SnisOptions, "resample")
@from_field(SnisOptions, "seed")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Extra option for a plugin estimator (repeatable).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output .parquet (default RUN/datasets/<estimator>[-mix].parquet); dataset_info.json goes beside it.")
@click.option("--force", is_flag=True, help="Overwrite an output built before with different parameters.")
def command(run_dir, estimator, mix, max_think_tokens, fallback_families, log_weight, resample, seed, options, out,
            force):
    """Select training rows with an estimator and write the dataset + its dataset_info.json entry."""
    from vr_plugins.estimators.build import build_dataset
    from vr_plugins.estimators.options import BuildOptions

    opts = BuildOptions(max_think_tokens=max_think_tokens, fallback_families=parse_list(fallback_families),
                        seed=seed, resample=resample, log_weight=log_weight, extra=_parse_extra(options))
    start = time.perf_counter()
    result = build_dataset(run_dir, estimator, opts, mix=mix, out=out, force=force)
    click.echo(f"wrote {result.path} ({result.rows} rows) in {time.perf_counter() - start:.1f}s; "
               f"dataset_info.json entry {result.name!r}")
    width = max(len(k) for k in result.summary)
    for key, value in result.summary.items():
        click.echo(f"  {key:<{width}}  {value}")
    click.echo(f"train with: dataset_dir: {result.path.parent}  dataset: {result.name}")
