"""``score``: chunked log-probs against the full log-softmax, identical trace ids, truncation, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from vr_plugins import formats
from vr_plugins.data import prepare as prep
from vr_plugins.data.logprobs import (
    HFScorer,
    ScoreRequest,
    ScoringMemoryError,
    check_scoring_memory,
    pack_by_tokens,
    reference_token_logprobs,
)
from vr_plugins.data.scoring import build_requests, question_prompts, score, tokenize
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.manifest import read_manifest
from vr_plugins.rundir.shards import Shard
from vr_tools.cli import cli

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def qwen_model(tiny_qwen_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_model_dir, dtype="float32").eval()
    return model, AutoTokenizer.from_pretrained(tiny_qwen_model_dir)


def _requests(lengths, starts, seed=0):
    rng = np.random.default_rng(seed)
    return [ScoreRequest(tuple(int(t) for t in rng.integers(0, 151_000, n)), s) for n, s in zip(lengths, starts)]


@pytest.mark.parametrize("packing", ["none", "varlen"])
def test_chunked_logprobs_equal_full_log_softmax_on_qwen_vocab(qwen_model, packing):
    """Per-sequence and packed (position ids, no cross-sequence attention) forwards both equal the naive
    float32 log-softmax to 1e-5; the first sequence spans several chunks of the reused buffer."""
    model, tok = qwen_model
    assert model.config.vocab_size > 150_000
    lengths, starts = [257, 130, 64, 3], [40, 1, 63, 2]
    reqs = _requests(lengths, starts)
    scorer = HFScorer(model, pad_id=tok.pad_token_id, token_budget=400, chunk_tokens=64, packing=packing)
    assert scorer.packing == packing
    got = scorer.score(reqs)
    for req, values in zip(reqs, got):
        want = reference_token_logprobs(model, req.ids, req.score_from)
        assert values.dtype == np.float32 and values.shape == (len(req.ids) - req.score_from,)
        np.testing.assert_allclose(values, want, rtol=0, atol=1e-5)


def test_bf16_lm_head_equals_the_naive_method_on_the_same_model(tiny_qwen_model_dir):
    """In bf16 the multiply runs in bf16 and the reduction in float32: what the naive method does with a
    bf16 model (its logits are bf16), to 1e-5; against the float32 model the bf16 rounding shows."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen_model_dir, dtype=torch.bfloat16).eval()
    reqs = _requests([200, 90], [10, 1], seed=1)
    got = HFScorer(model, pad_id=0, chunk_tokens=64).score(reqs)
    fp32 = AutoModelForCausalLM.from_pretrained(tiny_qwen_model_dir, dtype=torch.float32).eval()
    for req, values in zip(reqs, got):
        np.testing.assert_allclose(values, reference_token_logprobs(model, req.ids, req.score_from), rtol=0, atol=1e-5)
        gap = np.abs(values - reference_token_logprobs(fp32, req.ids, req.score_from))
        assert 0 < gap.mean() < 0.05


def test_auto_packing_follows_the_attention_implementation(qwen_model):
    model, _ = qwen_model
    assert HFScorer(model, 0).packing == "none"  # sdpa / eager: one unpadded forward per sequence
    model.config._attn_implementation_internal = "flash_attention_2"
    try:
        assert HFScorer(model, 0).packing == "varlen"
    finally:
        model.config._attn_implementation_internal = "sdpa"
    with pytest.raises(ValueError, match="packing must be one of"):
        HFScorer(model, 0, packing="padded")


def test_pack_by_tokens_respects_the_budget_longest_first():
    lengths = [5, 50, 20, 20, 7, 200]
    batches = pack_by_tokens(lengths, 60)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert batches[0] == [5]  # longer than the budget: alone
    for b in batches:
        assert len(b) == 1 or sum(lengths[i] for i in b) <= 60
        assert lengths[b[0]] == max(lengths[i] for i in b)
    assert batches[1:] == [[1], [2, 3, 4, 0]]


