"""Per-token weights in the SFT collator's batches (``vr_token_weights``, float32, aligned with labels).

Weights are taken out of the features before LLaMA-Factory's collator runs (it would cast float tensors
to the compute dtype and pass unknown keys to the tokenizer's pad), expanded per token (a plain example:
its weight on every token; a packed row: each segment's weight, segments starting where position_ids is
0, padding 0), then padded on the tokenizer's padding side to the batch's final length.
"""

from __future__ import annotations

import functools

from vr_plugins.hosts.llamafactory import keys as K


def token_weights_of(feature: dict) -> list[float] | None:
    weight = feature.pop(K.EXAMPLE_WEIGHT, None)
    segments = feature.pop(K.SEGMENT_WEIGHTS, None)
    length = len(feature["input_ids"])
    if weight is not None:
        return [float(weight)] * length
    if segments is None:
        return None
    positions = feature.get("position_ids")
    if positions is None or len(positions) != length:
        raise RuntimeError("a packed row with segment weights has no position_ids of its length")
    out, segment = [], -1
    for position in positions:
        if position == 0:
            segment += 1
        out.append(float(segments[segment]) if segment < len(segments) else 0.0)
    return out


def pad_weights(rows: list[list[float]], length: int, side: str):
    import torch

    padded = []
    for row in rows:
        if len(row) > length:
            raise RuntimeError(f"collated batch is shorter ({length}) than a row's weights ({len(row)})")
        fill = [0.0] * (length - len(row))
        padded.append(row + fill if side == "right" else fill + row)
    return torch.tensor(padded, dtype=torch.float32)


def install(module) -> None:
    cls = module.SFTDataCollatorWith4DAttentionMask
    if getattr(cls, K.PATCHED, False):
        return
    original = cls.__call__

    @functools.wraps(original)
    def __call__(self, features):
        rows = [token_weights_of(feature) for feature in features]
        if all(row is None for row in rows):
            return original(self, features)
        if any(row is None for row in rows):
            raise RuntimeError("a batch mixes examples with and without weights")
        batch = original(self, features)
        batch[K.TOKEN_WEIGHTS] = pad_weights(rows, batch["labels"].shape[-1], self.tokenizer.padding_side)
        return batch

    cls.__call__ = __call__
    setattr(cls, K.PATCHED, True)
