"""``vr-tools prepare``: thin shell over :func:`vr_plugins.data.prepare.prepare`."""

import click

from vr_tools._data_cli import fail_on_input_errors


@click.command(name="prepare")
@click.option("--dataset", required=True, help="Local .json/.jsonl/.parquet file (Bespoke-Stratos layout or generic "
              "question/think/solution/source columns), or a hub dataset id where the machine has hub access.")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False), help="Run directory; writes RUN/questions.parquet.")
@click.option("--format", "fmt", type=click.Choice(["auto", "bespoke", "generic"]), default="auto", show_default=True,
              help="Input layout; auto picks bespoke when a 'conversations' column exists, generic when 'question' does.")
@click.option("--source-family", default="auto", show_default=True,
              help="Family written into 'source' for rows that carry none (Bespoke rows; generic rows without a source "
              "value). 'auto' guesses per Bespoke row: code questions -> apps, everything else -> numina.")
@click.option("--split", default="train", show_default=True, help="Split to load when --dataset is a hub id.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N input rows (quick subsets).")
@click.option("--strict", is_flag=True, help="Fail (writing nothing) if any row cannot be parsed, instead of skipping it.")
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

    with fail_on_input_errors():
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
