"""Shared helpers of the LLaMA-Factory tests: tiny datasets, run configs, reading a run's results."""

from __future__ import annotations

import json
import random
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
REASONING_FILE = DATA / "lf_reasoning.jsonl"
SHORT_SYSTEM = "Solve the problem."


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_jsonl(path, rows) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def short_rows(n: int, seed: int = 0, min_steps: int = 0, max_steps: int = 8) -> list[dict]:
    """vr_reasoning rows with a short system prompt (so several fit in one packed row) and weights."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 50), rng.randint(1, 9)
        k = rng.randint(min_steps, max_steps)
        steps = " ".join(f"{a} + {j} = {a + j}." for j in range(k))
        rows.append(
            {
                "question": f"What is {a} + {b}?",
                "think": f"Add {b} to {a}. {steps}",
                "solution": f"\\boxed{{{a + b}}}",
                "system": SHORT_SYSTEM,
                "weight": round(rng.uniform(0.1, 2.0), 3),
            }
        )
    return rows


def write_dataset_dir(root, entries: dict[str, tuple[list[dict] | Path, dict]]) -> Path:
    """``entries``: name -> (rows or an existing file, dataset_info entry without file_name)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    info = {}
    for name, (rows, entry) in entries.items():
        if isinstance(rows, Path):
            file_name = rows.name
            (root / file_name).write_bytes(rows.read_bytes())
        else:
            file_name = f"{name}.jsonl"
            write_jsonl(root / file_name, rows)
        info[name] = {"file_name": file_name, **entry}
    (root / "dataset_info.json").write_text(json.dumps(info, indent=1))
    return root


def base_config(model_dir, dataset_dir, dataset: str, output_dir, **overrides) -> dict:
    config = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "dataset": dataset,
        "dataset_dir": str(dataset_dir),
        "template": "vr_reasoning",
        "cutoff_len": 1024,
        "overwrite_cache": True,
        "output_dir": str(output_dir),
        "overwrite_output_dir": True,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "optim": "sgd",
        "learning_rate": 0.1,
        "lr_scheduler_type": "constant",
        "max_grad_norm": 0.0,
        "max_steps": 2,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "bf16": False,
        "disable_shuffling": True,
        "seed": 0,
        "disable_gradient_checkpointing": True,
        "preprocessing_num_workers": None,
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


def write_configs(folder, configs: dict[str, dict]) -> list[str]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, config in configs.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(config))
        paths.append(str(path))
    return paths


def losses(output_dir) -> list[float]:
    state = json.loads((Path(output_dir) / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def weights(output_dir) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(output_dir) / "model.safetensors"))


TIED = ("lm_head.weight", "model.embed_tokens.weight")


def _untie(state: dict) -> dict:
    """The tiny model ties lm_head to the embeddings; savers keep one name or both (DeepSpeed)."""
    state = dict(state)
    if TIED[0] in state:
        head = state.pop(TIED[0])
        if TIED[1] in state:
            assert float((head - state[TIED[1]]).abs().max()) == 0.0
        else:
            state[TIED[1]] = head
    return state


def max_weight_diff(a: dict, b: dict) -> float:
    a, b = _untie(a), _untie(b)
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
