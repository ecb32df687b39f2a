"""Peak memory and step time of ``llamafactory-cli train``: constant-normaliser loss vs LLaMA-Factory's default.

Same tiny Qwen2 model with the real 151,665-token vocabulary (hidden 64, so the output layer and its
logits dominate, as they do for real models at long sequence lengths), same data (one example of about
``cutoff`` tokens per step, batch 1), same recipe; the only difference is ``constant_loss_normalizer``.
The default loss builds the [tokens x vocab] logits, upcasts them to float32 and keeps what its backward
pass needs; ours computes the loss from the final hidden states in chunks (docs/training.md). Each run is
the real command in a fresh process: peak RSS from ``wait4``, step time = ``train_runtime`` / steps.

    python benchmarks/bench_train.py [--cutoff 4096] [--more 8192,16384] [--repeats 3] [--steps 2]

Targets at cutoff 4,096: peak RSS ratio <= 0.4, step time ratio <= 1.1. The longer cutoffs (``--more``)
run our loss only: the default loss would need about 2 GB per 1k tokens (16 GB at 8k), more than the
machine can spare; a baseline run is skipped when less than twice its expected peak is free.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare, measure, run_json  # noqa: E402

WORDS = ("the", "cat", "sat", "on", "a", "mat", "and", "then", "we", "add", "two", "to", "it", "so", "is",
         "not", "one", "but", "all", "of", "them", "are", "here", "now", "let", "me", "check", "again")
#: the default loss's peak per 1k tokens of cutoff at this vocabulary (measured: 8.1 GB at 4k)
DEFAULT_MIB_PER_1K = 2048


def available_mib() -> float:
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def make_data(root: Path, cutoff: int, rows: int) -> Path:
    rng = random.Random(0)
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    with open(data / "long.jsonl", "w") as f:
        for i in range(rows):
            think = " ".join(rng.choice(WORDS) for _ in range(cutoff + 200))
            f.write(json.dumps({"question": f"What is {i} + 1?", "think": think, "solution": f"\\boxed{{{i + 1}}}"}) + "\n")
    (data / "dataset_info.json").write_text(json.dumps({"long": {"file_name": "long.jsonl", "formatting": "vr_reasoning"}}))
    return data


def train_side(model: Path, data: Path, out: Path, cutoff: int, steps: int, loss: str):
    recipe = {
        "model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "full",
        "dataset": "long", "dataset_dir": str(data), "template": "vr_reasoning", "cutoff_len": cutoff,
        "overwrite_cache": True, "output_dir": str(out), "overwrite_output_dir": True,
        "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1, "learning_rate": 1e-4,
        "max_steps": steps, "logging_steps": 1, "save_strategy": "no", "report_to": "none", "bf16": False,
        "disable_shuffling": True, "seed": 0, "preprocessing_num_workers": 1,
    }
    if loss == "constant":
        recipe["constant_loss_normalizer"] = 1000.0
    path = out.parent / f"{out.name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)

    def run():
        shutil.rmtree(out, ignore_errors=True)
        path.write_text(yaml.safe_dump(recipe))
        got = run_json([str(Path(sys.executable).parent / "llamafactory-cli"), "train", str(path)],
                       env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
        metrics = json.loads((out / "train_results.json").read_text())
        got["step_s"] = metrics["train_runtime"] / steps
        got["train_runtime"] = metrics["train_runtime"]
        return got

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cutoff", type=int, default=4096)
    ap.add_argument("--more", default="8192,16384", help="longer cutoffs measured with our loss only ('' for none)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--model-dir", default=None, help="cache folder for the tiny model (built when absent)")
    args = ap.parse_args()

    from vr_plugins.tiny import TinyModelConfig, build_tiny_model

    cache = Path(args.model_dir or Path(tempfile.gettempdir()) / "vr-bench-models")
    model = build_tiny_model(cache / "qwen-32768-seed0", tokenizer="qwen",
                             config=TinyModelConfig(max_position_embeddings=32768, seed=0))
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    data = make_data(work, args.cutoff, args.steps + 1)
    need = DEFAULT_MIB_PER_1K * args.cutoff / 1024
    print(f"model: tiny Qwen2, vocab 151,665, float32, CPU; cutoff {args.cutoff}, batch 1, {args.steps} steps per run; "
          f"MemAvailable {available_mib():.0f} MiB")
    if available_mib() < 2 * need:
        print(f"  skipped: the default loss needs about {need:.0f} MiB at cutoff {args.cutoff}; less than twice that is free")
    else:
        compare(f"llamafactory-cli train, cutoff {args.cutoff}: constant-normaliser loss vs default loss",
                {"constant normaliser": train_side(model, data, work / "constant", args.cutoff, args.steps, "constant"),
                 "default loss": train_side(model, data, work / "default", args.cutoff, args.steps, "default")},
                {"peak_rss_mib": "lower", "step_s": "lower"}, repeats=args.repeats,
                targets={"peak_rss_mib": "<= 0.4", "step_s": "<= 1.1"},
                command=f"python benchmarks/bench_train.py --cutoff {args.cutoff} --more ''")
    for cutoff in [int(x) for x in args.more.split(",") if x.strip()]:
        longer = make_data(work / f"c{cutoff}", cutoff, 2)
        measure(f"llamafactory-cli train, cutoff {cutoff}, constant-normaliser loss (1 step; the default loss would "
                f"need about {DEFAULT_MIB_PER_1K * cutoff / 1024 / 1024:.0f} GiB)",
                train_side(model, longer, work / f"constant-{cutoff}", cutoff, 1, "constant"),
                ["peak_rss_mib", "step_s"], command=f"python benchmarks/bench_train.py --more {cutoff}")
    shutil.rmtree(work, ignore_errors=True)
    os.sync()
    return 0


if __name__ == "__main__":
    sys.exit(main())
