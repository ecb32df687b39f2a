"""Benchmark the chunked scorer against the reference scoring method, and hf sampling throughput.

Reference method (METHOD.md, "reference quirks"): micro-batch 1, ``log_softmax(logits.float())`` over the
whole vocabulary, then gather. Ours: :class:`vr_plugins.data.logprobs.HFScorer` (decoder once, lm_head in
chunks, logsumexp + gather). Both on the tiny random model with the real Qwen2.5 vocabulary (151,665),
float32, CPU, one sequence of L tokens scored from its second token. Each measurement runs in a fresh
subprocess; peak memory = ru_maxrss after the call minus the RSS before it (model already loaded).

    python benchmarks/bench_scoring.py                       # L = 4096, 8192
    python benchmarks/bench_scoring.py --lengths 4096,16384  # 16k: the reference needs ~20 GB of RAM

Prints the peak-memory ratio (ours / reference, target <= 0.25) and the throughput ratio (ours /
reference, target >= 1), then hf-backend sampling tokens/s against transformers' own do_sample. Exit status 0.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

MEASURE = r"""
import json, resource, sys, time
import numpy as np, torch
from transformers import AutoModelForCausalLM
from vr_plugins.data.logprobs import HFScorer, ScoreRequest, reference_token_logprobs
path, method, length, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model = AutoModelForCausalLM.from_pretrained(path, dtype="float32").eval()
ids = tuple(int(t) for t in np.random.default_rng(0).integers(0, 151_000, length))
scorer = HFScorer(model, pad_id=0, token_budget=1 << 20, chunk_tokens=chunk)
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
print(json.dumps({"tokens": tokens, "seconds": time.perf_counter() - t}))
"""


def measure(script: str, *args) -> dict:
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed: {args}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="4096,8192", help="sequence lengths, comma-separated")
    ap.add_argument("--chunk-tokens", type=int, default=512, help="chunk size of the chunked scorer")
    ap.add_argument("--model-dir", default=None, help="tiny Qwen-vocab model (built here when absent)")
    args = ap.parse_args()

    from vr_plugins.tiny import TinyModelConfig, build_tiny_model

    cache = Path(args.model_dir or Path(tempfile.gettempdir()) / "vr-bench-tiny-qwen-32k")
    lengths = [int(x) for x in args.lengths.split(",")]
    model_dir = build_tiny_model(cache, tokenizer="qwen",
                                 config=TinyModelConfig(max_position_embeddings=max(32768, max(lengths))))
    print(f"model: {model_dir} (tiny Qwen2, vocab 151,665, float32, CPU); chunk_tokens={args.chunk_tokens}")
    print(f"{'tokens':>7} {'ref s':>8} {'ours s':>8} {'ref MB':>9} {'ours MB':>9} {'mem ratio':>10} {'speed ratio':>12} {'|dsum|':>9}")
    for length in lengths:
        ref = measure(MEASURE, model_dir, "reference", length, args.chunk_tokens)
        ours = measure(MEASURE, model_dir, "chunked", length, args.chunk_tokens)
        print(f"{length:>7} {ref['seconds']:>8.2f} {ours['seconds']:>8.2f} {ref['peak_mb']:>9.0f} {ours['peak_mb']:>9.0f} "
              f"{ours['peak_mb'] / ref['peak_mb']:>10.3f} {ref['seconds'] / ours['seconds']:>11.2f}x "
              f"{abs(ref['sum'] - ours['sum']):>9.2e}", flush=True)
    for batch in (1, 8):
        ours = measure(SAMPLE, model_dir, batch, 64, "ours")
        native = measure(SAMPLE, model_dir, batch, 64, "native")
        a, b = ours["tokens"] / ours["seconds"], native["tokens"] / native["seconds"]
        print(f"hf sampling, batch {batch}, 64 new tokens: ours {a:.1f} tokens/s (per-row seeded streams), "
              f"transformers do_sample {b:.1f} tokens/s, ratio {a / b:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
