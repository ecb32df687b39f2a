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
from dataclasses import dataclass, field
from pathlib import Path

from vr_plugins.data import common
from vr_plugins.data.generation import Request, SamplingParams, make_generator, stream_seed
from vr_plugins.data.progress import bar
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.manifest import mark_complete
from vr_plugins.rundir.parts import PartWriter
from vr_plugins.rundir.shards import Shard

STEP = "sample"


@dataclass
class SampleReport:
    outputs: list[Path] = field(default_factory=list)
    generated: int = 0
    skipped: int = 0
    tokens: int = 0
    seconds: float = 0.0


def tokenize_prompts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Prompt texts -> ids, without added special tokens (the ChatML text carries its own markers)."""
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def check_prompt_lengths(run_dir, prompt_idx: list[int], ids: list[list[int]], context: int, what: str) -> None:
    too_long = [(i, len(x)) for i, x in zip(prompt_idx, ids) if len(x) >= context]
    if too_long:
        raise common.length_error(Path(run_dir) / C.QUESTIONS_FILE, too_long, context, what,
                                  "Shorten these questions or use a model with a longer context (--max-model-len).")


def batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i:i + size] for i in range(0, len(order), size)]


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
    rows = [r for r in questions.to_pylist() if shard.owns(r[C.PROMPT_IDX])]
    texts = [tmpl.render_prompt(r[C.QUESTION], r[C.REFERENCE_SOLUTION]) for r in rows]
    ids = tokenize_prompts(tokenizer, texts) if rows else []
    pidx = [r[C.PROMPT_IDX] for r in rows]
    check_prompt_lengths(run_dir, pidx, ids, context, f"posterior prompt ({tmpl.name})")
    if backend == "vllm" and vllm_mode not in ("per-seed", "n"):
        raise ValueError(f"unknown vllm mode {vllm_mode!r}; expected 'per-seed' or 'n'")

    step_params = {"model": model, "template": tmpl.name, "backend": backend, **params.to_dict()}
    if backend == "vllm":
        step_params["vllm_mode"] = vllm_mode
    common.begin_step(run_dir, STEP, step_params, [run_dir / C.POSTERIOR_DIR], force)

    writers = {s: PartWriter(run_dir / C.POSTERIOR_DIR / C.seed_file_name(s), C.POSTERIOR_SCHEMA,
                             [C.PROMPT_IDX, C.SEED], shard) for s in seeds}
    done = {s: ({k[0] for k in w.done_keys()} if not w.complete else set(pidx)) for s, w in writers.items()}
    report = SampleReport()
    report.skipped = sum(len(d & set(pidx)) for d in done.values())
    todo_total = len(pidx) * len(seeds) - report.skipped
    # longest prompts first: memory problems show up at once, and similar lengths share a batch
    order = sorted(range(len(rows)), key=lambda i: (-len(ids[i]), pidx[i]))
    generator = None
    start = time.time()
    if todo_total:
        generator = make_generator(backend, model, dtype=dtype, context=context,
                                   tensor_parallel_size=tensor_parallel_size,
                                   gpu_memory_utilization=gpu_memory_utilization, engine_args=engine_args)
        with bar(len(pidx) * len(seeds), f"sample {shard}", initial=report.skipped) as pbar:
            if backend == "vllm" and vllm_mode == "n":
                _sample_n_per_request(generator, writers, done, seeds, order, batch_size, pidx, ids, params, pbar, report)
            else:
                for seed, writer in writers.items():
                    for batch in batches(order, batch_size):
                        todo = [i for i in batch if pidx[i] not in done[seed]]
                        if not todo:
                            continue
                        reqs = [Request(tuple(ids[i]), stream_seed(seed, pidx[i])) for i in todo]
                        gens = generator.generate(reqs, params)
                        writer.write_rows([_row(pidx[i], seed, g[0]) for i, g in zip(todo, gens)])
                        _count(report, pbar, [g[0] for g in gens], start)
    report.seconds = time.time() - start
    for writer in writers.values():
        report.outputs.append(writer.finish())
    finals = [str(w.final_path.relative_to(run_dir)) for w in writers.values() if w.final_path.exists()]
    if finals:
        mark_complete(run_dir, STEP, finals)
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
        todo = [i for i in batch if any(pidx[i] not in done[s] for s in seeds)]
        if not todo:
            continue
        gens = generator.generate([Request(tuple(ids[i]), stream_seed(pidx[i])) for i in todo], params, n=len(seeds))
        for j, seed in enumerate(seeds):
            new = [(i, g[j]) for i, g in zip(todo, gens) if pidx[i] not in done[seed]]
            writers[seed].write_rows([_row(pidx[i], seed, g) for i, g in new])
            _count(report, pbar, [g for _, g in new], start)
