"""Movable run directories: the manifest stores run-relative paths, a copied or moved run dir dry-runs as
done and ``build`` accepts it, and a failed step records nothing (its parameters never block the fix)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from click.testing import CliRunner

from conftest import run
from est_rundir import RunBuilder
from vr_plugins.demo import DEMO_CONFIG
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.manifest import record_step, step_params
from vr_tools.cli import cli


def small_run(root: Path) -> Path:
    b = RunBuilder(root)
    for i in range(3):
        b.question(i)
        for s in range(2):
            b.trace(i, s, prior=-10.0 - s)
            b.rollouts_for(i, s, [True, s == 0])
    return b.write()


def build(*args):
    result = CliRunner().invoke(cli, ["build", *map(str, args)])
    return result.exit_code, result.output


def test_manifest_stores_inside_paths_relative_and_outside_paths_as_given(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    outside = str(tmp_path / "elsewhere" / "model")
    record_step(run_dir, "sample", {"model": str(run_dir / "models" / "base"), "prior": outside, "hub": "org/name"})
    entry = json.loads((run_dir / C.MANIFEST_FILE).read_text())["steps"]["sample"]
    assert entry["params"] == {"model": "models/base", "prior": outside, "hub": "org/name"}
    assert entry["relative"] == ["model"]
    moved = tmp_path / "moved"
    shutil.move(run_dir, moved)
    assert step_params(moved, "sample")["model"] == str(moved.resolve() / "models" / "base")  # resolved on read
    # the same step re-run on the moved dir with its own (new absolute) path is a resume, not a mismatch
    assert record_step(moved, "sample", {"model": str(moved / "models" / "base"), "prior": outside, "hub": "org/name"})


def test_copied_and_moved_run_dir_is_accepted_by_build(tmp_path):
    original = small_run(tmp_path / "a")
    assert build("--run-dir", original, "--estimator", "acc")[0] == 0
    first = pq.read_table(original / C.DATASETS_DIR / "acc-mix.parquet")
    copy = tmp_path / "b"
    shutil.copytree(original, copy)
    shutil.rmtree(original)  # nothing may still point at the old location
    code, out = build("--run-dir", copy, "--estimator", "acc")
    assert code == 0, out
    assert pq.read_table(copy / C.DATASETS_DIR / "acc-mix.parquet").equals(first)
    # the manifest still guards the copy: other parameters are refused
    code, out = build("--run-dir", copy, "--estimator", "acc", "--max-think-tokens", "5")
    assert code != 0 and "different parameters" in out
    moved = tmp_path / "c"
    shutil.move(copy, moved)
    assert build("--run-dir", moved, "--estimator", "acc")[0] == 0


def test_failed_build_records_nothing_and_the_corrected_build_runs(tmp_path):
    root = small_run(tmp_path)
    scores = root / C.SCORES_DIR / "seed-0.parquet"
    good = pq.read_table(scores)
    pq.write_table(good.drop_columns([C.THINK_TEXT]), scores)
    code, out = build("--run-dir", root, "--estimator", "gml", "--no-mix")
    assert code != 0 and f"{scores}: missing column(s) ['think_text']" in out, out
    assert "build/" not in (root / C.MANIFEST_FILE).read_text() if (root / C.MANIFEST_FILE).exists() else True
    pq.write_table(good, scores)  # fixed input, and other parameters than the failed run's
    code, out = build("--run-dir", root, "--estimator", "gml", "--no-mix", "--max-think-tokens", "100")
    assert code == 0, out
    assert step_params(root, "build/gml")["max_think_tokens"] == 100


def _demo_config(tmp_path: Path, base_model: Path) -> Path:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["dataset"]["path"] = str(DEMO_CONFIG.parent / "data" / "train.jsonl")
    data["eval"]["data_dir"] = str(DEMO_CONFIG.parent / "data" / "eval")
    data["base_model"] = str(base_model)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _statuses(config: Path, run_dir: Path) -> list[str]:
    proc = run(["vr-tools", "pipeline", "--config", str(config), "--run-dir", str(run_dir), "--dry-run"])
    return [line.split(":")[0] for line in proc.stdout.splitlines() if line.startswith("# stage")]


def test_copied_pipeline_run_dir_dry_runs_as_done(tmp_path, tiny_model_dir):
    """The real pipeline runs its first stage (prepare); the copy's dry run marks it done like the original's."""
    config = _demo_config(tmp_path, tiny_model_dir)
    original = tmp_path / "run"
    run(["vr-tools", "pipeline", "--config", str(config), "--run-dir", str(original), "--until", "prepare"])
    before = _statuses(config, original)
    assert before[0] == "# stage prepare [done]" and all("[todo]" in s for s in before[1:])
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    shutil.rmtree(original)
    assert _statuses(config, copy) == before
    # and the real prepare command on the copy is a resume (same parameters), not a mismatch
    proc = run(["vr-tools", "pipeline", "--config", str(config), "--run-dir", str(copy), "--until", "prepare"])
    assert "done already, skipped" in proc.stdout


def test_data_step_that_failed_before_writing_anything_does_not_block_the_corrected_run(tmp_path):
    from vr_plugins.data.common import begin_step
    from vr_plugins.rundir.manifest import ManifestMismatch, mark_complete

    out = tmp_path / C.POSTERIOR_DIR
    begin_step(tmp_path, "sample", {"model": "org/typo"}, [out], force=False)  # then failed: no output
    out.mkdir()  # an empty folder is still nothing
    assert not begin_step(tmp_path, "sample", {"model": "org/name"}, [out], force=False).resumed
    assert step_params(tmp_path, "sample") == {"model": "org/name"}
    (out / ".parts-seed-0").mkdir(parents=True)
    (out / ".parts-seed-0" / "part-0.parquet").write_bytes(b"x")  # parts of org/name: they guard the step
    try:
        begin_step(tmp_path, "sample", {"model": "org/other"}, [out], force=False)
        raise AssertionError("a mismatch with existing parts must be refused")
    except ManifestMismatch as exc:
        assert "org/name" in str(exc)
    (out / ".parts-seed-0" / "part-0.parquet").unlink()
    mark_complete(tmp_path, "sample", [])
    mark_complete(tmp_path, "sample", ["posterior/seed-0.parquet"])  # a completed step stays guarded
    try:
        begin_step(tmp_path, "sample", {"model": "org/other"}, [out], force=False)
        raise AssertionError("a completed step must be refused")
    except ManifestMismatch:
        pass
