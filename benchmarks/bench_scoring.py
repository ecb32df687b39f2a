"""Scoring against its physical limit and against the naive method; hf sampling against transformers.

1. Whole process: ``vr-tools score`` (prior and posterior: two tiny Qwen2 models with the real 151,665-token
   vocabulary, float32, CPU; one trace of L tokens) against the MINIMUM WORK for the same sequences, also a
   whole process: import torch and transformers, load both models, then per sequence a no-grad trunk
   forward over prompt + trace (+ answer), and lm_head + logsumexp + gather over the scored positions
   only, in one reused chunk buffer. That script is written here independently of the project's code and
   reads token ids prepared in advance, so everything else ``vr-tools score`` does (reading Parquet,
   tokenising, writing parts, the manifest) counts as overhead. Target: time ratio <= 1.3.
2. Peak memory against the naive method (micro-batch 1, ``log_softmax(logits.float())`` over the whole
   vocabulary, then gather), in-process, one sequence of L tokens, each side in a fresh process: peak =
   ru_maxrss after the call minus the RSS before it (model loaded). Target: <= 0.15.
3. hf-backend sampling (per-row seeded streams) against transformers' own ``do_sample``.

    python benchmarks/bench_scoring.py [--lengths 4096,16384] [--memory-length 4096] [--repeats 3]

The naive method needs about 1.2 GB per 1k tokens, so the memory comparison runs at 4k tokens only.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare, run_json  # noqa: E402

MIN_WORK = r"""
import json, sys, time
import torch
from transformers import AutoModelForCausalLM
jobs = json.load(open(sys.argv[1]))  # [[model_dir, [[ids, score_from], ...]], ...]
chunk, total = 512, 0.0
with torch.inference_mode():
    for model_dir, seqs in jobs:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        weight = model.lm_head.weight  # [V, H]
        buf = torch.empty(chunk, weight.shape[0])  # [chunk, V], reused
        for ids, start in seqs:
            x = torch.tensor([ids])
            hidden = model.model(input_ids=x, use_cache=False).last_hidden_state[0, start - 1:-1]  # [N, H]
            targets = x[0, start:]
            for a in range(0, hidden.shape[0], chunk):
                h, t = hidden[a:a + chunk], targets[a:a + chunk]
                logits = buf[:h.shape[0]]
                torch.mm(h, weight.t(), out=logits)
                picked = logits.gather(1, t[:, None])[:, 0]
                peak = logits.amax(1, keepdim=True)
                logits.sub_(peak).exp_()
                total += float((picked - peak[:, 0] - logits.sum(1).log()).sum())
print(json.dumps({"sum": total}))
"""

MEMORY = r"""
import json, resource, sys, time
import numpy as np, torch
from transformers import AutoModelForCausalLM
from vr_plugins.data.logprobs import HFScorer, ScoreRequest, reference_token_logprobs
path, method, length = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
ids = tuple(int(t) for t in np.random.default_rng(0).integers(0, 151_000, length))
scorer = HFScorer(model, pad_id=0)
run = (lambda seq: scorer.score([ScoreRequest(seq, 1)])[0]) if method == "chunked" else \
      (lambda seq: reference_token_logprobs(model, seq, 1))
run(ids[:64])  # warm-up
rss = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 1024
t = time.perf_counter(); values = run(ids); seconds = time.perf_counter() - t
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024, "sum": float(np.sum(values, dtype=np.float64))}))
"""

SAMPLE = r"""
import json, sys, time
import torch
from transformers import GenerationConfig
from vr_plugins import formats
from vr_plugins.data.generation import HFGenerator, Request, SamplingParams, stream_seed
gen = HFGenerator(sys.argv[1])
batch, new, method = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ids = tuple(gen.tokenizer(formats.render_reasoning_prompt("What is 12 * 13?"), add_special_tokens=False)["input_ids"])
reqs = [Request(ids, stream_seed(0, i)) for i in range(batch)]
gen.generate(reqs[:1], SamplingParams(max_new_tokens=4))
t = time.perf_counter()
if method == "ours":
    tokens = sum(g[0].tokens for g in gen.generate(reqs, SamplingParams(max_new_tokens=new)))
else:  # transformers' own multinomial sampling, one global RNG (not batch-invariant)
    x = torch.tensor([ids] * batch)
    cfg = GenerationConfig(do_sample=True, temperature=0.7, top_p=1.0, top_k=0, max_new_tokens=new,
                           eos_token_id=gen.stop_ids, pad_token_id=gen.pad_id)
    out = gen.model.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=cfg)
    tokens = sum(int((~torch.isin(row[len(ids):], torch.tensor(gen.stop_ids + [gen.pad_id]))).sum()) for row in out)
print(json.dumps({"tokens_per_s": tokens / (time.perf_counter() - t)}))
"""

WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "then", "we", "add", "two", "to", "it", "so", "is",
         "not", "one", "but", "all", "of", "them", "are", "here", "now", "let", "me", "check", "again")


def build_models(cache: Path, max_len: int) -> tuple[Path, Path]:
    from vr_plugins.tiny import TinyModelConfig, build_tiny_model

    return tuple(build_tiny_model(cache / f"qwen-{max_len}-seed{seed}", tokenizer="qwen",
                                  config=TinyModelConfig(max_position_embeddings=max_len, seed=seed))
                 for seed in (0, 1))


def make_run(root: Path, tokenizer, tokens: int) -> Path:
    """A run directory with one question and one posterior trace of about ``tokens`` tokens (seed 0)."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    from vr_plugins import formats
    from vr_plugins.data import prepare as prep
    from vr_plugins.rundir import columns as C

    questions = root / "q.jsonl"
    root.mkdir(parents=True)
    questions.write_text(json.dumps({"question": "What is 2 + 3?", "think": "2 + 3 = 5.",
                                     "solution": "The answer is \\boxed{5}.", "source": "numina"}) + "\n")
    run = root / "run"
    prep.prepare(str(questions), run)
    rng = random.Random(0)
    text = " ".join(rng.choice(WORDS) for _ in range(tokens))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: tokens - 400]
    trace = tokenizer.decode(ids) + formats.END_OF_THOUGHT
    (run / C.POSTERIOR_DIR).mkdir()
    pq.write_table(pa.Table.from_pylist([{C.PROMPT_IDX: 0, C.POSTERIOR_RESPONSE: trace}]),
                   run / C.POSTERIOR_DIR / C.seed_file_name(0))
    return run


