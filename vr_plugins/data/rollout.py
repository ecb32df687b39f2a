"""``rollout``: n answer continuations from the prior given (x, z_k) (docs/method.md, step 6, Acc estimator).

Input of the prior = ids(reasoning prompt of x) + ids(trace z_k) + ids(end-of-thought marker +
"\\n\\n<|begin_of_solution|>"), each piece tokenised separately as in ``score``; the trace is the posterior
response cut at the end-of-thought marker. Generation stops at ``formats.STOP_STRING``.

``response`` is the text generated after ``<|begin_of_solution|>``, without the stop string (like a
``solution`` of ``formats.split_response``, so ``render_response(trace, response)`` is a full response);
``finished`` says whether the stop string or end-of-sequence was reached. Rollout j of (seed k,
prompt_idx i) draws from ``stream_seed(stream_seed(k, i), j)`` (``stream_seed(k, i)`` when n = 1; hf
backend): independent of batching,
sharding and resumption. A trace too long for the context keeps its head and the rows are flagged
``truncated``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from vr_plugins import formats
from vr_plugins.data import common
from vr_plugins.data.common import batches, check_prompt_lengths, tokenize
from vr_plugins.data.generation import Request, SamplingParams, make_generator, stream_seed
from vr_plugins.data.progress import bar
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.shards import Shard
from vr_plugins.rundir.step import SeedOutputs, StepOptionError, StepReport, owned_rows

STEP = "rollout"
KEYS = [C.PROMPT_IDX, C.SEED, C.ROLLOUT_IDX]


@dataclass
class RolloutReport(StepReport):
    generated: int = 0
    truncated_traces: int = 0
    tokens: int = 0


def rollout(run_dir: str | os.PathLike, model: str, n: int = 8, seeds: list[int] | None = None,
            params: SamplingParams = SamplingParams(), backend: str = "hf", shard: Shard = Shard(),
            batch_size: int = 8, force: bool = False, dtype: str = "auto", max_model_len: int | None = None,
            tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
            engine_args: dict | None = None) -> RolloutReport:
    """Write RUN/rollouts/seed-<k>.parquet (n rows per question) for this shard; resumes from parts."""
    from vr_plugins.data import vllm_engine

    engine_args = vllm_engine.check_engine_args(engine_args or {}, backend)
    if backend == "vllm":
        vllm_engine.require_vllm()
        max_model_len = vllm_engine.context_from(max_model_len, engine_args)
    if n < 1:
        raise StepOptionError(f"--n must be >= 1, got {n}")
    run_dir = Path(run_dir)
    questions = common.load_questions(run_dir)
    question_ids = set(questions[C.PROMPT_IDX].to_pylist())
    files = common.posterior_seed_files(run_dir, seeds, shard)
    for f in files.values():
        common.check_posterior(f, question_ids, shard)
    model = common.check_model_path(model, "--model")
    tokenizer = common.load_tokenizer(model, "--model")
    context = max_model_len or common.context_length(model) or 1 << 30

    rows = owned_rows(questions, shard)
    prompt_ids = {i: tokenize(tokenizer, formats.REASONING.render_prompt(r[C.QUESTION])) for i, r in rows.items()}
    marker = tokenize(tokenizer, formats.THOUGHT_TO_SOLUTION)
    pidx = sorted(rows)
    # the fixed part must leave room for at least one trace token and one generated token
    check_prompt_lengths(run_dir, pidx, [prompt_ids[i] + marker for i in pidx], context - 1, "reasoning prompt")

    step_params = {"model": model, "n": n, "backend": backend, **params.to_dict()}
    outputs = SeedOutputs(run_dir, STEP, C.ROLLOUTS_DIR, files, C.ROLLOUTS_SCHEMA, KEYS, shard)
    outputs.begin(step_params, force)
    report = RolloutReport()
    done = outputs.resume(lambda seed: [(p, seed, j) for p in rows for j in range(n)], report)
    total = n * len(rows) * len(files) - report.skipped

    start = time.time()
    if total:
        generator = make_generator(backend, model, dtype=dtype, context=context, stop=formats.STOP_STRING,
                                   tensor_parallel_size=tensor_parallel_size,
                                   gpu_memory_utilization=gpu_memory_utilization, engine_args=engine_args)
        with bar(total + report.skipped, f"rollout {shard}", initial=report.skipped) as pbar:
            for seed, path in files.items():
                missing = {i: [j for j in range(n) if (i, seed, j) not in done[seed]] for i in rows}
                if not any(missing.values()):
                    continue
                unfinished = {i for i, js in missing.items() if js}
                todo = [{"pidx": r[C.PROMPT_IDX], "response": r[C.POSTERIOR_RESPONSE] or "",
                         "missing": missing[r[C.PROMPT_IDX]]}
                        for r in common.read_posterior(path, unfinished)]  # one seed in memory
                # longest traces first (character length as a proxy): similar lengths share a batch
                todo.sort(key=lambda t: (-len(t["response"]), t["pidx"]))
                for batch in batches(todo, max(1, batch_size // n)):
                    for t in batch:  # tokenised per batch: all traces of a seed at once would not fit in RAM
                        trace = tokenize(tokenizer, formats.cut_at_end_of_thought(t["response"])[0])
                        fixed = prompt_ids[t["pidx"]]
                        room = context - 1 - len(fixed) - len(marker)
                        t["truncated"] = len(trace) > room
                        t["ids"] = tuple(fixed + trace[:room] + marker)
                        report.truncated_traces += t["truncated"]
                    reqs = [Request(t["ids"], stream_seed(seed, t["pidx"])) for t in batch]
                    gens = generator.generate(reqs, params, n=n)
                    out = []
                    for t, g in zip(batch, gens):
                        out += [{C.PROMPT_IDX: t["pidx"], C.SEED: seed, C.ROLLOUT_IDX: j, C.RESPONSE: g[j].text,
                                 C.FINISHED: g[j].finished, C.GENERATED_TOKENS: g[j].tokens,
                                 C.TRUNCATED: t["truncated"]} for j in t["missing"]]
                    outputs.writers[seed].write_rows(out)
                    report.generated += len(out)
                    report.tokens += sum(r[C.GENERATED_TOKENS] for r in out)
                    pbar.update(len(out))
                    pbar.set_postfix_str(f"{report.tokens / max(time.time() - start, 1e-9):.1f} tok/s", refresh=False)
                    for t in batch:
                        del t["ids"], t["response"]
    outputs.close(report, start)
    return report
