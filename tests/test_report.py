"""``vr-tools report`` on full, partial and broken run directories: numbers, plots, printed table."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from est_rundir import RunBuilder
from vr_plugins.estimators.build import build_dataset
from vr_plugins.report import write_report
from vr_plugins.rundir import columns as C
from vr_tools.cli import cli

PNG = b"\x89PNG\r\n\x1a\n"


def full_run(root):
    b = RunBuilder(root)
    for i, fam in enumerate(["numina", "numina", "ruc", "apps"]):
        b.question(i, fam)
    b.trace(0, 0, answer=-1).trace(0, 1, answer=-2).rollouts_for(0, 0, [True, False]).rollouts_for(0, 1, [True, True])
    b.trace(1, 0, think_tokens=30000).rollouts_for(1, 0, [True, True])  # over the cap -> original
    b.trace(2, 0).trace(2, 1).rollouts_for(2, 0, [False, False]).rollouts_for(2, 1, [False, False])  # ruc fallback
    b.trace(3, 1, prior=-20).rollouts_for(3, 1, [False, True])
    return b.write()


def headline(data):
    return dict(data.headline)


def test_full_run_report(tmp_path):
    run_dir = full_run(tmp_path / "run")
    build_dataset(run_dir, "snis")
    result = CliRunner().invoke(cli, ["report", "--run-dir", str(run_dir), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "rep" / "report.md").read_text()
    for name in ("family_rates", "delta", "scores", "lengths", "selected_seed", "ess", "verification"):
        png = tmp_path / "rep" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG and f"({name}.png)" in md
    _, data = write_report(run_dir, tmp_path / "rep2")
    h = headline(data)
    assert h["questions"] == 4 and h["traces scored"] == 6 and h["traces with think_tokens >= 28000"] == 1
    assert h["gml: questions with a candidate"] == "3 (0.75)"
    assert h["acc: questions with a candidate"] == "2 (0.5)"  # q0 and q3; q2 is ruc with acc 0, q1 over cap
    assert h["acc: fallback to GML (ruc)"] == 1 and h["acc: original kept (source -1)"] == 1
    assert h["rollouts correct"] == "6 (0.5)"
    # ESS = 1/sum w^2: q0 weights softmax(-0.2, -0.4); q2 two equal scores -> 2; q3 one trace -> 1
    w = [1 / (1 + math.exp(-0.2)), 1 / (1 + math.exp(0.2))]
    ess = sorted(data.series["ess"].tolist())
    assert ess[0] == 1.0 and abs(ess[1] - 1 / (w[0] ** 2 + w[1] ** 2)) < 1e-12 and abs(ess[2] - 2.0) < 1e-12
    fam = {f["family"]: f for f in data.families}
    assert fam["ruc"]["acc GML-fallback rate"] == 1.0 and fam["numina"]["acc original rate"] == 0.5
    assert fam["apps"]["rollouts correct rate"] == 0.5
    # snis-mix: 4 originals, q0 2 rows, q1 original (-1), q2 2 rows, q3 1 row; each question sums to 1
    assert data.datasets == [{"dataset": "snis-mix", "rows": 10, "original (-2)": 4, "fallback (-1)": 1,
                              "traces (k>=0)": 5, "weight sum": 8.0}]
    # the printed table carries the same headline numbers
    for key, value in data.headline:
        assert f"{key}" in result.output and str(value) in result.output


def _eval_result(folder, model, task, correct_per_problem):
    """A SkyThought result folder (summary.json + results.json) as the evaluate stage writes it."""
    import json

    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({"configuration": {"task": {"name": task}, "model": {"name": model}}}))
    results = {str(i): {"responses": [{"correctness": c} for c in cs]} for i, cs in enumerate(correct_per_problem)}
    (folder / "results.json").write_text(json.dumps(results))


def _trainer_state(model_dir, losses):
    import json

    model_dir.mkdir(parents=True)
    history = [{"epoch": 0.1 * i, "loss": loss, "learning_rate": 1e-5, "step": i + 1} for i, loss in enumerate(losses)]
    history.append({"epoch": 1.0, "step": len(losses), "train_loss": sum(losses) / len(losses), "train_runtime": 3.5})
    (model_dir / "trainer_state.json").write_text(json.dumps({"log_history": history, "global_step": len(losses)}))


def test_report_has_evaluation_table_loss_curves_and_defines_every_column(tmp_path):
    from vr_plugins.report.columns import define, table_headers

    run_dir = full_run(tmp_path / "run")
    build_dataset(run_dir, "acc")
    _eval_result(run_dir / "eval" / "final-acc" / "vr_math500", "final-acc", "vr_math500", [[True, False], [True, True]])
    _eval_result(run_dir / "eval" / "initial" / "vr_math500", "initial", "vr_math500", [[False, False], [True, False]])
    _trainer_state(run_dir / "models" / "final-acc", [2.0, 1.5, 1.25])
    _trainer_state(run_dir / "models" / "initial", [3.0, 2.5])
    (run_dir / "models" / "base").mkdir()  # no trainer state: not a training, skipped
    result = CliRunner().invoke(cli, ["report", "--run-dir", str(run_dir), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| final-acc | 75.00 | 75.00 |" in md and "| initial | 25.00 | 25.00 |" in md  # avg@2 in percent
    assert "| vr_math500 (avg@2) | mean |" in md and "| final-acc | 75.00 | 75.00 |" in result.output
    assert "| final-acc | 3 | 3 | 2.0 | 1.25 | 1.5833 | 3.5 |" in md and "| initial | 2 | 2 | 3.0 | 2.5 | 2.75 | 3.5 |" in md
    assert (tmp_path / "rep" / "training_loss.png").read_bytes()[:8] == PNG and "(training_loss.png)" in md
    _, data = write_report(run_dir, tmp_path / "rep2")
    assert [(c.model, c.steps, c.losses) for c in data.loss_curves] == [("final-acc", [1, 2, 3], [2.0, 1.5, 1.25]),
                                                                        ("initial", [1, 2], [3.0, 2.5])]
    # every printed column has a definition line, and an undefined column is an error
    columns = md.split("## Columns", 1)[1]
    headers = table_headers(md.split("## Columns", 1)[0])
    assert {"family", "acc GML-fallback rate", "vr_math500 (avg@2)", "mean", "last loss", "weight sum"} <= set(headers)
    for header in headers:
        assert f"- **{header}**: " in columns, header
    with pytest.raises(KeyError, match="no definition"):
        define("brand new column")


def test_report_lists_a_broken_eval_folder_instead_of_failing(tmp_path):
    run_dir = full_run(tmp_path / "run")
    _eval_result(run_dir / "eval" / "m" / "t", "m", "t", [[True]])
    (run_dir / "eval" / "m" / "t" / "results.json").write_text("{not json")
    path, data = write_report(run_dir, tmp_path / "rep")
    assert not data.eval_results and any("results.json: not valid JSON" in e for e in data.errors)
    assert "results.json: not valid JSON" in path.read_text()


def test_partial_runs(tmp_path):
    b = RunBuilder(tmp_path / "q")
    b.question(0).question(1, "ruc")
    b.write()
    path, data = write_report(tmp_path / "q", tmp_path / "rq")
    assert headline(data) == {"questions": 2, "traces scored": 0}
    assert "No scores yet" in path.read_text() and not list((tmp_path / "rq").glob("*.png"))

    b.trace(0, 0).trace(1, 0)
    b.rollouts.clear(), b.verified.clear()
    b.write()
    path, data = write_report(tmp_path / "q", tmp_path / "rs")
    assert headline(data)["gml: questions with a candidate"] == "2 (1.0)" and not data.has_verification
    assert "No verified rollouts" in path.read_text()
    assert (tmp_path / "rs" / "delta.png").exists() and not (tmp_path / "rs" / "verification.png").exists()


def test_broken_run_is_counted_not_fatal(tmp_path):
    run_dir = full_run(tmp_path / "run")
    p = run_dir / C.SCORES_DIR / "seed-0.parquet"
    rows = pq.read_table(p).to_pylist()
    rows.append(dict(rows[0]))  # duplicate (prompt_idx, seed)
    rows.append({**rows[0], C.PROMPT_IDX: 77})  # unknown question
    rows.append({**rows[0], C.PROMPT_IDX: 3, C.THINK_LOGP_PRIOR: float("nan")})  # NaN log-prob
    pq.write_table(pa.Table.from_pylist(rows, schema=C.SCORES_SCHEMA), p)
    v = run_dir / C.VERIFIED_DIR / "seed-1.parquet"
    extra = pa.Table.from_pylist([{C.PROMPT_IDX: 0, C.SEED: 1, C.ROLLOUT_IDX: 9, C.CORRECT: True, C.REASON: ""}],
                                 schema=C.VERIFIED_SCHEMA)
    pq.write_table(pa.concat_tables([pq.read_table(v), extra]), v)
    path, data = write_report(run_dir, tmp_path / "rep")
    assert data.problems["duplicate_scores"] == 1 and data.problems["scores_unknown_prompt_idx"] == 1
    assert data.problems["nonfinite_think_logp"] == 1 and data.problems["verified_without_rollout"] == 1
    assert "duplicate_scores" in path.read_text()
