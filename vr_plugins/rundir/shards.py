"""Sharding: ``--shard i/N`` or automatic from torchrun (RANK/WORLD_SIZE) and SLURM variables.

A question belongs to shard ``prompt_idx % N``: stable across runs and restarts, so shard outputs merge
by prompt_idx without a coordinator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vr_plugins.errors import UserError


class ShardError(UserError, ValueError):
    """A ``--shard`` value (or RANK/WORLD_SIZE, SLURM_PROCID/SLURM_NTASKS) that names no shard."""


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def __post_init__(self):
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ShardError(f"invalid shard {self.index}/{self.count}: need 0 <= i < N")

    @property
    def is_whole(self) -> bool:
        return self.count == 1

    def owns(self, prompt_idx: int) -> bool:
        return prompt_idx % self.count == self.index

    @property
    def suffix(self) -> str:
        """File-name suffix of this shard's output (empty for an unsharded run)."""
        return "" if self.is_whole else f".shard-{self.index:05d}-of-{self.count:05d}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str | None) -> Shard:
    """``"i/N"`` -> Shard; None or empty -> from the environment (torchrun, SLURM) or the whole run."""
    if text:
        try:
            i, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise ShardError(f"--shard expects 'i/N' with integers, e.g. 0/8; got {text!r}") from None
        return Shard(i, n)
    for rank_var, size_var in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if os.environ.get(rank_var) is not None and os.environ.get(size_var) is not None:
            return Shard(int(os.environ[rank_var]), int(os.environ[size_var]))
    return Shard()
