"""``vr-tools eval-summary``: thin shell over :mod:`vr_plugins.eval.summary`."""

import click


@click.command(name="eval-summary")
@click.argument("result_dirs", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Also write the table here (.json writes the machine-readable form, anything else Markdown).")
def command(result_dirs, out):
    """Collect SkyThought result folders into one table: avg@n per task and the mean.

    RESULT_DIRS are result folders (summary.json + results.json, as written by `skythought evaluate` or
    vr_plugins.eval.local.evaluate_local) or folders containing them, searched recursively.
    """
    from pathlib import Path

    from vr_plugins.eval.summary import collect, format_markdown, to_json

    results = collect(result_dirs)
    table = format_markdown(results)
    click.echo(table, nl=False)
    if out:
        path = Path(out)
        text = to_json(results) if path.suffix == ".json" else table
        tmp = path.with_name(f".{path.name}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        click.echo(f"wrote {path}", err=True)
