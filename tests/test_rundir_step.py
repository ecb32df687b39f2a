"""The step scaffold (vr_plugins/rundir/step.py): resume rule, shard merge + completion mark, manifest begin."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vr_plugins.errors import UserError
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.manifest import ManifestMismatch, read_manifest
from vr_plugins.rundir.shards import Shard
from vr_plugins.rundir.step import SeedOutputs, StepOptionError, StepReport, owned_rows

SCHEMA = pa.schema([(C.PROMPT_IDX, pa.int64()), (C.SEED, pa.int64()), ("value", pa.string())])
KEYS = [C.PROMPT_IDX, C.SEED]


def outputs(run, shard=Shard(), seeds=(0, 1)) -> SeedOutputs:
    return SeedOutputs(run, "toy", "toy", seeds, SCHEMA, KEYS, shard)


def rows(seed, pidx):
    return [{C.PROMPT_IDX: p, C.SEED: seed, "value": f"{seed}-{p}"} for p in pidx]


def owned_keys(pidx):
    return lambda seed: [(p, seed) for p in pidx]


def test_resume_skips_the_keys_in_parts_then_everything_once_the_file_is_complete(tmp_path):
    out = outputs(tmp_path)
    out.begin({"a": 1}, force=False)
    out.writers[0].write_rows(rows(0, [0, 1]))
    out.writers[0].write_rows(rows(0, [7]))  # a key this shard does not own: not counted as skipped

    again, report = outputs(tmp_path), StepReport()
    again.begin({"a": 1}, force=False)
    done = again.resume(owned_keys([0, 1, 2]), report)
    assert done == {0: {(0, 0), (1, 0)}, 1: set()} and report.skipped == 2
    assert again.done(0) == {(0, 0), (1, 0), (7, 0)}  # without owned keys: everything written so far

    again.writers[0].write_rows(rows(0, [2]))
    again.close(report, start=0.0)
    assert report.outputs == [tmp_path / "toy" / "seed-0.parquet", tmp_path / "toy" / "seed-1.parquet"]
    assert pq.read_table(report.outputs[0])[C.PROMPT_IDX].to_pylist() == [0, 1, 2, 7]  # sorted by key
    assert report.seconds > 0

    final = outputs(tmp_path)
    assert final.complete(0) and final.complete(1)
    assert final.resume(owned_keys([0, 1, 2]), StepReport()) == {s: {(p, s) for p in (0, 1, 2)} for s in (0, 1)}


def test_the_last_shard_merges_and_only_merged_files_are_marked_complete(tmp_path):
    reports = []
    for i in (0, 1):
        out, report = outputs(tmp_path, Shard(i, 2), seeds=(3,)), StepReport()
        out.begin({"a": 1}, force=False)
        owned = [p for p in range(4) if Shard(i, 2).owns(p)]
        out.writers[3].write_rows(rows(3, owned))
        out.close(report, start=0.0)
        reports.append(report)
        if i == 0:  # the other shard is missing: its own file, nothing marked
            assert report.outputs == [tmp_path / "toy" / "seed-3.shard-00000-of-00002.parquet"]
            assert "outputs" not in read_manifest(tmp_path)["steps"]["toy"]
    assert reports[1].outputs == [tmp_path / "toy" / "seed-3.parquet"]
    assert read_manifest(tmp_path)["steps"]["toy"]["outputs"] == ["toy/seed-3.parquet"]
    assert pq.read_table(tmp_path / "toy" / "seed-3.parquet")[C.PROMPT_IDX].to_pylist() == [0, 1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "toy").iterdir() if not p.name.startswith(".")) == ["seed-3.parquet"]


def test_a_seed_finished_early_is_finished_and_reported_once(tmp_path):
    out, report, calls = outputs(tmp_path), StepReport(), []
    out.begin({}, force=False)
    out.writers[1].write_rows(rows(1, [0]))
    real = out.writers[1].finish
    out.writers[1].finish = lambda: calls.append(1) or real()
    first = out.finish(1)
    out.close(report, start=0.0)
    assert report.outputs == [tmp_path / "toy" / "seed-0.parquet", first] and len(calls) == 1


def test_begin_refuses_other_parameters_and_force_discards_the_old_outputs(tmp_path):
    out = outputs(tmp_path)
    out.begin({"a": 1}, force=False)
    out.writers[0].write_rows(rows(0, [0]))
    with pytest.raises(ManifestMismatch, match="a: recorded 1, now 2"):
        outputs(tmp_path).begin({"a": 2}, force=False)
    start = outputs(tmp_path).begin({"a": 2}, force=True)
    assert start.discarded_old_outputs and not (tmp_path / "toy").exists()
    assert read_manifest(tmp_path)["steps"]["toy"]["params"] == {"a": 2}


def test_owned_rows_keeps_the_shards_questions_in_table_order():
    table = pa.table({C.PROMPT_IDX: [5, 2, 4, 1], C.QUESTION: ["e", "b", "d", "a"]})
    assert list(owned_rows(table, Shard(0, 2))) == [2, 4]
    assert owned_rows(table, Shard(1, 2))[5][C.QUESTION] == "e"


def test_step_options_are_user_errors(tmp_path):
    from vr_plugins.data.common import parse_seeds
    from vr_plugins.data.rollout import rollout
    from vr_plugins.verify.step import verify

    for call in (lambda: rollout(tmp_path, "org/model", n=0), lambda: verify(tmp_path, timeout_s=0),
                 lambda: parse_seeds("3-1")):
        with pytest.raises(StepOptionError) as info:
            call()
        assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)
    assert not any(tmp_path.iterdir())  # refused before anything was written
