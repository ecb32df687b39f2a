"""The numbers of a run report, computed with the same loaders and rules as ``vr-tools build``.

Works on a partial run: every section is computed from what exists (questions only; + scores;
+ rollouts/verified; + built datasets). Bad input is loaded leniently (``strict=False``): it is
counted under "problems" instead of stopping the report, so the report is where a broken run shows up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from vr_plugins.estimators.candidates import (BuildOptions, EstimatorInputs, delta, fallback_family_mask,
                                              gml_score, log_acc_score, questions_without_tests, within_cap)
from vr_plugins.estimators.inputs import Problems, Traces, attach_verification, load_questions, load_traces
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.io import RunDirError


@dataclass
class ReportData:
    run_dir: Path
    options: BuildOptions
    headline: list[tuple[str, object]] = field(default_factory=list)
    families: list[dict] = field(default_factory=list)
    problems: dict[str, int] = field(default_factory=dict)
    problem_examples: dict[str, list] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    datasets: list[dict] = field(default_factory=list)
    #: arrays for the plots (name -> numpy array or dict of arrays)
    series: dict[str, object] = field(default_factory=dict)
    has_scores: bool = False
    has_verification: bool = False
    #: evaluation results under RUN/eval (vr_plugins.eval.summary.TaskResult)
    eval_results: list = field(default_factory=list)
    #: training-loss histories of RUN/models/* (vr_plugins.report.results.LossCurve)
    loss_curves: list = field(default_factory=list)


def _rate(num: int, den: int) -> float | None:
    return None if den == 0 else round(num / den, 4)


def _stats(x: np.ndarray) -> str:
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return "-"
    return f"mean {x.mean():.4g}, median {np.median(x):.4g}, min {x.min():.4g}, max {x.max():.4g}"


def collect(run_dir: str | Path, options: BuildOptions = BuildOptions()) -> ReportData:
    from vr_plugins.estimators.acc import acc_best
    from vr_plugins.estimators.gml import gml_best
    from vr_plugins.estimators.snis import effective_sample_size

    run_dir = Path(run_dir)
    data = ReportData(run_dir, options)
    problems = Problems(strict=False)
    questions = load_questions(run_dir, problems)  # a report needs the questions; errors propagate
    h = data.headline
    h.append(("questions", len(questions)))
    fams = sorted(set(questions.family.tolist()))
    per_family = {f: {"family": f, "questions": int(np.sum(questions.family == f))} for f in fams}
    no_tests = questions_without_tests(questions)
    if no_tests.any():
        h.append(("code questions without tests (no_tests)", int(no_tests.sum())))
        for f, row in per_family.items():
            row["no tests"] = int(np.sum(no_tests & (questions.family == f)))

    try:
        traces = load_traces(run_dir, questions, problems)
    except RunDirError as exc:
        data.errors.append(f"scores: {exc}")
        traces = None
    if traces is not None and len(traces):
        data.has_scores = True
        try:
            attach_verification(run_dir, traces, problems, required=False)
        except RunDirError as exc:
            data.errors.append(f"rollouts/verified: {exc}")
            traces.has_verification = False
        data.has_verification = traces.has_verification
        inputs = EstimatorInputs(questions, traces, problems)
        _scores_section(data, inputs, per_family, gml_best, acc_best, effective_sample_size)
    else:
        h.append(("traces scored", 0))
    data.families = list(per_family.values())
    data.problems = dict(sorted(problems.counts.items()))
    data.problem_examples = problems.examples
    data.datasets = _datasets(run_dir)
    from vr_plugins.report.results import eval_results, loss_curves

    data.eval_results = eval_results(run_dir, data.errors)
    data.loss_curves = loss_curves(run_dir, data.errors)
    return data


def _scores_section(data: ReportData, inputs: EstimatorInputs, per_family, gml_best, acc_best, ess_fn) -> None:
    h, options = data.headline, data.options
    questions, traces = inputs.questions, inputs.traces
    nq = len(questions)
    seeds = np.unique(traces.seed)
    per_q = np.bincount(traces.q, minlength=nq)
    h += [("score seed files", len(traces.files)), ("seeds", ", ".join(map(str, seeds.tolist()))),
          ("traces scored", len(traces)), ("questions without any trace", int(np.sum(per_q == 0))),
          (f"traces with think_tokens >= {options.max_think_tokens}", int(np.sum(~within_cap(traces, options)))),
          ("delta_k", _stats(delta(traces))), ("think tokens", _stats(traces.think_tokens.astype(float))),
          ("answer tokens", _stats(traces.answer_tokens.astype(float)))]
    d, g = delta(traces), gml_score(traces)
    data.series.update(delta=d[np.isfinite(d)], gml_score=g[np.isfinite(g)],
                       think_tokens=traces.think_tokens, answer_tokens=traces.answer_tokens)

    best_gml = gml_best(inputs, options)
    h.append(("gml: questions with a candidate", f"{int(np.sum(best_gml >= 0))} ({_rate(int(np.sum(best_gml >= 0)), nq)})"))
    data.series["selected_seed_gml"] = traces.seed[best_gml[best_gml >= 0]]
    ess = ess_fn(inputs, options)
    data.series["ess"] = ess
    h.append(("snis (gml log weight): effective sample size", _stats(ess)))

    best_acc = fb = None
    if traces.has_verification:
        acc = traces.acc
        best_acc = acc_best(inputs, options)
        fb = np.where((best_acc < 0) & fallback_family_mask(questions, options), best_gml, -1)
        verified = traces.n_rollouts.sum()
        h += [("rollouts verified", int(verified)),
              ("rollouts correct", f"{int(traces.n_correct.sum())} ({_rate(int(traces.n_correct.sum()), int(verified))})"),
              ("traces with acc_k > 0", f"{int(np.sum(acc > 0))} ({_rate(int(np.sum(acc > 0)), len(traces))})"),
              ("acc: questions with a candidate", f"{int(np.sum(best_acc >= 0))} ({_rate(int(np.sum(best_acc >= 0)), nq)})"),
              (f"acc: fallback to GML ({','.join(options.fallback_families) or 'none'})", int(np.sum(fb >= 0))),
              ("acc: original kept (source -1)", int(np.sum((best_acc < 0) & (fb < 0))))]
        no_tests = questions_without_tests(questions)
        if no_tests.any():
            h.append(("acc: fell back because the question has no tests", int(np.sum(no_tests & (best_acc < 0)))))
        lr = log_acc_score(traces)
        data.series.update(acc=acc[np.isfinite(acc)], log_rho=lr[np.isfinite(lr)],
                           selected_seed_acc=traces.seed[best_acc[best_acc >= 0]])

    for f, row in per_family.items():
        in_f = questions.family == f
        tr_f = in_f[traces.q]
        n = int(in_f.sum())
        row["traces"] = int(tr_f.sum())
        row["gml candidate rate"] = _rate(int(np.sum(best_gml[in_f] >= 0)), n)
        row["gml original rate"] = _rate(int(np.sum(best_gml[in_f] < 0)), n)
        if best_acc is not None:
            row["acc candidate rate"] = _rate(int(np.sum(best_acc[in_f] >= 0)), n)
            row["acc GML-fallback rate"] = _rate(int(np.sum(fb[in_f] >= 0)), n)
            row["acc original rate"] = _rate(int(np.sum((best_acc[in_f] < 0) & (fb[in_f] < 0))), n)
            row["rollouts correct rate"] = _rate(int(traces.n_correct[tr_f].sum()), int(traces.n_rollouts[tr_f].sum()))


def _datasets(run_dir: Path) -> list[dict]:
    out = []
    folder = run_dir / C.DATASETS_DIR
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.parquet")):
        if path.name.startswith("."):
            continue
        try:
            t = pq.read_table(path, columns=[C.SOURCE, C.WEIGHT])
        except Exception as exc:  # noqa: BLE001 - a report lists unreadable files instead of stopping
            out.append({"dataset": path.stem, "rows": f"unreadable: {exc}"})
            continue
        src = t[C.SOURCE].to_numpy()
        out.append({"dataset": path.stem, "rows": t.num_rows, "original (-2)": int(np.sum(src == C.SOURCE_ORIGINAL)),
                    "fallback (-1)": int(np.sum(src == C.SOURCE_FALLBACK)), "traces (k>=0)": int(np.sum(src >= 0)),
                    "weight sum": round(float(np.sum(t[C.WEIGHT].to_numpy())), 4)})
    return out


__all__ = ["ReportData", "collect", "Traces"]
