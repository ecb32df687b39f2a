"""``score``: log pi_0 and log q of each trace on identical token ids, and log pi_0 of the answer.

Tokenisation (docs/method.md, steps 4-5, this project's rule): the prompt texts, the trace and the answer are
tokenised SEPARATELY, each without added special tokens, and concatenated:

  prior input     = ids(reasoning prompt of x)       + ids(trace) + ids(answer_suffix(y'))
  posterior input = ids(posterior prompt of (x, y')) + ids(trace)

so the trace ids are one list used in both inputs, and the answer span starts right after the trace.
The trace is the posterior response cut at the end-of-thought marker (``formats.cut_at_end_of_thought``);
a response without the marker is used whole and flagged ``think_complete = False``. Tokenising the pieces
separately can differ from tokenising the joined text at the two boundaries by a token merge; the
reference tokenises separately too, but splits the end-of-thought marker across the boundary, which
this project does not (the answer starts with the whole marker).

A sequence that would exceed ``max_tokens`` keeps its prompt and answer whole and is cut inside the
trace, by the same number of trace tokens for prior and posterior; the row is flagged ``truncated`` and
``think_tokens`` counts the scored trace tokens. A prompt (plus answer) that alone exceeds
``max_tokens`` is an error naming the rows.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from vr_plugins import formats
from vr_plugins.data import common
from vr_plugins.data.common import tokenize
from vr_plugins.data.logprobs import ScoreRequest
from vr_plugins.data.progress import bar
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.io import RunDirError
from vr_plugins.rundir.manifest import step_params
from vr_plugins.rundir.shards import Shard
from vr_plugins.rundir.step import SeedOutputs, StepOptionError, StepReport, owned_rows

STEP = "score"
KEYS = [C.PROMPT_IDX, C.SEED]
PER_TOKEN_COLUMNS = (C.THINK_TOKEN_LOGPS_PRIOR, C.THINK_TOKEN_LOGPS_POSTERIOR, C.ANSWER_TOKEN_LOGPS_PRIOR)


@dataclass
class ScoreReport(StepReport):
    scored: int = 0
    truncated: int = 0
    tokens: int = 0


@dataclass(frozen=True)
class Prompts:
    """Token ids of one question's fixed pieces (tokenised once per question)."""

    prior: list[int]
    posterior: list[int]
    answer: list[int]


def question_prompts(tokenizer, row: dict, template: formats.Template) -> Prompts:
    return Prompts(
        prior=tokenize(tokenizer, formats.REASONING.render_prompt(row[C.QUESTION])),
        posterior=tokenize(tokenizer, template.render_prompt(row[C.QUESTION], row[C.REFERENCE_SOLUTION])),
        answer=tokenize(tokenizer, formats.answer_suffix(row[C.REFERENCE_SOLUTION])),
    )


def build_requests(p: Prompts, trace: list[int], max_tokens: int) -> tuple[ScoreRequest, ScoreRequest, int, bool]:
    """(prior request, posterior request, scored trace length, truncated) for one trace."""
    room = min(max_tokens - len(p.prior) - len(p.answer), max_tokens - len(p.posterior))
    kept = trace[: max(room, 0)]
    prior = ScoreRequest(tuple(p.prior + kept + p.answer), len(p.prior))
    posterior = ScoreRequest(tuple(p.posterior + kept), len(p.posterior))
    return prior, posterior, len(kept), len(kept) < len(trace)


def prompt_lengths(tokenizer, row: dict, template: formats.Template) -> tuple[int, int]:
    """(prior prompt + answer, posterior prompt) token counts of one question."""
    p = question_prompts(tokenizer, row, template)
    return len(p.prior) + len(p.answer), len(p.posterior)


def default_template(run_dir) -> str:
    """The template ``sample`` recorded in the manifest, else posterior template A."""
    params = step_params(run_dir, "sample") if (Path(run_dir) / C.MANIFEST_FILE).exists() else None
    return (params or {}).get("template") or "a"


def same_tokenizer(a, b) -> bool:
    return len(a) == len(b) and a.get_vocab() == b.get_vocab()


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "vocab.json", "merges.txt", "tokenizer.model")


