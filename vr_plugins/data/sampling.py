"""``sample``: K thinking traces per question from the posterior q (docs/method.md, step 3).

Writes RUN/posterior/seed-<k>.parquet (prompt_idx, seed, posterior_response, finished,
generated_tokens). ``posterior_response`` is the text generated after the prompt's assistant prefill
``<|begin_of_thought|>\\n\\n``, without the end-of-sequence token.

Trace (seed k, prompt_idx i) draws from the random stream ``stream_seed(k, i)``: the same trace comes
out whatever the batch size, the sharding or the point where an interrupted run resumed (hf backend;
the vLLM backend is reproducible for a fixed vLLM version and GPU type).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from vr_plugins.data import common
from vr_plugins.data.common import batches, check_prompt_lengths, tokenize_prompts
from vr_plugins.data.generation import Request, SamplingParams, make_generator, stream_seed
from vr_plugins.data.progress import bar
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.shards import Shard
from vr_plugins.rundir.step import SeedOutputs, StepOptionError, StepReport, owned_rows

STEP = "sample"
KEYS = [C.PROMPT_IDX, C.SEED]


@dataclass
class SampleReport(StepReport):
    generated: int = 0
    tokens: int = 0


def sample(run_dir: str | os.PathLike, model: str, template: str = "a", seeds: list[int] = tuple(range(8)),
           params: SamplingParams = SamplingParams(), backend: str = "hf", shard: Shard = Shard(),
           batch_size: int = 8, force: bool = False, dtype: str = "auto", max_model_len: int | None = None,
           tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9, vllm_mode: str = "per-seed",
           engine_args: dict | None = None) -> SampleReport:
    """Sample traces for this shard's questions, one file per seed; resumes from finished parts."""
    from vr_plugins.data import vllm_engine

    engine_args = vllm_engine.check_engine_args(engine_args or {}, backend)
    if backend == "vllm":
        vllm_engine.require_vllm()
        max_model_len = vllm_engine.context_from(max_model_len, engine_args)
    run_dir = Path(run_dir)
    questions = common.load_questions(run_dir)
    tmpl = common.resolve_template(template)
    model = common.check_model_path(model, "--model")
    tokenizer = common.load_tokenizer(model, "--model")
    context = max_model_len or common.context_length(model) or 1 << 30
    rows = list(owned_rows(questions, shard).values())
    texts = [tmpl.render_prompt(r[C.QUESTION], r[C.REFERENCE_SOLUTION]) for r in rows]
    ids = tokenize_prompts(tokenizer, texts) if rows else []
    pidx = [r[C.PROMPT_IDX] for r in rows]
    check_prompt_lengths(run_dir, pidx, ids, context, f"posterior prompt ({tmpl.name})")
    if backend == "vllm" and vllm_mode not in ("per-seed", "n"):
        raise StepOptionError(f"unknown vllm mode {vllm_mode!r}; expected 'per-seed' or 'n'")

    step_params = {"model": model, "template": tmpl.name, "backend": backend, **params.to_dict()}
    if backend == "vllm":
        step_params["vllm_mode"] = vllm_mode
    outputs = SeedOutputs(run_dir, STEP, C.POSTERIOR_DIR, seeds, C.POSTERIOR_SCHEMA, KEYS, shard)
    outputs.begin(step_params, force)
    report = SampleReport()
    done = outputs.resume(lambda seed: [(p, seed) for p in pidx], report)
    todo_total = len(pidx) * len(seeds) - report.skipped
    # longest prompts first: memory problems show up at once, and similar lengths share a batch
    order = sorted(range(len(rows)), key=lambda i: (-len(ids[i]), pidx[i]))
    start = time.time()
    if todo_total:
        generator = make_generator(backend, model, dtype=dtype, context=context,
                                   tensor_parallel_size=tensor_parallel_size,
                                   gpu_memory_utilization=gpu_memory_utilization, engine_args=engine_args)
        with bar(len(pidx) * len(seeds), f"sample {shard}", initial=report.skipped) as pbar:
            if backend == "vllm" and vllm_mode == "n":
                _sample_n_per_request(generator, outputs.writers, done, seeds, order, batch_size, pidx, ids, params,
                                      pbar, report)
            else:
                for seed, writer in outputs.writers.items():
                    for batch in batches(order, batch_size):
                        todo = [i for i in batch if (pidx[i], seed) not in done[seed]]
                        if not todo:
                            continue
                        reqs = [Request(tuple(ids[i]), stream_seed(seed, pidx[i])) for i in todo]
                        gens = generator.generate(reqs, params)
                        writer.write_rows([_row(pidx[i], seed, g[0]) for i, g in zip(todo, gens)])
                        _count(report, pbar, [g[0] for g in gens], start)
    outputs.close(report, start)
    return report


def _row(prompt_idx: int, seed: int, gen) -> dict:
    return {C.PROMPT_IDX: prompt_idx, C.SEED: seed, C.POSTERIOR_RESPONSE: gen.text,
            C.FINISHED: gen.finished, C.GENERATED_TOKENS: gen.tokens}


def _count(report: SampleReport, pbar, gens, start: float) -> None:
    report.generated += len(gens)
    report.tokens += sum(g.tokens for g in gens)
    pbar.update(len(gens))
    pbar.set_postfix_str(f"{report.tokens / max(time.time() - start, 1e-9):.1f} tok/s", refresh=False)


def _sample_n_per_request(generator, writers, done, seeds, order, batch_size, pidx, ids, params, pbar, report):
    """vLLM ``n`` mode: one request per prompt with n = len(seeds); sample j goes to seeds[j]'s file."""
    start = time.time()
    for batch in batches(order, batch_size):
        todo = [i for i in batch if any((pidx[i], s) not in done[s] for s in seeds)]
        if not todo:
            continue
        gens = generator.generate([Request(tuple(ids[i]), stream_seed(pidx[i])) for i in todo], params, n=len(seeds))
        for j, seed in enumerate(seeds):
            new = [(i, g[j]) for i, g in zip(todo, gens) if (pidx[i], seed) not in done[seed]]
            writers[seed].write_rows([_row(pidx[i], seed, g) for i, g in new])
            _count(report, pbar, [g for _, g in new], start)