def score_jobs(run: Path, tokenizer, models: tuple[Path, Path]) -> list:
    """The exact (ids, score_from) pairs ``vr-tools score`` builds for the run, per model."""
    import pyarrow.parquet as pq

    from vr_plugins import formats
    from vr_plugins.data.scoring import build_requests, question_prompts, tokenize
    from vr_plugins.rundir import columns as C

    question = pq.read_table(run / C.QUESTIONS_FILE).to_pylist()[0]
    trace_text, _ = formats.cut_at_end_of_thought(pq.read_table(run / C.POSTERIOR_DIR / "seed-0.parquet")
                                                  .to_pylist()[0][C.POSTERIOR_RESPONSE])
    prompts = question_prompts(tokenizer, question, formats.POSTERIOR_A)
    prior, post, _, _ = build_requests(prompts, tokenize(tokenizer, trace_text), 1 << 30)
    return [[str(models[0]), [[list(prior.ids), prior.score_from]]], [str(models[1]), [[list(post.ids), post.score_from]]]]


def scored_sum(run: Path) -> float:
    import pyarrow.parquet as pq

    from vr_plugins.rundir import columns as C

    row = pq.read_table(run / C.SCORES_DIR / "seed-0.parquet").to_pylist()[0]
    return row[C.THINK_LOGP_PRIOR] + row[C.ANSWER_LOGP_PRIOR] + row[C.THINK_LOGP_POSTERIOR]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="4096,16384", help="trace lengths (tokens) of the whole-process comparison")
    ap.add_argument("--memory-length", type=int, default=4096, help="sequence length of the memory comparison")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model-dir", default=None, help="cache folder for the tiny models (built when absent)")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    lengths = [int(x) for x in args.lengths.split(",")]
    cache = Path(args.model_dir or Path(tempfile.gettempdir()) / "vr-bench-models")
    models = build_models(cache, 32768)
    tokenizer = AutoTokenizer.from_pretrained(models[0])
    bin_dir = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    print(f"models: {models[0].name}, {models[1].name} (tiny Qwen2, vocab 151,665, float32, CPU)")
    for length in lengths:
        template = make_run(work / f"L{length}", tokenizer, length)
        jobs = work / f"jobs-{length}.json"
        jobs.write_text(json.dumps(score_jobs(template, tokenizer, models)))
        n_tokens = sum(len(ids) for _, seqs in json.loads(jobs.read_text()) for ids, _ in seqs)
        sums = {}

        def ours(length=length, template=template, sums=sums):
            run = work / f"ours-{length}"
            shutil.rmtree(run, ignore_errors=True)
            shutil.copytree(template, run)
            got = run_json([str(bin_dir / "vr-tools"), "score", "--run-dir", str(run), "--prior", str(models[0]),
                            "--posterior", str(models[1]), "--dtype", "float32"])
            sums["ours"] = scored_sum(run)
            return got

        def minimum(jobs=jobs, sums=sums):
            got = run_json([sys.executable, "-c", MIN_WORK, str(jobs)])
            sums["minimum"] = got["sum"]
            return got

        compare(f"vr-tools score vs minimum work, one {length}-token trace ({n_tokens} tokens through 2 models)",
                {"vr-tools score": ours, "minimum work": minimum}, {"wall_s": "lower"}, repeats=args.repeats,
                targets={"wall_s": "<= 1.3"},
                command=f"python benchmarks/bench_scoring.py --lengths {length}",
                note=lambda sums=sums: f"log-prob sums: ours {sums['ours']:.4f}, minimum work {sums['minimum']:.4f} "
                                       f"(|difference| {abs(sums['ours'] - sums['minimum']):.1e})")

    length = args.memory_length
    path = str(models[0])
    compare(f"chunked scorer vs naive full log-softmax, one {length}-token sequence (peak memory above the "
            f"loaded model, and time)",
            {"chunked": lambda: run_json([sys.executable, "-c", MEMORY, path, "chunked", str(length)]),
             "naive": lambda: run_json([sys.executable, "-c", MEMORY, path, "reference", str(length)])},
            {"peak_mb": "lower", "seconds": "lower"}, repeats=args.repeats, targets={"peak_mb": "<= 0.15"},
            command=f"python benchmarks/bench_scoring.py --memory-length {length}")

    for batch in (1, 8):
        compare(f"hf sampling, batch {batch}, 64 new tokens (tokens/s)",
                {"ours": lambda b=batch: run_json([sys.executable, "-c", SAMPLE, path, str(b), "64", "ours"]),
                 "transformers do_sample": lambda b=batch: run_json([sys.executable, "-c", SAMPLE, path, str(b), "64",
                                                                      "native"])},
                {"tokens_per_s": "higher"}, repeats=args.repeats, command="python benchmarks/bench_scoring.py")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
