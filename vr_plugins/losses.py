"""The constant-normaliser SFT loss, host-agnostic (docs/method.md section 4).

    loss(micro-batch) = sum over supervised tokens of NLL(token) [x weight(token)] / C

C is a constant fixed for the whole run (``vr-tools normalizer`` computes it). Because the loss of a
micro-batch is a plain sum divided by a constant, the gradient of an optimiser step is the sum over every
sequence of the global batch divided by C, whatever the split into gradient-accumulation steps, devices or
packed rows: a sequence's weight never depends on its companions. The host adapter only has to make sure
the host neither averages over accumulation steps nor over devices (see ``hosts/llamafactory/trainer.py``).

Labels are given UNSHIFTED (``labels[:, t]`` is the target of ``logits[:, t - 1]``), the convention of
Hugging Face causal LMs and of ``Trainer.compute_loss_func``. torch is imported lazily so registering the
loss costs nothing.

Two ways to the same value:

- :func:`constant_normalized_nll` takes the logits [batch, seq, vocab] (what a model returns);
- :func:`constant_normalized_nll_from_hidden` takes the final hidden states and the output layer's weight
  and never builds the [tokens x vocab] logits: only the supervised rows go through the output layer,
  ``chunk`` rows at a time (:class:`LinearNLLSum`). At a 32k-token sequence and a 152k vocabulary the
  logits path needs 20 GB of float32 logits per sequence (plus the model-dtype logits and the gradient of
  each); this one needs one chunk (``chunk x vocab x 4`` bytes) and a float32 [vocab x hidden] gradient.
  On a CUDA device with ``liger-kernel`` installed it calls Liger's fused linear cross-entropy instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Real
from typing import Any

from vr_plugins.errors import UserError

IGNORE_INDEX = -100
#: supervised rows per output-layer chunk of the hidden-state loss: 1024 x 151,665 x 4 B = 621 MB
LOSS_CHUNK_ROWS = 1024


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

    shift_labels, shift_weights = _shifted(labels, token_weights, ignore_index, logits.device)
    vocab = logits.shape[-1]
    nll = F.cross_entropy(
        logits.float().reshape(-1, vocab), shift_labels.reshape(-1), ignore_index=ignore_index, reduction="none"
    )
    if shift_weights is not None:
        nll = nll * shift_weights.reshape(-1)
    # ignored positions contribute exactly 0; an all-ignored batch still yields a loss connected to the
    # graph, so every rank runs the same backward (DDP / ZeRO)
    return nll.sum() / normalizer


def _supervised_rows(hidden, labels, token_weights, ignore_index: int):
    """(rows [N, H], targets [N], weights [N] float32 or None) of the supervised, non-zero-weight positions.

    hidden: [B, T, H]; labels, token_weights: [B, T] unshifted (the hidden state at t predicts label t + 1).
    """
    shift_labels, shift_weights = _shifted(labels, token_weights, ignore_index, hidden.device)  # [B, T]
    keep = shift_labels != ignore_index
    weights = None
    if shift_weights is not None:
        keep &= shift_weights != 0  # a weight of 0 contributes nothing: skip its row
        weights = shift_weights[keep]
    return hidden[keep], shift_labels[keep], weights


def _shifted(labels, token_weights, ignore_index: int, device):
    """Labels and float32 token weights shifted one position left (aligned with the hidden state or logits
    that predicts them), on ``device``; weights None when not given."""
    import torch
    import torch.nn.functional as F

    shift_labels = F.pad(labels, (0, 1), value=ignore_index)[:, 1:].to(device)
    if token_weights is None:
        return shift_labels, None
    if tuple(token_weights.shape) != tuple(labels.shape):
        raise LossConfigError(
            f"token weights have shape {tuple(token_weights.shape)}, labels {tuple(labels.shape)}: the "
            "collator and the batch disagree"
        )
    return shift_labels, F.pad(token_weights, (0, 1), value=0.0)[:, 1:].to(device, dtype=torch.float32)


def _linear_nll_sum_class():
    import torch

    from vr_plugins.lm_head import ChunkBuffers, logits_into

    class LinearNLLSum(torch.autograd.Function):
        """sum_i w_i x NLL_i of rows through the output layer, chunk by chunk; gradients computed in forward.

        Naive equivalent: ``(F.cross_entropy((hidden @ weight.T).float(), targets, reduction="none") * w).sum()``.
        Each chunk's logits go into one reused float32 buffer; the softmax gradient is formed in the same
        buffer, right after the chunk's loss, and multiplied into the hidden-state and weight gradients at
        once (Liger's order). Recomputing the logits in the backward pass instead (TRL's order) would cost a
        fourth [rows x hidden x vocab] multiply per step for the same peak: the buffers are alive at the
        loss either way. The weight gradient is accumulated in float32 and cast to the weight's dtype once.
        """

        @staticmethod
        def forward(ctx, hidden, weight, targets, weights, buffers, want_grad):
            # hidden: [N, H] model dtype; weight: [V, H]; targets: [N]; weights: [N] float32 or None
            n_rows, vocab = hidden.shape[0], weight.shape[0]
            param_dtype = weight.dtype
            # under autocast the trunk hands over hidden states in the compute dtype: multiply in that dtype
            weight = weight if weight.dtype == hidden.dtype else weight.to(hidden.dtype)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad_hidden = torch.empty_like(hidden) if want_grad[0] else None  # [N, H]
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_grad[1] else None
            for start in range(0, n_rows, buffers.chunk):
                end = min(start + buffers.chunk, n_rows)
                rows = hidden[start:end]  # [n, H]
                logits, low = buffers.get(end - start, vocab, weight.dtype, hidden.device)  # [n, V] float32
                logits_into(logits, low, rows, weight)
                target = targets[start:end, None]  # [n, 1]
                picked = logits.gather(1, target).squeeze(1)  # [n]
                peak = logits.amax(dim=-1, keepdim=True)  # [n, 1]
                logits.sub_(peak).exp_()
                sums = logits.sum(dim=-1)  # [n]
                nll = torch.log(sums).add_(peak.squeeze(1)).sub_(picked)  # [n]
                w = None if weights is None else weights[start:end]
                total += (nll if w is None else nll * w).sum()
                if grad_hidden is None and grad_weight is None:
                    continue
                # d(w x nll)/d logits = w x (softmax - onehot(target)), in place in the buffer
                scale = (1.0 / sums) if w is None else (w / sums)
                logits.mul_(scale[:, None])
                logits.scatter_add_(1, target, (-torch.ones_like(sums) if w is None else -w)[:, None])
                grad = logits if low is None else low.copy_(logits)  # [n, V] in the weight's dtype
                if grad_hidden is not None:
                    torch.mm(grad, weight, out=grad_hidden[start:end])
                if grad_weight is not None:
                    if low is None:
                        grad_weight.addmm_(grad.t(), rows)
                    else:
                        grad_weight.add_(torch.mm(grad.t(), rows))
            ctx.save_for_backward(grad_hidden, None if grad_weight is None else grad_weight.to(param_dtype))
            return total

        @staticmethod
        def backward(ctx, grad_output):
            grad_hidden, grad_weight = ctx.saved_tensors
            return (None if grad_hidden is None else grad_hidden * grad_output.to(grad_hidden.dtype),
                    None if grad_weight is None else grad_weight * grad_output.to(grad_weight.dtype),
                    None, None, None, None)

    return LinearNLLSum, ChunkBuffers


_CLASSES = None


def _classes():
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _linear_nll_sum_class()
    return _CLASSES


def linear_nll_sum(hidden, weight, targets, weights=None, buffers=None):
    """sum of NLL [x weight] of ``targets`` under ``hidden @ weight.T``, chunked; a scalar tensor with autograd.

    hidden: [N, H]; weight: [V, H]; targets: [N]; weights: [N] float32 or None. ``buffers`` is a reused
    :class:`vr_plugins.lm_head.ChunkBuffers` (default: a fresh one of :data:`LOSS_CHUNK_ROWS` rows).
    """
    import torch

    cls, buffer_cls = _classes()
    buffers = buffers or buffer_cls(LOSS_CHUNK_ROWS)
    grad_on = torch.is_grad_enabled()
    want = (grad_on and hidden.requires_grad, grad_on and weight.requires_grad)
    return cls.apply(hidden, weight, targets, weights, buffers, want)


def liger_available(device) -> bool:
    """Liger's fused linear cross-entropy can run: a CUDA tensor and the ``liger-kernel`` package."""
    if getattr(device, "type", str(device)) != "cuda":
        return False
    import importlib.util

    return importlib.util.find_spec("liger_kernel") is not None


