"""``vr-tools verify`` over a run directory: contract output, summary table, resume, shards, bad input."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.io import RunDirError
from vr_plugins.rundir.parts import PartWriter
from vr_plugins.rundir.shards import Shard
from vr_plugins.verify.step import KEYS, verify

ADD = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
QUESTIONS = [
    {"prompt_idx": 0, "question": "1+1?", "reference_think": "", "reference_solution": r"so \boxed{2}",
     "source": "numina/0", "gold_answer": "2", "tests": None},
    {"prompt_idx": 1, "question": "add", "reference_think": "", "reference_solution": "", "source": "apps/0",
     "gold_answer": None, "tests": json.dumps({"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]})},
    {"prompt_idx": 2, "question": "?", "reference_think": "", "reference_solution": "no box",
     "source": "ruc/0", "gold_answer": None, "tests": None},  # nothing to compare with: an error row
    {"prompt_idx": 3, "question": "half", "reference_think": "", "reference_solution": r"\boxed{\frac{1}{2}}",
     "source": "numina/1", "gold_answer": None, "tests": None},  # reference solution answer only
    {"prompt_idx": 4, "question": "add", "reference_think": "", "reference_solution": "", "source": "taco/0",
     "gold_answer": None, "tests": "{broken json"},  # malformed tests: an error row
]
ROLLOUTS = {  # (prompt_idx, rollout_idx) -> (response, expected correct)
    (0, 0): (r"\boxed{2}", True), (0, 1): (r"\boxed{3}", False),
    (1, 0): (ADD, True), (1, 1): ("```python\nwhile True: pass\n```", False),
    (2, 0): (r"\boxed{1}", False),
    (3, 0): (r"\boxed{0.5}", True), (3, 1): ("The answer is 0.5", True),
    (4, 0): (ADD, False),
}


def make_run(path, questions=QUESTIONS, rollouts=ROLLOUTS, seeds=(0,)):
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(questions, schema=C.QUESTIONS_SCHEMA), path / C.QUESTIONS_FILE)
    for seed in seeds:
        rows = [{"prompt_idx": p, "seed": seed, "rollout_idx": j, "response": r} for (p, j), (r, _) in rollouts.items()]
        out = path / C.ROLLOUTS_DIR / C.seed_file_name(seed)
        out.parent.mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=C.ROLLOUTS_SCHEMA), out)
    return path


def read_verified(path, seed=0):
    t = pq.read_table(path / C.VERIFIED_DIR / C.seed_file_name(seed))
    assert t.schema.field(C.CORRECT).type == pa.bool_()
    return {(r["prompt_idx"], r["rollout_idx"]): r for r in t.to_pylist()}


def test_cli_grades_every_rollout_and_prints_the_summary(tmp_path):
    rd = make_run(tmp_path / "run", seeds=(0, 1))
    proc = run(["vr-tools", "verify", "--run-dir", str(rd), "--workers", "2", "--code-timeout", "1"])
    for seed in (0, 1):
        got = read_verified(rd, seed)
        assert set(got) == set(ROLLOUTS)
        for key, (_, expected) in ROLLOUTS.items():
            assert got[key]["correct"] is expected, (key, got[key]["reason"])
            assert got[key]["seed"] == seed and got[key]["reason"]
    got = read_verified(rd)
    assert got[(1, 1)]["reason"].startswith("timeout")
    assert got[(2, 0)]["reason"].startswith("no gold answer")
    assert got[(4, 0)]["reason"].startswith("invalid tests: malformed test JSON")
    lines = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line.split()}
    assert lines["apps"][1:] == ["4", "2", "0.500", "2", "0"]  # rows correct rate timeouts errors (2 seeds)
    assert lines["numina"][1:] == ["8", "6", "0.750", "0", "0"]
    assert lines["ruc"][1:] == ["2", "0", "0.000", "0", "2"]
    assert lines["taco"][1:] == ["2", "0", "0.000", "0", "2"]
    assert "timeouts: 2 rollout(s) graded incorrect, timeout" in proc.stdout  # never a silent negative
    assert "math grader: vr (exact numbers + Math-Verify" in proc.stdout  # which grader produced the numbers
    manifest = json.loads((rd / C.MANIFEST_FILE).read_text())
    assert manifest["steps"]["verify"]["outputs"] == ["verified/seed-0.parquet", "verified/seed-1.parquet"]
    # a rerun with the same parameters is a no-op; different ones are refused without --force
    again = run(["vr-tools", "verify", "--run-dir", str(rd), "--code-timeout", "1"])
    assert "checked 0 rollouts" in again.stdout
    refused = run(["vr-tools", "verify", "--run-dir", str(rd), "--code-timeout", "2"], check=False)
    assert refused.returncode != 0 and "different parameters" in refused.stderr


def test_resume_skips_finished_parts_and_shards_merge(tmp_path):
    rd = make_run(tmp_path / "run")
    # an interrupted run left one part with a (deliberately wrong) grade for (0, 0): it must be kept, not redone
    writer = PartWriter(rd / C.VERIFIED_DIR / C.seed_file_name(0), C.VERIFIED_SCHEMA, KEYS, Shard(0, 2))
    writer.write_rows([{"prompt_idx": 0, "seed": 0, "rollout_idx": 0, "correct": False, "reason": "from part"}])
    report = verify(rd, workers=1, code_timeout_s=1, shard=Shard(0, 2))
    assert report.skipped == 1 and report.checked == 3  # shard 0: prompt_idx 0, 2, 4 (4 rollouts, 1 done)
    assert not (rd / C.VERIFIED_DIR / C.seed_file_name(0)).exists()  # shard 1 still missing
    report = verify(rd, workers=1, code_timeout_s=1, shard=Shard(1, 2))
    got = read_verified(rd)  # the last shard merged both
    assert set(got) == set(ROLLOUTS) and got[(0, 0)]["reason"] == "from part"
    assert got[(3, 0)]["correct"] is True and got[(1, 0)]["correct"] is True
    assert report.families["numina"].rows == 4


def test_unknown_prompt_idx_is_a_clear_error_and_writes_nothing(tmp_path):
    rollouts = dict(ROLLOUTS)
    rollouts[(99, 0)] = (r"\boxed{1}", None)
    rd = make_run(tmp_path / "run", rollouts=rollouts)
    proc = run(["vr-tools", "verify", "--run-dir", str(rd)], check=False)
    assert proc.returncode != 0
    assert "seed-0.parquet" in proc.stderr and "prompt_idx not in questions.parquet" in proc.stderr and "99" in proc.stderr
    assert not (rd / C.VERIFIED_DIR).exists() and not (rd / C.MANIFEST_FILE).exists()


def test_unknown_family_and_missing_rollouts(tmp_path):
    questions = [dict(QUESTIONS[0], source="poetry/0")]
    rd = make_run(tmp_path / "run", questions=questions, rollouts={(0, 0): ("x", None)})
    with pytest.raises(Exception, match="no verifier handles source family 'poetry'"):
        verify(rd)
    shutil.rmtree(rd / C.ROLLOUTS_DIR)
    with pytest.raises(RunDirError, match="run `vr-tools rollout` first"):
        verify(rd)
