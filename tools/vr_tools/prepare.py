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
def command(dataset, run_dir, fmt, source_family, split, limit, strict, force):
    """Write RUN/questions.parquet from a Bespoke-Stratos-style or generic dataset.

    Rows that cannot be parsed (missing markers, empty think or solution, duplicate prompt_idx, ...) are
    reported with their row index and reason and skipped; --strict makes them fatal.
    """
    from vr_plugins.data.prepare import format_bad_rows, prepare

    with fail_on_input_errors():
        report = prepare(dataset, run_dir, fmt=fmt, source_family=source_family, strict=strict, split=split,
                         limit=limit, force=force)
    if report.bad:
        click.echo(format_bad_rows(dataset, report.bad) + "\n(skipped; use --strict to make them fatal)", err=True)
    families = ", ".join(f"{k} {v}" for k, v in sorted(report.families.items()))
    click.echo(f"wrote {report.path}: {report.rows} questions ({families}); {len(report.bad)} bad row(s) skipped")
