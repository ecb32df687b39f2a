"""``vr-tools report``: a folder with report.md and PNG plots of a (possibly partial) run directory.

:func:`write_report` is the entry point; :mod:`.data` computes the numbers (with the build's own
loaders and estimator rules), :mod:`.plots` draws them, :func:`render_markdown` writes them out.
"""

from __future__ import annotations

from pathlib import Path

from vr_plugins.estimators.candidates import BuildOptions
from vr_plugins.report.data import ReportData, collect
from vr_plugins.rundir.io import write_text_atomic

REPORT_FILE = "report.md"


def _table(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(none)"]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join("-" if r.get(k) is None else str(r.get(k)) for k in keys) + " |")
    return out


def _columns_section(markdown: str, data: ReportData) -> list[str]:
    """A definition line for every column the tables above print."""
    from vr_plugins.report.columns import define, table_headers

    tasks = {r.task for r in data.eval_results}
    return ["## Columns", ""] + [f"- **{c}**: {define(c, tasks)}" for c in table_headers(markdown)]


def render_markdown(data: ReportData, plots: list[tuple[str, str]]) -> str:
    lines = [f"# Run report: {data.run_dir}", "",
             f"Rules: candidate if think_tokens < {data.options.max_think_tokens}; acc fallback families: "
             f"{', '.join(data.options.fallback_families) or 'none'}.", "", "## Headline", ""]
    lines += _table([{"metric": k, "value": v} for k, v in data.headline])
    lines += ["", "## Per family", ""] + _table(data.families)
    lines += ["", "## Bad input (counted; see docs/estimators.md for the per-row rules)", ""]
    lines += _table([{"problem": k, "rows": v, "examples": data.problem_examples.get(k, [])[:3]}
                     for k, v in data.problems.items()])
    for err in data.errors:
        lines.append(f"- unreadable: {err}")
    lines += ["", "## Built datasets", ""] + _table(data.datasets)
    lines += ["", "## Evaluation (RUN/eval; avg@n in percent)", ""]
    if data.eval_results:
        from vr_plugins.eval.summary import format_markdown

        lines += format_markdown(data.eval_results).rstrip("\n").splitlines()
    else:
        lines.append("_No evaluation results yet: they appear after the pipeline's evaluate stage._")
    from vr_plugins.report.results import training_rows

    lines += ["", "## Trainings (RUN/models/*/trainer_state.json)", ""]
    lines += _table(training_rows(data.loss_curves)) if data.loss_curves else ["_No training logs yet._"]
    if not data.has_scores:
        lines += ["", "_No scores yet: the estimator sections appear after `vr-tools score`._"]
    elif not data.has_verification:
        lines += ["", "_No verified rollouts: acc sections appear after `vr-tools rollout` and `vr-tools verify`._"]
    lines += ["", "## Plots", ""]
    for name, caption in plots:
        lines += [f"### {caption}", "", f"![{caption}]({name})", ""]
    lines += [""] + _columns_section("\n".join(lines), data)
    return "\n".join(lines) + "\n"


def write_report(run_dir: str | Path, out_dir: str | Path | None = None,
                 options: BuildOptions = BuildOptions()) -> tuple[Path, ReportData]:
    from vr_plugins.report.plots import write_plots

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    data = collect(run_dir, options)
    plots = write_plots(data, out_dir)
    path = write_text_atomic(render_markdown(data, plots), out_dir / REPORT_FILE)
    return path, data


__all__ = ["write_report", "collect", "render_markdown", "ReportData", "REPORT_FILE"]
