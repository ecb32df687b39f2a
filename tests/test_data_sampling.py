"""``sample`` and ``rollout``: reproducible per-row streams, SIGKILL + resume, shards, manifest, bad input."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import BIN, subprocess_env
from vr_plugins import formats
from vr_plugins.data import prepare as prep
from vr_plugins.data import rollout as rollout_mod
from vr_plugins.data.generation import Generation, HFGenerator, Request, SamplingParams, stream_seed
from vr_plugins.data.rollout import rollout
from vr_plugins.data.sampling import sample
from vr_plugins.data.scoring import tokenize
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.manifest import read_manifest
from vr_plugins.rundir.shards import Shard
from vr_tools.cli import cli

DATA = Path(__file__).parent / "data"
FAST = SamplingParams(max_new_tokens=12)


def new_run(path: Path) -> Path:
    prep.prepare(str(DATA / "data_questions.jsonl"), path)
    return path


def rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, tiny_model_dir) -> Path:
    """An uninterrupted, unsharded run: sample seeds 0-1, then 2 rollouts per trace."""
    run = new_run(tmp_path_factory.mktemp("ref") / "run")
    sample(run, str(tiny_model_dir), seeds=[0, 1], params=SamplingParams(max_new_tokens=16), batch_size=1)
    rollout(run, str(tiny_model_dir), n=2, params=FAST, batch_size=4)
    return run


def test_sample_writes_one_file_per_seed_with_manifest(reference_run, tiny_model_dir):
    for seed in (0, 1):
        table = rows(reference_run / C.POSTERIOR_DIR / C.seed_file_name(seed))
        assert [r[C.PROMPT_IDX] for r in table] == list(range(6)) and {r[C.SEED] for r in table} == {seed}
        assert all(0 < r[C.GENERATED_TOKENS] <= 16 and r[C.FINISHED] == (r[C.GENERATED_TOKENS] < 16) for r in table)
    a, b = (rows(reference_run / C.POSTERIOR_DIR / C.seed_file_name(s)) for s in (0, 1))
    assert [r[C.POSTERIOR_RESPONSE] for r in a] != [r[C.POSTERIOR_RESPONSE] for r in b]  # seeds differ
    params = read_manifest(reference_run)["steps"]["sample"]["params"]
    assert params == {"model": str(Path(tiny_model_dir).resolve()), "template": formats.POSTERIOR_A.name,
                      "backend": "hf", "temperature": 0.7, "top_p": 1.0, "max_new_tokens": 16}


def test_hf_samples_do_not_depend_on_batching(tiny_model_dir):
    gen = HFGenerator(str(tiny_model_dir))
    prompts = [tuple(tokenize(gen.tokenizer, formats.render_reasoning_prompt(q))) for q in ("Hi", "What is 2 + 2?", "x" * 40)]
    reqs = [Request(ids, stream_seed(3, i)) for i, ids in enumerate(prompts)]
    params = SamplingParams(max_new_tokens=10, top_p=0.9)
    together = gen.generate(reqs, params, n=2)
    alone = [gen.generate([r], params, n=2)[0] for r in reversed(reqs)][::-1]
    assert together == alone
    assert together[0][0] != together[0][1]  # the n samples of one prompt use different streams


@pytest.mark.multiprocess  # a sampling process killed with SIGKILL, then resumed
def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_rows(tmp_path, reference_run, tiny_model_dir):
    run = new_run(tmp_path / "run")
    cmd = [str(BIN / "vr-tools"), "sample", "--run-dir", str(run), "--model", str(tiny_model_dir), "--seeds", "0-1",
           "--max-new-tokens", "16", "--batch-size", "1"]
    proc = subprocess.Popen(cmd, env=subprocess_env(VR_NO_PROGRESS="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    parts = run / C.POSTERIOR_DIR / ".parts-seed-0"
    deadline = time.time() + 180
    while len(list(parts.glob("part-*.parquet"))) < 2:
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"sample ended or hung before the kill: rc={proc.returncode} {proc.stderr.read()[-3000:]}")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / C.POSTERIOR_DIR / "seed-1.parquet").exists()  # killed mid-run
    report = sample(run, str(tiny_model_dir), seeds=[0, 1], params=SamplingParams(max_new_tokens=16), batch_size=1)
    assert report.skipped >= 2 and report.generated == 12 - report.skipped
    for seed in (0, 1):
        name = C.seed_file_name(seed)
        assert rows(run / C.POSTERIOR_DIR / name) == rows(reference_run / C.POSTERIOR_DIR / name)
    assert not parts.exists()


def test_two_shards_merge_to_the_unsharded_run(tmp_path, reference_run, tiny_model_dir):
    run = new_run(tmp_path / "run")
    for i in (1, 0):
        sample(run, str(tiny_model_dir), seeds=[0, 1], params=SamplingParams(max_new_tokens=16), shard=Shard(i, 2),
               batch_size=3)
        rollout(run, str(tiny_model_dir), n=2, params=FAST, shard=Shard(i, 2))
    for folder in (C.POSTERIOR_DIR, C.ROLLOUTS_DIR):
        names = sorted(p.name for p in (run / folder).iterdir() if p.suffix == ".parquet")
        assert names == ["seed-0.parquet", "seed-1.parquet"]
        for name in names:
            assert rows(run / folder / name) == rows(reference_run / folder / name)


def test_rollout_rows_and_model_input(reference_run, tiny_model_dir, monkeypatch, tmp_path):
    table = rows(reference_run / C.ROLLOUTS_DIR / "seed-1.parquet")
    assert [(r[C.PROMPT_IDX], r[C.ROLLOUT_IDX]) for r in table] == [(i, j) for i in range(6) for j in range(2)]
    assert all(formats.STOP_STRING not in r[C.RESPONSE] and r[C.SEED] == 1 for r in table)
    assert read_manifest(reference_run)["steps"]["rollout"]["params"]["n"] == 2

    # what the prior is asked to continue: reasoning prompt + trace + end-of-thought + begin-of-solution
    seen: list[tuple] = []

    class Recorder:
        def generate(self, requests, params, n=1):
            seen.extend(r.prompt_ids for r in requests)
            return [[Generation(f"ans{j}", 1, True) for j in range(n)] for _ in requests]

    monkeypatch.setattr(rollout_mod, "make_generator", lambda *a, **k: Recorder())
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    shutil.rmtree(run / C.ROLLOUTS_DIR)
    rollout(run, str(tiny_model_dir), n=3, seeds=[0], params=FAST, force=True)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    questions = rows(run / C.QUESTIONS_FILE)
    posterior = {r[C.PROMPT_IDX]: r[C.POSTERIOR_RESPONSE] for r in rows(run / C.POSTERIOR_DIR / "seed-0.parquet")}
    expected = {
        tuple(tokenize(tok, formats.REASONING.render_prompt(q[C.QUESTION]))
              + tokenize(tok, formats.cut_at_end_of_thought(posterior[q[C.PROMPT_IDX]])[0])
              + tokenize(tok, formats.END_OF_THOUGHT + "\n\n" + formats.BEGIN_OF_SOLUTION))
        for q in questions
    }
    assert set(seen) == expected and len(seen) == 6
    assert [r[C.RESPONSE] for r in rows(run / C.ROLLOUTS_DIR / "seed-0.parquet")][:3] == ["ans0", "ans1", "ans2"]


def test_generation_stops_at_the_stop_string(tiny_model_dir, monkeypatch):
    from vr_plugins.data import generation

    gen = HFGenerator(str(tiny_model_dir), stop=formats.STOP_STRING)
    script = tokenize(gen.tokenizer, "The answer is 4." + formats.STOP_STRING + " and more text after it")

    class Scripted:  # replaces the sampler: emits the scripted tokens, one per step, in every row
        def __init__(self, *args):
            pass

        def __call__(self, input_ids, scores):
            import torch

            step = input_ids.shape[1] - width
            out = torch.full_like(scores, float("-inf"))
            out[:, script[min(step, len(script) - 1)]] = 0.0
            return out

    monkeypatch.setattr(generation, "SeededSampler", Scripted)
    # the prompt itself contains the stop string: only generated text may stop a row
    prompt = tuple(tokenize(gen.tokenizer, formats.render_reasoning_prompt("Say " + formats.STOP_STRING)))
    width = len(prompt)
    [[out]] = gen.generate([Request(prompt, 0)], SamplingParams(max_new_tokens=len(script) + 5))
    assert (out.text, out.finished) == ("The answer is 4.", True)
    assert out.tokens < len(script)  # stopped right after the stop string, not at the token limit
    eos = gen.stop_ids[0]
    from vr_plugins.data.generation import _cut_text

    cut = _cut_text(gen.tokenizer, tokenize(gen.tokenizer, "abc") + [eos, eos], set(gen.stop_ids), None)
    assert (cut.text, cut.finished, cut.tokens) == ("abc", True, len(tokenize(gen.tokenizer, "abc")))


def test_manifest_refuses_other_parameters_and_force_discards_old_outputs(tmp_path, reference_run, tiny_model_dir):
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    before = rows(run / C.POSTERIOR_DIR / "seed-1.parquet")
    refused = invoke("sample", "--run-dir", run, "--model", tiny_model_dir, "--seeds", "0", "--max-new-tokens", 8)
    assert refused.exit_code != 0
    assert "step 'sample' was run with different parameters" in refused.output
    assert "max_new_tokens: recorded 16, now 8" in refused.output
    assert rows(run / C.POSTERIOR_DIR / "seed-1.parquet") == before
    forced = invoke("sample", "--run-dir", run, "--model", tiny_model_dir, "--seeds", "0", "--max-new-tokens", 8,
                    "--force")
    assert forced.exit_code == 0, forced.output
    assert not (run / C.POSTERIOR_DIR / "seed-1.parquet").exists()  # old outputs discarded
    assert all(r[C.GENERATED_TOKENS] <= 8 for r in rows(run / C.POSTERIOR_DIR / "seed-0.parquet"))
    assert read_manifest(run)["steps"]["sample"]["params"]["max_new_tokens"] == 8


@pytest.mark.parametrize("case", ["missing", "no-tokenizer", "empty-questions", "prompt-too-long"])
def test_bad_input_fails_cleanly_and_writes_nothing(tmp_path, tiny_model_dir, case):
    run = new_run(tmp_path / "run")
    model, extra = str(tiny_model_dir), []
    if case == "missing":
        model, message = str(tmp_path / "no-such-model"), "no-such-model: does not exist"
    elif case == "no-tokenizer":
        model = tmp_path / "weights-only"
        model.mkdir()
        shutil.copy(Path(tiny_model_dir) / "config.json", model)
        message = "weights-only: no tokenizer found"
    elif case == "empty-questions":
        pq.write_table(C.QUESTIONS_SCHEMA.empty_table(), run / C.QUESTIONS_FILE)
        message = "questions.parquet: no questions"
    else:
        extra, message = ["--max-model-len", 300], "questions.parquet: 6 row(s) whose posterior prompt"
    manifest_before = (run / C.MANIFEST_FILE).read_text()
    result = invoke("sample", "--run-dir", run, "--model", model, "--seeds", "0", "--max-new-tokens", 4, *extra)
    assert result.exit_code != 0 and message in result.output, result.output
    if case == "prompt-too-long":
        assert "prompt_idx 0 (" in result.output
    assert not (run / C.POSTERIOR_DIR).exists()
    assert (run / C.MANIFEST_FILE).read_text() == manifest_before


def test_rollout_needs_posterior_files(tmp_path, tiny_model_dir):
    run = new_run(tmp_path / "run")
    result = invoke("rollout", "--run-dir", run, "--model", tiny_model_dir, "--n", 2)
    assert result.exit_code != 0 and "no posterior files seed-<k>.parquet" in result.output
    pq.write_table(pa.Table.from_pylist([{C.PROMPT_IDX: 99, C.POSTERIOR_RESPONSE: "x"}]),
                   (run / C.POSTERIOR_DIR).mkdir() or run / C.POSTERIOR_DIR / "seed-0.parquet")
    result = invoke("rollout", "--run-dir", run, "--model", tiny_model_dir, "--n", 2)
    assert result.exit_code != 0 and "1 prompt_idx not in questions.parquet (e.g. [99])" in result.output
    assert not (run / C.ROLLOUTS_DIR).exists()


def test_every_option_has_help():
    import click

    from vr_tools import prepare, rollout as rollout_cli, sample as sample_cli, score

    for module in (prepare, sample_cli, score, rollout_cli):
        for param in module.command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{module.command.name} {param.opts} has no help"
