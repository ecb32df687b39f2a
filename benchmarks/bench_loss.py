"""Step time of the constant-normaliser loss against LLaMA-Factory's default SFT loss.

Same tiny model, same data, same interpreter: the two losses alternate (default, constant, default, ...)
for ``--repeats`` rounds of ``--steps`` optimiser steps; the median step time of each (first 2 steps of
every run dropped) gives the ratio constant / default (target <= 1.03). The default model has the real
Qwen2.5 vocabulary (151,665 tokens), so the loss over the logits is a sizeable part of a step, as it is
for real models at long sequence lengths.

    python benchmarks/bench_loss.py [--tokenizer qwen|bpe] [--steps 10] [--repeats 2] [--batch 1] [--cutoff 384]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _timer_callback():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self._start = [], None

        def on_step_begin(self, args, state, control, **kwargs):
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._start)

    return StepTimer()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", choices=["qwen", "bpe"], default="qwen")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--cutoff", type=int, default=384)
    args = parser.parse_args(argv)

    from vr_plugins.tiny import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench-loss-"))
    cache = Path(os.environ.get("VR_TEST_CACHE", work))
    model = build_tiny_model(cache / f"tiny-{args.tokenizer}", tokenizer=args.tokenizer)
    data = work / "data"
    data.mkdir()
    rows = (REPO / "tests/data/lf_reasoning.jsonl").read_text()
    (data / "rows.jsonl").write_text(rows * 4)  # 64 examples: enough for every run without repeating
    (data / "dataset_info.json").write_text(json.dumps({"rows": {"file_name": "rows.jsonl", "formatting": "vr_reasoning"}}))

    from llamafactory.train.tuner import run_exp

    base = {
        "model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "full",
        "dataset": "rows", "dataset_dir": str(data), "template": "vr_reasoning", "cutoff_len": args.cutoff,
        "overwrite_cache": True, "overwrite_output_dir": True, "per_device_train_batch_size": args.batch,
        "learning_rate": 1e-4, "max_steps": args.steps, "logging_steps": 1000, "save_strategy": "no",
        "report_to": "none", "bf16": False, "disable_shuffling": True, "seed": 0,
        "disable_gradient_checkpointing": True,
    }
    variants = {"default": {}, "constant": {"constant_loss_normalizer": 1000.0}}
    times = {name: [] for name in variants}
    for r in range(args.repeats):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            timer = _timer_callback()
            run_exp({**base, **variants[name], "output_dir": str(work / f"{name}-{r}")}, callbacks=[timer])
            times[name] += timer.times[2:]
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["constant"] / median["default"]
    print(file=sys.stderr)
    print(f"tiny Qwen2 ({args.tokenizer} vocabulary), batch {args.batch}, cutoff {args.cutoff}, "
          f"{args.repeats} x {args.steps} steps per loss (first 2 of each run dropped)")
    for name in variants:
        print(f"  {name:9s} median step {median[name] * 1000:8.1f} ms  (n={len(times[name])})")
    print(f"ratio constant / default = {ratio:.3f}  (target <= 1.03)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