def test_memory_check_names_the_option(tiny_qwen_model_dir):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_qwen_model_dir)
    kw = dict(weight_bytes=4, token_budget=16384, max_tokens=4096, packing="auto", available=8 << 30)
    check_scoring_memory([config, config], chunk_tokens=512, **kw)  # 2 x 311 MB: fits
    with pytest.raises(ScoringMemoryError, match=r"^--chunk-tokens 8192: .*GiB is free\. Lower --chunk-tokens"):
        check_scoring_memory([config, config], chunk_tokens=8192, **kw)  # 2 x 5 GB
    wide = AutoConfig.from_pretrained(tiny_qwen_model_dir, hidden_size=4096, intermediate_size=16384)
    with pytest.raises(ScoringMemoryError, match=r"^--token-budget 65536: "):
        check_scoring_memory([wide], chunk_tokens=8, **dict(kw, token_budget=65536, packing="varlen"))


def test_prior_and_posterior_share_trace_ids_and_answer_follows_trace(qwen_model):
    _, tok = qwen_model
    row = {C.QUESTION: "What is {x} + 1?", C.REFERENCE_SOLUTION: "It is \\boxed{x+1}."}
    template = formats.POSTERIOR_B
    p = question_prompts(tok, row, template)
    trace = tokenize(tok, "Let me think.\n\nx plus one. ")
    prior, post, kept, truncated = build_requests(p, trace, max_tokens=10_000)
    assert (kept, truncated) == (len(trace), False)
    assert list(prior.ids[prior.score_from:prior.score_from + kept]) == trace
    assert list(post.ids[post.score_from:]) == trace  # the SAME ids
    answer = list(prior.ids[prior.score_from + kept:])
    assert answer == tokenize(tok, formats.answer_suffix(row[C.REFERENCE_SOLUTION]))
    assert tok.decode(answer).startswith(formats.END_OF_THOUGHT)  # the marker is not split across the boundary
    assert list(prior.ids[:prior.score_from]) == tokenize(tok, formats.REASONING.render_prompt(row[C.QUESTION]))
    assert list(post.ids[:post.score_from]) == tokenize(tok, template.render_prompt(row[C.QUESTION], row[C.REFERENCE_SOLUTION]))
    # truncation keeps prompts and answer whole and cuts prior and posterior traces alike
    limit = max(len(p.prior) + len(p.answer), len(p.posterior)) + 2
    prior, post, kept, truncated = build_requests(p, trace, max_tokens=limit)
    assert truncated and kept == min(limit - len(p.prior) - len(p.answer), limit - len(p.posterior)) < len(trace)
    assert list(post.ids[post.score_from:]) == trace[:kept] == list(prior.ids[prior.score_from:prior.score_from + kept])
    assert len(prior.ids) <= limit and len(post.ids) <= limit


# --- the step, on the fast BPE tiny model ------------------------------------------------------------
TRACES = [
    "Add them: the sum is five." + formats.THOUGHT_TO_SOLUTION + "\\boxed{5}" + formats.END_OF_SOLUTION,
    formats.ASSISTANT_PREFILL + "Subtract carefully." + formats.END_OF_THOUGHT + "junk",
    "A trace that never ends its thought",
    "",
    "Plants use carbon dioxide." + formats.END_OF_THOUGHT,
    "Split and add." * 3 + formats.END_OF_THOUGHT,
]


def make_run(run_dir: Path, seeds=(0, 1), drop: int | None = None) -> Path:
    """questions from the generic fixture + posterior files written as another tool would (no manifest entry)."""
    prep.prepare(str(DATA / "data_questions.jsonl"), run_dir)
    for seed in seeds:
        rows = [{C.PROMPT_IDX: i, C.POSTERIOR_RESPONSE: TRACES[(i + seed) % len(TRACES)]} for i in range(6) if i != drop]
        (run_dir / C.POSTERIOR_DIR).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), run_dir / C.POSTERIOR_DIR / C.seed_file_name(seed))
    return run_dir


