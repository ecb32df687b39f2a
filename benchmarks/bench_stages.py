"""Overhead of a pipeline training stage: one process (C computed in it) vs the former two.

A training stage of ``vr-tools pipeline`` is now one ``llamafactory-cli train ... constant_loss_normalizer=auto``
(the normaliser is counted inside the training process, from the dataset it tokenised anyway). Before,
it was ``vr-tools normalizer --json`` (a second interpreter importing LLaMA-Factory and tokenising the
dataset again) and then ``llamafactory-cli train ... constant_loss_normalizer=C``. Both sides run the
demo's first training (tiny recipe ``tiny/initial.yaml``, the tiny BPE model, 16 reasoning examples),
interleaved; the stage's work time is LLaMA-Factory's ``train_runtime``, and one interpreter start is
the time of ``python -c "import llamafactory.train.tuner"`` (what ``llamafactory-cli train`` imports).

    python benchmarks/bench_stages.py [--repeats 3]

Target: a training stage spends <= 2 x its train_runtime plus one interpreter start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare, record, run_json  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from vr_plugins.paths import recipe
    from vr_plugins.tiny import build_tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    model = build_tiny_model(work / "tiny-bpe", tokenizer="bpe")
    data = work / "data"
    data.mkdir()
    shutil.copy(REPO / "tests/data/lf_reasoning.jsonl", data / "rows.jsonl")
    (data / "dataset_info.json").write_text(json.dumps({"rows": {"file_name": "rows.jsonl", "formatting": "vr_reasoning"}}))
    bin_dir = Path(sys.executable).parent
    tiny = recipe("tiny/initial.yaml")
    env = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    keys = [f"model_name_or_path={model}", "dataset=rows", f"dataset_dir={data}"]
    runtimes: dict[str, list[float]] = {"one process": [], "two processes": []}
    starts: list[float] = []

    def train(out: Path, normalizer: str) -> dict:
        shutil.rmtree(out, ignore_errors=True)
        got = run_json([str(bin_dir / "llamafactory-cli"), "train", str(tiny), *keys, f"output_dir={out}",
                        f"constant_loss_normalizer={normalizer}"], env=env)
        got["train_runtime"] = json.loads((out / "train_results.json").read_text())["train_runtime"]
        return got

    def one_process():
        got = train(work / "one", "auto")
        runtimes["one process"].append(got["train_runtime"])
        starts.append(run_json([sys.executable, "-c", "import llamafactory.train.tuner"], env=env)["wall_s"])
        return got

    def two_processes():
        first = run_json([str(bin_dir / "vr-tools"), "normalizer", "--dataset", "rows", "--dataset-dir", str(data),
                          "--model", str(model), "--recipe", str(tiny), "--json"], env=env)
        got = train(work / "two", str(first["constant_loss_normalizer"]))
        runtimes["two processes"].append(got["train_runtime"])
        return {"wall_s": first["wall_s"] + got["wall_s"], "train_runtime": got["train_runtime"]}

    result = compare("pipeline training stage (tiny/initial.yaml): one process with C=auto vs normalizer + train",
                     {"one process": one_process, "two processes": two_processes}, {"wall_s": "lower"},
                     repeats=args.repeats, command="python benchmarks/bench_stages.py")
    walls = result.values["wall_s"]["one process"]
    shares = [w / (2 * r + s) for w, r, s in zip(walls, runtimes["one process"], starts)]
    values = {"wall_s": statistics.median(walls), "train_runtime": statistics.median(runtimes["one process"]),
              "interpreter_start_s": statistics.median(starts), "budget_ratio_min": min(shares),
              "budget_ratio_median": statistics.median(shares)}
    print(f"  one process (medians): wall {values['wall_s']:.1f}s, train_runtime {values['train_runtime']:.1f}s, "
          f"interpreter start {values['interpreter_start_s']:.1f}s; wall / (2 x train_runtime + one start): "
          f"min {min(shares):.2f}, median {statistics.median(shares):.2f} (target <= 1)")
    record({"name": "training stage vs its work (2 x train_runtime + one interpreter start)", "values": values,
            "command": "python benchmarks/bench_stages.py", "targets": {"budget_ratio_median": "<= 1"}})
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
