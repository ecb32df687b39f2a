"""Carry example weights through LLaMA-Factory's supervised processors (plain and packed).

The processors keep only the keys they know, so they are wrapped, not copied: tokenisation, truncation and
packing stay LLaMA-Factory's own. The plain processor's output rows are the valid input examples in order,
so each row gets its example's weight (``vr_weight``). The packed processor mixes examples into rows; the
wrapper records the token ids of every encoded example, replays LLaMA-Factory's deterministic knapsack
assignment, checks that each replayed segment is token-for-token the segment in the row, and stores the
row's per-segment weights (``vr_segment_weights``); the collator expands them to per-token weights.
"""

from __future__ import annotations

import functools
from collections import defaultdict

from vr_plugins.hosts.llamafactory import keys as K

RECORD_ATTR = "_vr_encoded"


class PackingLayoutError(RuntimeError):
    """The packed rows do not match the replayed packing (an untested LLaMA-Factory change)."""


def _weights_on(processor) -> bool:
    return bool(getattr(processor.data_args, K.DATA_WEIGHTS_FLAG, False))


def _batch_weights(examples) -> list[float]:
    if K.ALIGNED_WEIGHT not in examples:
        raise RuntimeError(
            "use_sample_weights is on but the aligned dataset has no weights: a dataset was converted without "
            "the plugin (tokenized_path from an earlier run?). Re-run with overwrite_cache: true."
        )
    return list(examples[K.ALIGNED_WEIGHT])


def _valid_indices(examples) -> list[int]:
    """The examples LLaMA-Factory encodes (it drops malformed prompt/response pairs first)."""
    return [
        i
        for i in range(len(examples["_prompt"]))
        if len(examples["_prompt"][i]) % 2 == 1 and len(examples["_response"][i]) == 1
    ]


def install(module) -> None:
    plain_cls = module.SupervisedDatasetProcessor
    packed_cls = module.PackedSupervisedDatasetProcessor
    if getattr(plain_cls, K.PATCHED, False):
        return
    encode = plain_cls._encode_data_example
    plain = plain_cls.preprocess_dataset
    packed = packed_cls.preprocess_dataset
    knapsack = module.greedy_knapsack

    @functools.wraps(encode)
    def _encode_data_example(self, *args, **kwargs):
        input_ids, labels = encode(self, *args, **kwargs)
        record = self.__dict__.get(RECORD_ATTR)
        if record is not None:
            record.append(input_ids)
        return input_ids, labels

    @functools.wraps(plain)
    def preprocess_plain(self, examples):
        if not _weights_on(self):
            return plain(self, examples)
        weights = _batch_weights(examples)
        valid = _valid_indices(examples)
        out = plain(self, examples)
        if len(out["input_ids"]) != len(valid):
            raise PackingLayoutError(f"expected {len(valid)} processed rows, got {len(out['input_ids'])}")
        out[K.EXAMPLE_WEIGHT] = [float(weights[i]) for i in valid]
        return out

    @functools.wraps(packed)
    def preprocess_packed(self, examples):
        if not _weights_on(self):
            return packed(self, examples)
        weights = _batch_weights(examples)
        valid = _valid_indices(examples)
        self.__dict__[RECORD_ATTR] = []
        try:
            out = packed(self, examples)
            encoded = self.__dict__[RECORD_ATTR]
        finally:
            self.__dict__.pop(RECORD_ATTR, None)
        out[K.SEGMENT_WEIGHTS] = replay_packing(
            encoded, [weights[i] for i in valid], out["input_ids"], self.data_args.cutoff_len, knapsack
        )
        return out

    plain_cls._encode_data_example = _encode_data_example
    plain_cls.preprocess_dataset = preprocess_plain
    packed_cls.preprocess_dataset = preprocess_packed
    setattr(plain_cls, K.PATCHED, True)


def replay_packing(encoded, weights, rows, cutoff_len, knapsack) -> list[list[float]]:
    """Per-row segment weights, replaying the packed processor's assignment (0.9.5: supervised.py:146)."""
    if len(encoded) != len(weights):
        raise PackingLayoutError(f"{len(encoded)} encoded examples for {len(weights)} weights")
    kept = [(ids, float(w)) for ids, w in zip(encoded, weights) if len(ids) <= cutoff_len]
    lengths = [len(ids) for ids, _ in kept]
    length2indexes = defaultdict(list)
    for index, length in enumerate(lengths):
        length2indexes[length].append(index)
    knapsacks = knapsack(list(lengths), cutoff_len)
    if len(knapsacks) != len(rows):
        raise PackingLayoutError(f"replayed {len(knapsacks)} packed rows, LLaMA-Factory produced {len(rows)}")
    segment_weights = []
    for sack, row in zip(knapsacks, rows):
        position, row_weights = 0, []
        for length in sack:
            ids, weight = kept[length2indexes[length].pop()]
            if list(row[position : position + length]) != list(ids):
                raise PackingLayoutError("a replayed packed segment differs from LLaMA-Factory's packed row")
            row_weights.append(weight)
            position += length
        segment_weights.append(row_weights)
    return segment_weights