def liger_nll_sum(hidden, weight, targets, weights=None):
    """The same sum through Liger's fused kernel (reduction "sum"), one call per distinct weight value.

    Liger weighs classes, not tokens; the example weights of a micro-batch take few values (one per
    packed segment at most), so sum_w w x FusedLCE_sum(rows of weight w) is exact and cheap.
    """
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    def fused(rows, labels):
        out = liger_fused_linear_cross_entropy(rows, weight, labels, reduction="sum")
        out = out[0] if isinstance(out, tuple) else getattr(out, "loss", out)
        return out.float()

    if weights is None:
        return fused(hidden, targets)
    total = None
    for value in weights.unique().tolist():
        pick = weights == value
        part = fused(hidden[pick], targets[pick]) * value
        total = part if total is None else total + part
    return total if total is not None else (hidden.sum() * 0.0 + weight.sum() * 0.0).float()


def constant_normalized_nll_from_hidden(hidden, weight, labels, normalizer: float, token_weights=None,
                                        ignore_index: int = IGNORE_INDEX, buffers=None, use_liger: bool | None = None):
    """:func:`constant_normalized_nll` of the logits ``hidden @ weight.T``, without building them.

    hidden: [B, T, H] final hidden states (after the model's last norm); weight: [V, H] (lm_head, no bias);
    labels, token_weights: [B, T] unshifted. ``use_liger`` defaults to :func:`liger_available`.
    """
    rows, targets, weights = _supervised_rows(hidden, labels, token_weights, ignore_index)
    if use_liger is None:
        use_liger = liger_available(hidden.device)
    total = liger_nll_sum(rows, weight, targets, weights) if use_liger else linear_nll_sum(rows, weight, targets, weights, buffers)
    # an all-ignored batch still yields a loss connected to the graph (DDP / ZeRO run the same backward)
    return total / normalizer


def make_constant_normalizer_loss(normalizer: float, scale: float = 1.0) -> Callable:
    """The loss callable ``loss(logits, labels, token_weights=None)`` for a fixed C.

    ``scale`` compensates a host that divides the gradient by something the formula must not see (for
    example the number of data-parallel processes when the host does not multiply it back). The callable
    also has ``loss.from_hidden(hidden, weight, labels, token_weights=None)``: the same value from the final
    hidden states and the output layer (:func:`constant_normalized_nll_from_hidden`), reusing one set of
    chunk buffers across calls.
    """
    normalizer = validate_normalizer(normalizer)
    buffers = []

    def loss(logits, labels, token_weights=None):
        value = constant_normalized_nll(logits, labels, normalizer, token_weights)
        return value * scale if scale != 1.0 else value

    def from_hidden(hidden, weight, labels, token_weights=None):
        if not buffers:
            from vr_plugins.lm_head import ChunkBuffers

            buffers.append(ChunkBuffers(LOSS_CHUNK_ROWS))
        value = constant_normalized_nll_from_hidden(hidden, weight, labels, normalizer, token_weights, buffers=buffers[0])
        return value * scale if scale != 1.0 else value

    loss.normalizer = normalizer
    loss.from_hidden = from_hidden
    return loss