def same_tokenizer_files(a: str, b: str) -> bool:
    """Both model folders hold byte-identical tokenizer files (then loading the second tokenizer, several
    seconds for a 152k vocabulary, and comparing vocabularies can be skipped)."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    found = False
    for name in TOKENIZER_FILES:
        fa, fb = Path(a) / name, Path(b) / name
        if fa.exists() != fb.exists():
            return False
        if fa.exists():
            found = True
            if fa.stat().st_size != fb.stat().st_size or fa.read_bytes() != fb.read_bytes():
                return False
    return found


def make_scorer(backend: str, model_path: str, tokenizer, *, dtype: str, token_budget: int, chunk_tokens: int,
                max_tokens: int, tensor_parallel_size: int, gpu_memory_utilization: float, role: str,
                engine_args: dict | None = None):
    if backend == "hf":
        from vr_plugins.data.logprobs import HFScorer

        model = common.load_hf_model(model_path, dtype=dtype, role=role)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        return HFScorer(model, pad, token_budget=token_budget, chunk_tokens=chunk_tokens)
    if backend == "vllm":
        from vr_plugins.data.logprobs import VLLMScorer
        from vr_plugins.data.vllm_engine import require_vllm

        require_vllm()
        return VLLMScorer(model_path, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                          gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_tokens,
                          engine_args=engine_args)
    raise StepOptionError(f"unknown backend {backend!r}; expected 'hf' or 'vllm'")


def score(run_dir: str | os.PathLike, prior: str, posterior: str, template: str | None = None,
          seeds: list[int] | None = None, backend: str = "hf", shard: Shard = Shard(), max_tokens: int = 32000,
          token_budget: int = 16384, chunk_tokens: int = 512, rows_per_part: int = 64, per_token: bool = False,
          force: bool = False, dtype: str = "auto", tensor_parallel_size: int = 1,
          gpu_memory_utilization: float = 0.45, engine_args: dict | None = None) -> ScoreReport:
    """Write RUN/scores/seed-<k>.parquet for this shard's questions; resumes from finished parts."""
    from vr_plugins.data import vllm_engine

    engine_args = vllm_engine.check_engine_args(engine_args or {}, backend)
    if backend == "vllm":
        vllm_engine.require_vllm()
        if engine_args.get("max_model_len"):
            max_tokens = min(max_tokens, int(engine_args["max_model_len"]))
    run_dir = Path(run_dir)
    questions = common.load_questions(run_dir)
    question_ids = set(questions[C.PROMPT_IDX].to_pylist())
    files = common.posterior_seed_files(run_dir, seeds, shard)
    for f in files.values():
        common.check_posterior(f, question_ids, shard)
    tmpl = common.resolve_template(template or default_template(run_dir))
    prior = common.check_model_path(prior, "--prior")
    posterior = common.check_model_path(posterior, "--posterior")
    tokenizer = common.load_tokenizer(prior, "--prior")
    if not same_tokenizer_files(prior, posterior) and not same_tokenizer(tokenizer, common.load_tokenizer(posterior,
                                                                                                       "--posterior")):
        raise RunDirError(f"--prior {prior} and --posterior {posterior} have different tokenizers: scoring on "
                          f"identical trace token ids needs one vocabulary")

    # never score past a model's context (positions beyond it are extrapolation, not the model)
    max_tokens = min([max_tokens] + [c for c in (common.context_length(prior), common.context_length(posterior)) if c])
    rows = owned_rows(questions, shard)
    # lengths only: the ids of 16k questions x 3 pieces would hold ~1 GB of Python ints; units re-tokenise
    lengths = {i: prompt_lengths(tokenizer, r, tmpl) for i, r in rows.items()}
    too_long = [(i, max(a, b)) for i, (a, b) in lengths.items() if a > max_tokens or b > max_tokens]
    if too_long:
        raise common.length_error(run_dir / C.QUESTIONS_FILE, too_long, max_tokens,
                                  "prompt (+ answer for the prior)", "Raise --max-tokens or drop these questions.")

    if backend == "hf":  # options too large for memory fail here, before a model loads
        from vr_plugins.data.logprobs import check_scoring_options

        check_scoring_options([prior, posterior], dtype=dtype, chunk_tokens=chunk_tokens, token_budget=token_budget,
                              max_tokens=max_tokens)
    params = {"prior": prior, "posterior": posterior, "template": tmpl.name, "backend": backend,
              "max_tokens": max_tokens, "per_token": per_token}
    outputs = SeedOutputs(run_dir, STEP, C.SCORES_DIR, files, _schema(per_token), KEYS, shard)
    outputs.begin(params, force)
    report = ScoreReport()
    done = outputs.resume(lambda seed: [(p, seed) for p in rows], report)
    todo = len(rows) * len(files) - report.skipped

    start = time.time()
    if todo:
        kw = dict(dtype=dtype, token_budget=token_budget, chunk_tokens=chunk_tokens, max_tokens=max_tokens,
                  tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
                  engine_args=engine_args)
        prior_scorer = make_scorer(backend, prior, tokenizer, role="--prior", **kw)
        post_scorer = make_scorer(backend, posterior, tokenizer, role="--posterior", **kw)
        with bar(todo + report.skipped, f"score {shard}", initial=report.skipped) as pbar:
            for seed, path in files.items():
                if len(done[seed]) == len(rows):
                    continue
                # one seed in memory at a time; fixed units (longest first, by characters) so a resumed run
                # computes exactly the batches of an uninterrupted one
                mine = common.read_posterior(path, set(rows))
                mine.sort(key=lambda r: (-len(r[C.POSTERIOR_RESPONSE] or ""), r[C.PROMPT_IDX]))
                for i in range(0, len(mine), rows_per_part):
                    unit = [r for r in mine[i:i + rows_per_part] if (r[C.PROMPT_IDX], seed) not in done[seed]]
                    if not unit:
                        continue
                    out = _score_unit(unit, seed, rows, tmpl, tokenizer, prior_scorer, post_scorer, max_tokens,
                                      per_token)
                    outputs.writers[seed].write_rows(out)
                    report.scored += len(out)
                    report.truncated += sum(r[C.TRUNCATED] for r in out)
                    report.tokens = prior_scorer.tokens + post_scorer.tokens
                    pbar.update(len(out))
                    pbar.set_postfix_str(f"{report.tokens / max(time.time() - start, 1e-9):.0f} tok/s", refresh=False)
                del mine
    outputs.close(report, start)
    return report


