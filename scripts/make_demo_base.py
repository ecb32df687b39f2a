"""Build the demo's bundled pretrained base model (``vr_plugins/demo/base``) and record its checksums.

Why a pretrained base: a random-weight model trained for a few hundred steps learns nothing, so the demo's
table would say nothing. This base plays the part a pretrained LLM plays in the paper: it has read worked
arithmetic (the study task's pretraining split, chat transcripts *without* the reasoning system prompt)
but never the reasoning prompt, the demo's training questions or its held-out questions.

Steps (all local, no hub access; about 5 minutes on one core):

1. the study task's three disjoint splits with the demo's seed (``make_demo_data.splits``);
2. ``vr-tools tiny-model``: a byte-level BPE of 1024 tokens trained on the demo's training file, random
   Qwen2 weights (hidden 64, 2 layers, 2 heads of size 32, so vLLM's CPU attention accepts it; tied
   embeddings);
3. ``llamafactory-cli train recipes/study/pretrain.yaml`` on the pretraining split (stage pt, one thread,
   so the result is bit-reproducible on the same torch/transformers/LLaMA-Factory versions);
4. the files a checkpoint needs are copied to ``--out`` with ``SHA256SUMS`` (``sha256sum -c`` format) and
   ``BUILD.json`` (command, versions, steps, final loss).

    .venv/bin/python scripts/make_demo_base.py              # rewrites vr_plugins/demo/base
    .venv/bin/python scripts/make_demo_base.py --out /tmp/b  # a second build to compare checksums
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import make_demo_data  # noqa: E402

from vr_plugins.demo import BASE_FILES, DEMO_BASE, DEMO_DATA  # noqa: E402
from vr_plugins.study.task import PRETRAIN_DATASET, PRETRAIN_DIR  # noqa: E402

ARCH = {"--vocab-size": "1024", "--hidden-size": "64", "--layers": "2", "--heads": "2", "--seed": "0"}
PRETRAIN_STEPS = 2000


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEMO_BASE)
    parser.add_argument("--steps", type=int, default=PRETRAIN_STEPS)
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": "0"}
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="vr-demo-base-") as tmp:
        tmp = Path(tmp)
        make_demo_data.splits(tmp / "data")
        init, base = tmp / "init", tmp / "base"
        subprocess.run([bin_dir / "vr-tools", "tiny-model", "--out", init, "--corpus", DEMO_DATA / "train.jsonl",
                        *[x for kv in ARCH.items() for x in kv]], env=env, check=True)
        keys = {"model_name_or_path": init, "dataset": PRETRAIN_DATASET, "dataset_dir": tmp / "data" / PRETRAIN_DIR,
                "output_dir": base, "max_steps": args.steps, "seed": 0}
        subprocess.run([bin_dir / "llamafactory-cli", "train", ROOT / "recipes" / "study" / "pretrain.yaml",
                        *[f"{k}={v}" for k, v in keys.items()]], env=env, check=True, cwd=tmp)
        state = json.loads((base / "trainer_state.json").read_text())
        losses = [e["loss"] for e in state["log_history"] if "loss" in e]
        args.out.mkdir(parents=True, exist_ok=True)
        for name in BASE_FILES:
            shutil.copyfile(base / name, args.out / name)
    import torch
    import transformers
    import llamafactory

    sums = "".join(f"{sha256(args.out / name)}  {name}\n" for name in BASE_FILES)
    (args.out / "SHA256SUMS").write_text(sums)
    build = {"command": "python scripts/make_demo_base.py", "architecture": ARCH, "pretrain_steps": args.steps,
             "recipe": "recipes/study/pretrain.yaml", "final_train_loss": losses[-1] if losses else None,
             "seconds": round(time.time() - start), "torch": torch.__version__,
             "transformers": transformers.__version__, "llamafactory": llamafactory.__version__}
    (args.out / "BUILD.json").write_text(json.dumps(build, indent=2) + "\n")
    print(sums + json.dumps(build, indent=2))


if __name__ == "__main__":
    main()