def test_score_step_matches_naive_recomputation(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = make_run(tmp_path / "run")
    report = score(run, str(tiny_model_dir), str(tiny_model_dir), per_token=True, rows_per_part=4, token_budget=2000,
                   chunk_tokens=16)
    assert report.scored == 12 and report.truncated == 0
    recorded = read_manifest(run)["steps"]["score"]["params"]
    assert recorded["template"] == formats.POSTERIOR_A.name  # posterior written without a manifest: template a
    assert recorded["max_tokens"] == 4096  # the default 32,000 capped by the tiny model's context
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype="float32").eval()
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    questions = {r[C.PROMPT_IDX]: r for r in pq.read_table(run / C.QUESTIONS_FILE).to_pylist()}
    table = pq.read_table(run / C.SCORES_DIR / "seed-1.parquet")
    assert table.column_names[:8] == C.SCORES_SCHEMA.names
    for row in table.to_pylist():
        q = questions[row[C.PROMPT_IDX]]
        response = TRACES[(row[C.PROMPT_IDX] + 1) % len(TRACES)]
        think, complete = formats.cut_at_end_of_thought(response)
        assert (row[C.THINK_TEXT], row[C.THINK_COMPLETE]) == (think, complete)
        trace = tokenize(tok, think)
        prior_prompt = tokenize(tok, formats.REASONING.render_prompt(q[C.QUESTION]))
        post_prompt = tokenize(tok, formats.POSTERIOR_A.render_prompt(q[C.QUESTION], q[C.REFERENCE_SOLUTION]))
        answer = tokenize(tok, formats.answer_suffix(q[C.REFERENCE_SOLUTION]))
        naive_prior = reference_token_logprobs(model, prior_prompt + trace + answer, len(prior_prompt))
        naive_post = reference_token_logprobs(model, post_prompt + trace, len(post_prompt)) if trace else np.zeros(0)
        assert (row[C.THINK_TOKENS], row[C.ANSWER_TOKENS]) == (len(trace), len(answer))
        np.testing.assert_allclose(row[C.THINK_TOKEN_LOGPS_PRIOR], naive_prior[:len(trace)], atol=1e-5)
        np.testing.assert_allclose(row[C.ANSWER_TOKEN_LOGPS_PRIOR], naive_prior[len(trace):], atol=1e-5)
        np.testing.assert_allclose(row[C.THINK_TOKEN_LOGPS_POSTERIOR], naive_post, atol=1e-5)
        assert row[C.THINK_LOGP_PRIOR] == pytest.approx(float(naive_prior[:len(trace)].sum()), abs=1e-4)
        assert row[C.ANSWER_LOGP_PRIOR] == pytest.approx(float(naive_prior[len(trace):].sum()), abs=1e-4)
        assert row[C.THINK_LOGP_POSTERIOR] == pytest.approx(float(naive_post.sum()), abs=1e-4)
    # a second run with the same parameters has nothing left to do
    again = score(run, str(tiny_model_dir), str(tiny_model_dir), per_token=True)
    assert (again.scored, again.skipped) == (0, 12)


