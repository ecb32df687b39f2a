"""The constant loss normaliser C of a training run (docs/method.md section 4).

    C = mean supervised tokens per training row (after cutoff) x global batch size
    global batch size = per_device_train_batch_size x gradient_accumulation_steps x number of GPUs

A training row is an example, or a packed row when the recipe packs (then C keeps the loss of a step
on the scale of the usual token-mean loss as well). The counts come from the host's own data pipeline,
streamed, so a dataset of any size needs memory for one batch of rows only.

Two ways to get C: ``vr-tools normalizer`` (:func:`compute_constant_normalizer`, before training, in its
own process) or ``constant_loss_normalizer: auto`` in the recipe, which computes it inside the training
process from the dataset the trainer is about to train on (the LLaMA-Factory adapter's trainer hook, via
:func:`normalizer_from_counts`): no second interpreter, no second tokenisation, and the data-parallel world
size is the run's own.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vr_plugins.errors import UserError
from vr_plugins.hosts.llamafactory.keys import NORMALIZER_KEY

#: Hugging Face TrainingArguments defaults, used when the recipe does not set the keys
DEFAULT_PER_DEVICE_BATCH = 8
DEFAULT_GRAD_ACCUM = 1


class NormalizerError(UserError, ValueError):
    """Bad recipe, dataset or arguments for the normaliser."""


@dataclass(frozen=True)
class NormalizerResult:
    normalizer: float
    mean_tokens: float
    global_batch_size: int
    n_examples: int
    total_tokens: int
    per_device_batch_size: int
    gradient_accumulation_steps: int
    num_gpus: int
    cutoff_len: int | None
    template: str | None
    packing: bool
    dataset: str

    def yaml_line(self) -> str:
        return f"{NORMALIZER_KEY}: {self.normalizer:.6f}".rstrip("0").rstrip(".")

    def to_dict(self) -> dict[str, Any]:
        return {NORMALIZER_KEY: self.normalizer, **asdict(self)}


def load_recipe(recipe_path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(recipe_path)
    if not path.is_file():
        raise NormalizerError(f"recipe {str(path)!r} does not exist")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise NormalizerError(f"recipe {str(path)!r} is not valid YAML ({exc})") from exc
    if not isinstance(recipe, dict):
        raise NormalizerError(f"recipe {str(path)!r} is not a YAML mapping")
    return recipe


def _positive_int(recipe: dict[str, Any], key: str, default: int, where: str) -> int:
    value = recipe.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NormalizerError(f"{where}: {key} must be a positive integer, got {value!r}")
    return value


def _check_inputs(dataset: str, dataset_dir: Path, model: str) -> None:
    """What the user named exists, checked before LLaMA-Factory loads anything (its own errors about these
    are bare exceptions deep in a traceback)."""
    import json

    info_path = dataset_dir / "dataset_info.json"
    if not info_path.is_file():
        raise NormalizerError(f"dataset_dir {str(dataset_dir)!r} has no dataset_info.json")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise NormalizerError(f"{info_path}: not valid JSON ({exc})") from exc
    names = [name.strip() for name in dataset.split(",") if name.strip()]  # LLaMA-Factory's "a,b" lists
    missing = [name for name in names if not isinstance(info, dict) or name not in info]
    if missing or not names:
        known = ", ".join(sorted(info)) if isinstance(info, dict) and info else "none"
        raise NormalizerError(f"dataset {', '.join(missing) or repr(dataset)} not in {info_path} (known: {known})")
    if (model.startswith((".", "/")) or Path(model).exists()) and not Path(model).is_dir():
        raise NormalizerError(f"model {model!r} is not a local model or tokenizer folder")


def compute_constant_normalizer(
    dataset: str,
    dataset_dir: str | Path,
    model_or_tokenizer: str | Path,
    recipe_path: str | Path,
    num_gpus: int | None = None,
    *,
    max_examples: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> NormalizerResult:
    """C for ``dataset`` (a name in ``dataset_dir/dataset_info.json``) trained with ``recipe_path``.

    ``num_gpus`` is the data-parallel world size of the run (default 1); ``overrides`` replace recipe keys
    (the pipeline's way to change e.g. cutoff_len without writing a file); ``max_examples`` counts only
    the first rows (a quick estimate).
    """
    from vr_plugins.hosts.llamafactory.counting import supervised_token_counts

    recipe = {**load_recipe(recipe_path), **(overrides or {})}
    where = f"recipe {str(recipe_path)!r}"
    num_gpus = 1 if num_gpus is None else num_gpus
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, int) or num_gpus < 1:
        raise NormalizerError(f"num_gpus must be a positive integer, got {num_gpus!r}")
    per_device = _positive_int(recipe, "per_device_train_batch_size", DEFAULT_PER_DEVICE_BATCH, where)
    grad_accum = _positive_int(recipe, "gradient_accumulation_steps", DEFAULT_GRAD_ACCUM, where)
    _check_inputs(dataset, Path(dataset_dir), str(model_or_tokenizer))

    n, total = 0, 0
    for count in supervised_token_counts(recipe, dataset, str(dataset_dir), str(model_or_tokenizer), max_examples):
        n += 1
        total += count
    return normalizer_from_counts(n, total, per_device, grad_accum, num_gpus, recipe.get("cutoff_len"),
                                  recipe.get("template"), bool(recipe.get("packing", False)), dataset,
                                  f"dataset {dataset!r} in {str(dataset_dir)!r}")


def normalizer_from_counts(n: int, total: int, per_device: int, grad_accum: int, num_gpus: int,
                           cutoff_len: int | None, template: str | None, packing: bool, dataset: str,
                           where: str) -> NormalizerResult:
    """C from the row and supervised-token counts (the formula in the module docstring)."""
    if n == 0 or total == 0:
        raise NormalizerError(f"{where} yields no supervised tokens ({n} rows)")
    global_batch = per_device * grad_accum * num_gpus
    mean = total / n
    normalizer = mean * global_batch
    assert math.isfinite(normalizer) and normalizer > 0
    return NormalizerResult(
        normalizer=normalizer,
        mean_tokens=mean,
        global_batch_size=global_batch,
        n_examples=n,
        total_tokens=total,
        per_device_batch_size=per_device,
        gradient_accumulation_steps=grad_accum,
        num_gpus=num_gpus,
        cutoff_len=cutoff_len,
        template=template,
        packing=packing,
        dataset=dataset,
    )
