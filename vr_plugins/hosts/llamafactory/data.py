"""Dataset side of the adapter: dataset_info.json columns, the registered formats, example weights.

- ``DatasetAttr.join`` keeps the entry's whole ``columns`` mapping (LLaMA-Factory copies only the keys it
  knows, so ``question``/``think``/``solution``/``weight`` would be dropped silently).
- every registered dataset format becomes a LLaMA-Factory converter (``formatting: vr_build`` ...).
- with ``use_sample_weights`` every dataset, whatever its formatting (alpaca and sharegpt included), must
  have a weight column (``weight``, or the entry's ``columns.weight``); ``align_dataset`` checks it before
  the conversion (naming the file and the first bad row) and the converter carries it as ``_vr_weight``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from vr_plugins.hosts.llamafactory import keys as K
from vr_plugins.losses import LossConfigError, first_bad_weight, validate_weight
from vr_plugins.rundir import columns as rc


class SampleWeightError(LossConfigError):
    """use_sample_weights is on and a dataset's weight column is missing or invalid."""


def install_dataset_attr(parser_module) -> None:
    cls = parser_module.DatasetAttr
    if getattr(cls.join, K.PATCHED, False):
        return
    original = cls.join

    @functools.wraps(original)
    def join(self, attr: dict[str, Any]) -> None:
        original(self, attr)
        setattr(self, K.DATASET_COLUMNS_ATTR, dict(attr.get("columns") or {}))

    setattr(join, K.PATCHED, True)
    cls.join = join


def weight_column(dataset_attr) -> str:
    columns = getattr(dataset_attr, K.DATASET_COLUMNS_ATTR, None) or {}
    return columns.get("weight", rc.WEIGHT)


def weights_on(data_args) -> bool:
    return bool(getattr(data_args, K.DATA_WEIGHTS_FLAG, False))


def _where(dataset_attr, data_args) -> str:
    return f"dataset {dataset_attr.dataset_name!r} (dataset_dir {getattr(data_args, 'dataset_dir', '?')!r})"


@dataclass
class WeightedConverter:
    """Wraps any converter and adds the validated example weight as ``_vr_weight``."""

    inner: Any
    column: str
    where: str

    def __call__(self, example: dict[str, Any]) -> dict[str, Any]:
        out = self.inner(example)
        if self.column not in example:
            raise SampleWeightError(f"use_sample_weights: {self.where} has no weight column {self.column!r}")
        out[K.ALIGNED_WEIGHT] = validate_weight(example[self.column], f"{self.where}, column {self.column!r}")
        return out


def check_weight_column(dataset, dataset_attr, data_args) -> None:
    """Before conversion: the weight column exists and (when not streaming) every value is valid."""
    column = weight_column(dataset_attr)
    names = getattr(dataset, "column_names", None) or list(next(iter(dataset)).keys())
    where = _where(dataset_attr, data_args)
    if column not in names:
        raise SampleWeightError(
            f"use_sample_weights is on but {where} has no weight column {column!r}; its columns are {sorted(names)}. "
            f"Add the column, or map it in dataset_info.json: \"columns\": {{\"weight\": \"<column>\"}}."
        )
    if hasattr(dataset, "__getitem__") and not getattr(data_args, "streaming", False):
        bad = first_bad_weight(dataset[column])
        if bad is not None:
            row, value = bad
            raise SampleWeightError(
                f"use_sample_weights: {where}, row {row}, column {column!r}: weight must be finite and >= 0, got {value!r}"
            )


def install_converters(converter_module) -> list[str]:
    """Register the formats, and wrap the converter lookup and ``align_dataset`` for weights."""
    from vr_plugins.hosts.llamafactory.converters import RegistryConverter
    from vr_plugins.registry import registry

    added = []
    for name in registry("dataset_formats").names():
        if name not in converter_module.DATASET_CONVERTERS:
            converter_module.register_dataset_converter(name, RegistryConverter)
            added.append(name)

    if getattr(converter_module.align_dataset, K.PATCHED, False):
        return added
    original_get = converter_module.get_dataset_converter
    original_align = converter_module.align_dataset

    @functools.wraps(original_get)
    def get_dataset_converter(name, dataset_attr, data_args):
        converter = original_get(name, dataset_attr, data_args)
        if weights_on(data_args):
            converter = WeightedConverter(converter, weight_column(dataset_attr), _where(dataset_attr, data_args))
        return converter

    @functools.wraps(original_align)
    def align_dataset(dataset, dataset_attr, data_args, training_args):
        if weights_on(data_args):
            check_weight_column(dataset, dataset_attr, data_args)
        return original_align(dataset, dataset_attr, data_args, training_args)

    setattr(align_dataset, K.PATCHED, True)
    converter_module.get_dataset_converter = get_dataset_converter
    converter_module.align_dataset = align_dataset
    return added
