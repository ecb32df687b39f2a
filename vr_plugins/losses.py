"""The constant-normaliser SFT loss, host-agnostic (METHOD.md section 4).

    loss(micro-batch) = sum over supervised tokens of NLL(token) [x weight(token)] / C

C is a constant fixed for the whole run (``vr-tools normalizer`` computes it). Because the loss of a
micro-batch is a plain sum divided by a constant, the gradient of an optimiser step is the sum over every
sequence of the global batch divided by C, whatever the split into gradient-accumulation steps, devices or
packed rows: a sequence's weight never depends on its companions. The host adapter only has to make sure
the host neither averages over accumulation steps nor over devices (see ``hosts/llamafactory/trainer.py``).

Labels are given UNSHIFTED (``labels[:, t]`` is the target of ``logits[:, t - 1]``), the convention of
Hugging Face causal LMs and of ``Trainer.compute_loss_func``. torch is imported lazily so registering the
loss costs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any

from vr_plugins.errors import UserError

IGNORE_INDEX = -100


class LossConfigError(UserError, ValueError):
    """A loss option (normaliser, weights) is missing or invalid."""


def validate_normalizer(value: Any, key: str = "constant_loss_normalizer") -> float:
    """Return ``value`` as a float, or raise naming ``key`` when it is not a positive finite number."""
    hint = " Compute it with `vr-tools normalizer --dataset ... --recipe ...` and paste the printed line."
    if value is None:
        raise LossConfigError(f"{key} is missing (empty).{hint}")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise LossConfigError(f"{key} must be a number, got {type(value).__name__} {value!r}.{hint}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise LossConfigError(f"{key} must be a positive finite number, got {value!r}.{hint}")
    return value


def validate_weight(value: Any, where: str) -> float:
    """One example weight: a finite number >= 0 (0 drops the example from the gradient)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise LossConfigError(f"{where}: weight must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise LossConfigError(f"{where}: weight must be finite and >= 0, got {value!r}")
    return value


def first_bad_weight(values) -> tuple[int, Any] | None:
    """Index and value of the first weight that is missing, NaN, infinite or negative (vectorised)."""
    import numpy as np

    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        for i, v in enumerate(values):
            try:
                validate_weight(v, "")
            except LossConfigError:
                return i, v
        return None
    bad = ~np.isfinite(arr) | (arr < 0)
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    return i, values[i]


def constant_normalized_nll(logits, labels, normalizer: float, token_weights=None, ignore_index: int = IGNORE_INDEX):
    """sum over supervised tokens of NLL [x token weight] / ``normalizer``: a scalar tensor.

    ``token_weights`` (optional) has the shape of ``labels`` and is aligned with it (the weight of the
    token ``labels[:, t]``); prompt and padding positions may hold anything, they are masked out. As in
    transformers' own causal-LM loss, the labels are shifted (not the logits, whose slicing would cost a
    full-size copy in the backward pass) and the logits are upcast to float32 once.
    """
    import torch.nn.functional as F

    shift_labels = F.pad(labels, (0, 1), value=ignore_index)[:, 1:].to(logits.device)
    vocab = logits.shape[-1]
    nll = F.cross_entropy(
        logits.float().reshape(-1, vocab), shift_labels.reshape(-1), ignore_index=ignore_index, reduction="none"
    )
    if token_weights is not None:
        if tuple(token_weights.shape) != tuple(labels.shape):
            raise LossConfigError(
                f"token weights have shape {tuple(token_weights.shape)}, labels {tuple(labels.shape)}: the "
                "collator and the batch disagree"
            )
        shift_weights = F.pad(token_weights, (0, 1), value=0.0)[:, 1:].to(nll.device, dtype=nll.dtype)
        nll = nll * shift_weights.reshape(-1)
    # ignored positions contribute exactly 0; an all-ignored batch still yields a loss connected to the
    # graph, so every rank runs the same backward (DDP / ZeRO)
    return nll.sum() / normalizer


def make_constant_normalizer_loss(normalizer: float, scale: float = 1.0) -> Callable:
    """The loss callable ``loss(logits, labels, token_weights=None)`` for a fixed C.

    ``scale`` compensates a host that divides the gradient by something the formula must not see (for
    example the number of data-parallel processes when the host does not multiply it back).
    """
    normalizer = validate_normalizer(normalizer)

    def loss(logits, labels, token_weights=None):
        value = constant_normalized_nll(logits, labels, normalizer, token_weights)
        return value * scale if scale != 1.0 else value

    loss.normalizer = normalizer
    return loss