def _schema(per_token: bool) -> pa.Schema:
    """The scores contract plus the flags, and the per-token log-probabilities when asked for."""
    schema = C.SCORES_SCHEMA
    for name in (C.TRUNCATED, C.THINK_COMPLETE):
        schema = schema.append(pa.field(name, pa.bool_()))
    if per_token:
        for name in PER_TOKEN_COLUMNS:
            schema = schema.append(pa.field(name, pa.list_(pa.float32())))
    return schema


def _score_unit(unit, seed, questions, template, tokenizer, prior_scorer, post_scorer, max_tokens,
                per_token) -> list[dict]:
    meta, prior_reqs, post_reqs = [], [], []
    for r in unit:
        trace_text, complete = formats.cut_at_end_of_thought(r[C.POSTERIOR_RESPONSE] or "")
        p = question_prompts(tokenizer, questions[r[C.PROMPT_IDX]], template)
        prior_req, post_req, kept, truncated = build_requests(p, tokenize(tokenizer, trace_text), max_tokens)
        meta.append((r[C.PROMPT_IDX], trace_text, complete, kept, truncated, len(p.answer)))
        prior_reqs.append(prior_req)
        post_reqs.append(post_req)
    prior_lp = prior_scorer.score(prior_reqs)
    post_lp = post_scorer.score(post_reqs)
    out = []
    for (pidx, text, complete, kept, truncated, n_answer), a, b in zip(meta, prior_lp, post_lp):
        think_prior, answer_prior = a[:kept], a[kept:]
        assert len(answer_prior) == n_answer and len(b) == kept
        row = {
            C.PROMPT_IDX: pidx, C.SEED: seed, C.THINK_TEXT: text, C.THINK_TOKENS: kept,
            C.THINK_LOGP_PRIOR: float(np.sum(think_prior, dtype=np.float64)),
            C.THINK_LOGP_POSTERIOR: float(np.sum(b, dtype=np.float64)),
            C.ANSWER_TOKENS: n_answer, C.ANSWER_LOGP_PRIOR: float(np.sum(answer_prior, dtype=np.float64)),
            C.TRUNCATED: truncated, C.THINK_COMPLETE: complete,
        }
        if per_token:
            row.update({C.THINK_TOKEN_LOGPS_PRIOR: think_prior.tolist(), C.THINK_TOKEN_LOGPS_POSTERIOR: b.tolist(),
                        C.ANSWER_TOKEN_LOGPS_PRIOR: answer_prior.tolist()})
        out.append(row)
    return out
