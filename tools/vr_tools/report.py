"""``vr-tools report``: report.md + PNG plots of a run directory, and the headline numbers as a table."""

from __future__ import annotations

import click

from vr_plugins.estimators.options import AccOptions, CandidateOptions
from vr_tools._options import from_field, parse_list


@click.command(name="report")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False, exists=True), help="Run directory.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder (default RUN/report).")
@from_field(CandidateOptions, "max_think_tokens", help="Length cap used for the candidate rates (as in build).")
@from_field(AccOptions, "fallback_families", help="Acc fallback families (as in build).")
def command(run_dir, out, max_think_tokens, fallback_families):
    """Summarise what exists in a run (works on partial runs): candidate/fallback rates, score
    distributions, acc_k, selected seeds, ESS of the importance weights, lengths, verification, bad input."""
    from vr_plugins.estimators.options import BuildOptions
    from vr_plugins.report import write_report

    options = BuildOptions(max_think_tokens=max_think_tokens, fallback_families=parse_list(fallback_families))
    path, data = write_report(run_dir, out, options)
    width = max(len(k) for k, _ in data.headline)
    for key, value in data.headline:
        click.echo(f"{key:<{width}}  {value}")
    for key, value in data.problems.items():
        click.echo(f"{'problem: ' + key:<{width}}  {value}")
    if data.eval_results:
        from vr_plugins.eval.summary import format_markdown

        click.echo("evaluation (avg@n in percent; columns defined in report.md):")
        click.echo(format_markdown(data.eval_results).rstrip())
    click.echo(f"wrote {path}")
