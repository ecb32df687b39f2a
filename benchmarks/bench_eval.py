"""Evaluating several checkpoints: one ``vr-tools evaluate`` process for all of them vs one process each.

The study evaluates about twenty models per seed (the arms, the K sweep, the learning-curve checkpoints)
on one task, and a pipeline evaluates each of its models; on the embedded models a process spends most of
its time starting (torch, transformers, SkyThought's task package) rather than generating. Both sides
evaluate the same six checkpoints (copies of the bundled demo base, so the tokenizer files are identical
as they are between checkpoints of one training) on the demo's 60 held-out questions, greedy, the demo's
88 new tokens, into fresh folders; the result folders of both sides are checked to be byte-identical.

    python benchmarks/bench_eval.py [--repeats 3] [--models 6]

Target: one process takes at most half the wall time of one process per checkpoint.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare, run_json  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BASE = REPO / "vr_plugins" / "demo" / "base"
DATA = REPO / "vr_plugins" / "demo" / "data" / "eval"
TASK = "vr_math500"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", type=int, default=6)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    models = []
    for i in range(args.models):
        shutil.copytree(BASE, work / f"checkpoint-{i}")
        models.append(work / f"checkpoint-{i}")
    vr_tools = str(Path(sys.executable).parent / "vr-tools")
    common = ["--task", TASK, "--n", "1", "--temperature", "0", "--max-new-tokens", "88", "--data-dir", str(DATA)]
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    outs = {"one process": work / "one", "one per checkpoint": work / "each"}

    def one_process() -> dict:
        shutil.rmtree(outs["one process"], ignore_errors=True)
        argv = [vr_tools, "evaluate", *common]
        for i, model in enumerate(models):
            argv += ["--model", str(model), "--out", str(outs["one process"] / str(i))]
        return run_json(argv, env=env)

    def one_per_checkpoint() -> dict:
        shutil.rmtree(outs["one per checkpoint"], ignore_errors=True)
        wall = 0.0
        for i, model in enumerate(models):
            got = run_json([vr_tools, "evaluate", *common, "--model", str(model),
                            "--out", str(outs["one per checkpoint"] / str(i))], env=env)
            wall += got["wall_s"]
        return {"wall_s": wall}

    def same_results() -> str:
        a = sorted(p.relative_to(outs["one process"]) for p in outs["one process"].rglob("*.json"))
        b = sorted(p.relative_to(outs["one per checkpoint"]) for p in outs["one per checkpoint"].rglob("*.json"))
        same = a == b and len(a) == 2 * len(models) and all(
            (outs["one process"] / p).read_bytes() == (outs["one per checkpoint"] / p).read_bytes() for p in a)
        if not same:
            raise SystemExit("bench_eval: the two sides wrote different result folders")
        return f"result folders of both sides byte-identical ({len(a)} files)"

    compare(f"{args.models} checkpoints x {TASK} (60 questions, greedy, 88 tokens): one process vs one each",
            {"one process": one_process, "one per checkpoint": one_per_checkpoint}, {"wall_s": "lower"},
            repeats=args.repeats, targets={"wall_s": "<= 0.5"}, command="python benchmarks/bench_eval.py",
            note=same_results)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
