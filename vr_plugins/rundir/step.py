"""The scaffold of a resumable, shardable step that writes one file per seed (sample, score, rollout, verify).

Those steps differ only in their per-row work and their columns. What each must get right in exactly the
same way lives here once, so a fix or a plugin's new step gets it for free:

- **the manifest begin** (:func:`begin_step`): parameters are recorded *before* any part is written,
  because the parts a killed run leaves behind belong to them; a re-run with other parameters is refused
  unless ``force``, which discards the old outputs so nothing of the old settings is resumed or mixed in;
- **one part writer per seed** for this shard (:class:`SeedOutputs`), and **the resume rule**: every key a
  shard owns counts as done once its seed file is complete, else the keys its parts already hold;
- **the end** (:meth:`SeedOutputs.close`): parts -> shard file -> merged file once every shard is in,
  and the merged files recorded as the step's outputs (``mark_complete``), in seed order;
- **the report fields** every step prints (:class:`StepReport`).

Validation stays with each step and runs before :meth:`SeedOutputs.begin`: bad input must leave the run
directory exactly as it was. Only run-directory modules are imported here, so the data and verify steps
depend on this module and never the other way round.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from vr_plugins.errors import UserError
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.manifest import completed_outputs, mark_complete, record_step, step_params
from vr_plugins.rundir.parts import PartWriter
from vr_plugins.rundir.shards import Shard


class StepOptionError(UserError, ValueError):
    """An option of a step that is unknown or out of range (``--n 0``, ``--vllm-mode x``).

    A ``ValueError`` too, so callers that caught the plain ``ValueError`` these options used to raise still do.
    """


@dataclass
class StepReport:
    """What every step reports; a step's report class adds its own counters.

    ``outputs``: the file each seed ended in (the merged file, or this shard's file while others are
    missing), in seed order. ``skipped``: rows an earlier run had already written. ``seconds``: the work.
    """

    outputs: list[Path] = field(default_factory=list)
    skipped: int = 0
    seconds: float = 0.0


@dataclass
class StepStart:
    resumed: bool
    discarded_old_outputs: bool


def begin_step(run_dir: str | os.PathLike, step: str, params: dict[str, Any], outputs: list[Path],
               force: bool) -> StepStart:
    """Record the step's parameters in the manifest (refusing a mismatch unless ``force``).

    When ``force`` replaces different recorded parameters, the step's old outputs (files or folders in
    ``outputs``) are deleted so nothing of the old settings is resumed or mixed in. Outputs that exist
    without a manifest entry (files written by other tools) are kept.
    """
    old = step_params(run_dir, step)
    # a run that failed before writing anything (no outputs, no parts) recorded parameters that guard
    # nothing: the corrected run replaces them without --force
    left_nothing = old is not None and not _has_files(outputs) and not completed_outputs(run_dir, step)
    resumed = record_step(run_dir, step, params, force=force or left_nothing)
    discarded = False
    if old is not None and not resumed:
        for out in outputs:
            if out.is_dir():
                shutil.rmtree(out)
                discarded = True
            elif out.exists():
                out.unlink()
                discarded = True
    return StepStart(resumed=resumed, discarded_old_outputs=discarded)


def _has_files(outputs: list[Path]) -> bool:
    return any(out.is_file() or (out.is_dir() and any(p.is_file() for p in out.rglob("*"))) for out in outputs)


def owned_rows(questions: pa.Table, shard: Shard) -> dict[int, dict]:
    """prompt_idx -> question row, for the questions of ``shard`` (in the table's order)."""
    return {r[C.PROMPT_IDX]: r for r in questions.to_pylist() if shard.owns(r[C.PROMPT_IDX])}


class SeedOutputs:
    """The files ``RUN/<folder>/seed-<k>.parquet`` one shard of a step writes, one part writer per seed.

    Building one touches nothing on disk; :meth:`begin` records the step in the manifest, after the
    step has validated its input.
    """

    def __init__(self, run_dir: str | os.PathLike, step: str, folder: str, seeds: Iterable[int], schema: pa.Schema,
                 keys: list[str], shard: Shard = Shard()):
        self.run_dir = Path(run_dir)
        self.step = step
        self.folder = self.run_dir / folder
        self.shard = shard
        self.writers = {s: PartWriter(self.folder / C.seed_file_name(s), schema, keys, shard) for s in seeds}
        self._finished: dict[int, Path] = {}

    def begin(self, params: dict[str, Any], force: bool) -> StepStart:
        """The manifest begin of :func:`begin_step`, with the step's folder as its outputs."""
        return begin_step(self.run_dir, self.step, params, [self.folder], force)

    # --- resume ------------------------------------------------------------------------------------
    def complete(self, seed: int) -> bool:
        """``seed``'s file of this shard (or the merged file) exists: nothing is left to do for it."""
        return self.writers[seed].complete

    def done(self, seed: int, owned: Iterable[tuple] | None = None) -> set[tuple]:
        """Keys of ``seed`` a resumed run skips.

        With ``owned`` (every key this shard writes for the seed): all of them once the file is complete,
        else those among them that parts of an earlier run hold. Without: the keys written so far.
        """
        writer = self.writers[seed]
        if owned is None:
            return writer.done_keys()
        owned = set(owned)
        return owned if writer.complete else writer.done_keys() & owned

    def resume(self, owned: Callable[[int], Iterable[tuple]], report: StepReport) -> dict[int, set[tuple]]:
        """seed -> :meth:`done` keys, with ``owned(seed)`` the keys this shard writes for each seed;
        counts them as ``report.skipped``."""
        done = {s: self.done(s, owned(s)) for s in self.writers}
        report.skipped = sum(len(keys) for keys in done.values())
        return done

    # --- end ---------------------------------------------------------------------------------------
    def finish(self, seed: int) -> Path:
        """Turn ``seed``'s parts into this shard's file and merge the shards once all are in (once per seed).

        A step that finishes each seed as soon as its rows are written (verify) leaves less to redo
        after a kill; the others leave every seed to :meth:`close`.
        """
        if seed not in self._finished:
            self._finished[seed] = self.writers[seed].finish()
        return self._finished[seed]

    def close(self, report: StepReport, start: float) -> None:
        """End the step: ``report.seconds`` since ``start``, every seed finished into ``report.outputs``
        (seed order), and the merged files recorded in the manifest as the step's outputs."""
        report.seconds = time.time() - start
        report.outputs.extend(self.finish(s) for s in self.writers)
        finals = [str(w.final_path.relative_to(self.run_dir)) for w in self.writers.values() if w.final_path.exists()]
        if finals:
            mark_complete(self.run_dir, self.step, finals)