def test_two_shards_merge_to_the_unsharded_scores(tmp_path, tiny_model_dir):
    whole = make_run(tmp_path / "whole", seeds=(0,))
    score(whole, str(tiny_model_dir), str(tiny_model_dir), max_tokens=375)
    sharded = make_run(tmp_path / "sharded", seeds=(0,))
    first = score(sharded, str(tiny_model_dir), str(tiny_model_dir), max_tokens=375, shard=Shard(1, 2))
    assert not (sharded / C.SCORES_DIR / "seed-0.parquet").exists()  # waits for the other shard
    assert first.scored == 3
    score(sharded, str(tiny_model_dir), str(tiny_model_dir), max_tokens=375, shard=Shard(0, 2))
    a = pq.read_table(whole / C.SCORES_DIR / "seed-0.parquet").to_pylist()
    b = pq.read_table(sharded / C.SCORES_DIR / "seed-0.parquet").to_pylist()
    assert sorted(p.name for p in (sharded / C.SCORES_DIR).iterdir() if not p.name.endswith(".lock")) == ["seed-0.parquet"]
    assert [r[C.PROMPT_IDX] for r in a] == list(range(6)) and any(r[C.TRUNCATED] for r in a)
    for x, y in zip(a, b):
        for key in x:
            if isinstance(x[key], float):
                assert x[key] == pytest.approx(y[key], abs=1e-4)
            else:
                assert x[key] == y[key], key


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_posterior_prompt_idx_set_must_match_questions(tmp_path, tiny_model_dir):
    run = make_run(tmp_path / "run", seeds=(0,), drop=4)
    result = invoke("score", "--run-dir", run, "--prior", tiny_model_dir, "--posterior", tiny_model_dir)
    assert result.exit_code != 0
    assert "posterior/seed-0.parquet: prompt_idx set differs" in result.output and "[4]" in result.output
    assert not (run / C.SCORES_DIR).exists() and "score" not in read_manifest(run)["steps"]


def test_too_large_chunk_is_refused_before_any_model_loads(tmp_path, tiny_model_dir, monkeypatch):
    from vr_plugins.data import common

    run = make_run(tmp_path / "run", seeds=(0,))
    monkeypatch.setattr(common, "load_hf_model", lambda *a, **k: pytest.fail("a model was loaded"))
    result = invoke("score", "--run-dir", run, "--prior", tiny_model_dir, "--posterior", tiny_model_dir,
                    "--chunk-tokens", 1 << 40)
    assert result.exit_code != 0 and "--chunk-tokens 1099511627776" in result.output and "Lower --chunk-tokens" in result.output
    assert not (run / C.SCORES_DIR).exists() and "score" not in read_manifest(run)["steps"]


def test_prompt_longer_than_max_tokens_names_the_rows(tmp_path, tiny_model_dir):
    run = make_run(tmp_path / "run", seeds=(0,))
    result = invoke("score", "--run-dir", run, "--prior", tiny_model_dir, "--posterior", tiny_model_dir,
                    "--max-tokens", 50)
    assert result.exit_code != 0
    assert "questions.parquet: 6 row(s) whose prompt (+ answer for the prior) is longer than" in result.output
    assert "prompt_idx 0 (" in result.output
    assert not (run / C.SCORES_DIR).exists() and "score" not in read_manifest(run)["steps"]


def test_prior_and_posterior_must_share_a_tokenizer(tmp_path, tiny_model_dir, tiny_qwen_model_dir):
    run = make_run(tmp_path / "run", seeds=(0,))
    result = invoke("score", "--run-dir", run, "--prior", tiny_model_dir, "--posterior", tiny_qwen_model_dir)
    assert result.exit_code != 0 and "different tokenizers" in result.output


def test_interrupted_score_resumes_to_the_same_rows(tmp_path, tiny_model_dir, monkeypatch):
    from vr_plugins.data import scoring

    whole = make_run(tmp_path / "whole", seeds=(0,))
    score(whole, str(tiny_model_dir), str(tiny_model_dir), rows_per_part=2)
    run = make_run(tmp_path / "run", seeds=(0,))
    real, calls = scoring._score_unit, []

    def dies_after_two_parts(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(scoring, "_score_unit", dies_after_two_parts)
    with pytest.raises(KeyboardInterrupt):
        score(run, str(tiny_model_dir), str(tiny_model_dir), rows_per_part=2)
    assert not (run / C.SCORES_DIR / "seed-0.parquet").exists()
    monkeypatch.setattr(scoring, "_score_unit", real)
    report = score(run, str(tiny_model_dir), str(tiny_model_dir), rows_per_part=2)
    assert (report.skipped, report.scored) == (4, 2)
    assert pq.read_table(run / C.SCORES_DIR / "seed-0.parquet").to_pylist() == \
        pq.read_table(whole / C.SCORES_DIR / "seed-0.parquet").to_pylist()  # bit for bit: same batches
