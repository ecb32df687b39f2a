"""``vr-tools prepare``: thin shell over :func:`vr_plugins.data.prepare.prepare`."""

import click

from vr_plugins.options import PrepareOptions
from vr_tools._options import from_field


@click.command(name="prepare")
@click.option("--dataset", required=True, help="Local .json/.jsonl/.parquet file (Bespoke-Stratos layout or generic "
              "question/think/solution/source columns), or a hub dataset id where the machine has hub access.")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False), help="Run directory; writes RUN/questions.parquet.")
@from_field(PrepareOptions, "format", "--format", "fmt")
@from_field(PrepareOptions, "source_family")
@from_field(PrepareOptions, "split")
@from_field(PrepareOptions, "limit")
@from_field(PrepareOptions, "strict")
@click.option("--force", is_flag=True, help="Overwrite questions.parquet even if the manifest recorded other parameters.")
@click.option("--tests-from", "tests_from", multiple=True, metavar="SRC",
              help="APPS/TACO dataset (hub id codeparrot/apps or BAAI/TACO, or a local .jsonl/.json/.parquet with "
              "'question' and 'input_output') whose tests are attached to code questions without any, matched by "
              "normalised problem text. Repeatable: the first source that matches wins.")
def command(dataset, run_dir, fmt, source_family, split, limit, strict, force, tests_from):
    """Write RUN/questions.parquet from a Bespoke-Stratos-style or generic dataset.

    Rows that cannot be parsed (missing markers, empty think or solution, duplicate prompt_idx, ...) are
    reported with their row index and reason and skipped; --strict makes them fatal.
    """
    from vr_plugins.data.prepare import format_bad_rows, prepare
    from vr_plugins.rundir import columns as C

    report = prepare(dataset, run_dir, fmt=fmt, source_family=source_family, strict=strict, split=split,
                     limit=limit, force=force, tests_from=tests_from)
    if report.bad:
        click.echo(format_bad_rows(dataset, report.bad) + "\n(skipped; use --strict to make them fatal)", err=True)
    families = ", ".join(f"{k} {v}" for k, v in sorted(report.families.items()))
    if report.tests is not None:
        t = report.tests
        by_source = ", ".join(f"{name} {n}" for name, n in t.per_source.items())
        click.echo(f"tests attached: {t.matched} code question(s) matched ({by_source}), {t.unmatched} unmatched, "
                   f"{t.ambiguous} ambiguous (same text, different tests: left without tests)")
    if report.no_tests:
        click.echo(f"warning: {report.no_tests} code question(s) have no tests (column {C.NO_TESTS}); verify grades "
                   f"their rollouts 'invalid tests' and Acc falls back on them. Attach tests with --tests-from "
                   f"codeparrot/apps --tests-from BAAI/TACO (or local files).", err=True)
    click.echo(f"wrote {report.path}: {report.rows} questions ({families}); {len(report.bad)} bad row(s) skipped")
