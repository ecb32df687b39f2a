"""The ``verify`` step: RUN/rollouts/seed-<k>.parquet + questions.parquet -> RUN/verified/seed-<k>.parquet.

Each rollout is graded by the verifier registered for its question's source family, in a
:class:`~vr_plugins.verify.pool.CheckPool` (a hard kill per item: CPU budget for math, wall clock otherwise). Bad input fails before
anything is written: rollouts whose prompt_idx is not in questions.parquet, families no verifier
handles. Per-row problems (no gold and no reference answer, invalid tests) are graded incorrect with a
reason and counted as errors in the summary, never passed silently. Resumable (parts) and shardable
(``prompt_idx % N``) like the other data steps.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator

import pyarrow.parquet as pq

from vr_plugins.data import common
from vr_plugins.registry import get_verifier_for_family
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.io import RunDirError, check_columns, check_unique, read_table
from vr_plugins.rundir.parts import PartWriter
from vr_plugins.rundir.shards import Shard
from vr_plugins.rundir.step import SeedOutputs, StepOptionError, StepReport
from vr_plugins.verify.pool import CheckPool, Item

STEP = "verify"
KEYS = [C.PROMPT_IDX, C.SEED, C.ROLLOUT_IDX]
#: reason prefixes the summary counts (the checkers and the pool produce exactly these)
TIMEOUT_PREFIXES = ("timeout",)
ERROR_PREFIXES = ("checker ", "invalid tests", "no gold answer")
#: question columns sent to the checkers (reference_think is large and no verifier needs it)
ROW_COLUMNS = (C.PROMPT_IDX, C.QUESTION, C.REFERENCE_SOLUTION, C.SOURCE, C.GOLD_ANSWER, C.TESTS)
SANDBOX_STARTUP_S = 10.0  # pool backstop beyond the sandbox's own limit for a code item


@dataclass
class FamilyStats:
    rows: int = 0
    correct: int = 0
    timeouts: int = 0
    errors: int = 0

    def add(self, correct: bool, reason: str) -> None:
        self.rows += 1
        self.correct += bool(correct)
        self.timeouts += reason.startswith(TIMEOUT_PREFIXES)
        self.errors += reason.startswith(ERROR_PREFIXES)


@dataclass
class VerifyReport(StepReport):
    checked: int = 0
    restarts: int = 0
    families: dict[str, FamilyStats] = field(default_factory=dict)  # over every row of the outputs

    math_grader: str = ""

    def table(self) -> str:
        lines = [f"{'family':<16}{'rows':>8}{'correct':>9}{'rate':>8}{'timeouts':>10}{'errors':>8}"]
        for fam, s in sorted(self.families.items()):
            rate = s.correct / s.rows if s.rows else 0.0
            lines.append(f"{fam:<16}{s.rows:>8}{s.correct:>9}{rate:>8.3f}{s.timeouts:>10}{s.errors:>8}")
        timeouts = sum(s.timeouts for s in self.families.values())
        lines.append(f"timeouts: {timeouts} rollout(s) graded incorrect, timeout (counted in 'timeouts', "
                     f"never as a plain wrong answer; reason column says which limit)")
        if self.math_grader:
            lines.append(f"math grader: {self.math_grader}")
        return "\n".join(lines)


def check_row(check_target: str, row: dict, response: str, options: dict) -> tuple[bool, str]:
    """Runs in a pool worker: the verifier's check on one rollout."""
    from vr_plugins.types import resolve

    return resolve(check_target)(row, response, options)


def _target_name(check) -> str:
    if isinstance(check, str):
        return check
    return f"{check.__module__}:{check.__qualname__}"


def rollout_files(run_dir: Path, seeds: list[int] | None) -> dict[int, Path]:
    folder = run_dir / C.ROLLOUTS_DIR
    found = {}
    for f in sorted(folder.glob("seed-*.parquet")) if folder.exists() else []:
        try:
            found[int(f.stem.split("-", 1)[1])] = f
        except ValueError:
            continue  # unmerged shard files of an unfinished rollout step
    if seeds is not None:
        missing = [s for s in seeds if s not in found]
        if missing:
            raise RunDirError(f"{folder}: no rollout file for seed(s) {missing}")
        found = {s: found[s] for s in seeds}
    if not found:
        raise RunDirError(f"{folder}: no rollout files seed-<k>.parquet; run `vr-tools rollout` first")
    return found


MATH_CHECK = "vr_plugins.verify.math:check"


def math_backstop_s(cpu_s: float) -> float:
    """Wall-clock backstop of a CPU-budgeted math check: generous, so load never reaches it."""
    return max(60.0, 20.0 * cpu_s)


def _item_limits(verifier, row: dict, options: dict) -> tuple[float, float | None]:
    """``(wall-clock seconds, CPU seconds or None)`` of one item. Math checks are budgeted in CPU time
    (the same grades on a busy machine as on an idle one); plugin checks keep a wall clock."""
    if verifier.check == MATH_CHECK:
        return math_backstop_s(options["timeout_s"]), options["timeout_s"]
    return _item_timeout(verifier, row, options), None


def _item_timeout(verifier, row: dict, options: dict) -> float:
    if verifier.check != "vr_plugins.verify.code:check":
        return options["timeout_s"]
    from vr_plugins.verify.code import TestFormatError, parse_tests

    try:
        n = len(parse_tests(row.get(C.TESTS)).inputs)
    except TestFormatError:
        n = 0
    return options["code_timeout_s"] * (n + 1) + SANDBOX_STARTUP_S


def verify(run_dir: str | os.PathLike, *, workers: int | None = None, timeout_s: float = 5.0,
           code_timeout_s: float = 6.0, memory_mb: int = 2048, math_backend: str = "vr",
           seeds: list[int] | None = None, shard: Shard = Shard(), force: bool = False,
           part_rows: int = 512) -> VerifyReport:
    """Grade every rollout of this shard; returns counts and the per-family summary of the outputs."""
    run_dir = Path(run_dir)
    if timeout_s <= 0 or code_timeout_s <= 0:
        raise StepOptionError("--timeout and --code-timeout must be > 0")
    from vr_plugins.verify.math import BACKENDS

    if math_backend not in BACKENDS:
        raise StepOptionError(f"--math-backend must be one of {', '.join(BACKENDS)}, got {math_backend!r}")
    questions = common.load_questions(run_dir)
    cols = [c for c in ROW_COLUMNS if c in questions.column_names]
    rows = {r[C.PROMPT_IDX]: r for r in questions.select(cols).to_pylist()}
    files = rollout_files(run_dir, seeds)
    verifiers = {}
    for r in rows.values():  # every family must have a verifier before anything runs
        fam = C.source_family(r[C.SOURCE] or "")
        if fam not in verifiers:
            verifiers[fam] = get_verifier_for_family(fam)
    for f in files.values():
        try:
            schema = pq.read_schema(f)
        except Exception as exc:  # noqa: BLE001 - re-raised naming the file
            raise RunDirError(f"{f}: not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
        check_columns(schema, [C.PROMPT_IDX, C.ROLLOUT_IDX, C.RESPONSE], f)
        key_cols = [c for c in KEYS if c in schema.names]
        table = read_table(f, columns=key_cols)
        check_unique(table, key_cols, f)
        unknown = sorted(set(table[C.PROMPT_IDX].to_pylist()) - set(rows))
        if unknown:
            raise RunDirError(f"{f}: {len(unknown)} prompt_idx not in {C.QUESTIONS_FILE} (e.g. {unknown[:10]}); "
                              f"the rollouts belong to another run directory or questions.parquet was rewritten")

    options = {"timeout_s": timeout_s, "code_timeout_s": code_timeout_s, "memory_mb": memory_mb,
               "math_backend": math_backend}
    outputs = SeedOutputs(run_dir, STEP, C.VERIFIED_DIR, files, C.VERIFIED_SCHEMA, KEYS, shard)
    outputs.begin(options, force)
    report = VerifyReport()
    start = time.time()
    with CheckPool("vr_plugins.verify.step:check_row", workers=workers) as pool:
        for seed, f in files.items():
            if not outputs.complete(seed):
                # rows stream from the rollout file, so the keys owned are not known up front: each
                # one already written is skipped (and counted) as it comes
                items = _items(f, seed, rows, verifiers, options, shard, outputs.done(seed), report)
                _grade(pool, items, outputs.writers[seed], part_rows, f"verify seed {seed} {shard}", report)
            outputs.finish(seed)  # seed by seed: a kill later on leaves this seed's file done
        report.restarts = pool.restarts
    outputs.close(report, start)
    report.families = summarize(report.outputs, rows)
    from vr_plugins.verify.math import grader_name

    report.math_grader = grader_name(math_backend)
    return report


def _items(path: Path, seed: int, rows, verifiers, options, shard: Shard, done: set, report) -> Iterator[Item]:
    pf = pq.ParquetFile(path)
    names = [C.PROMPT_IDX, C.ROLLOUT_IDX, C.RESPONSE] + ([C.SEED] if C.SEED in pf.schema_arrow.names else [])
    for batch in pf.iter_batches(batch_size=1024, columns=names):
        for r in batch.to_pylist():
            pidx, j = r[C.PROMPT_IDX], r[C.ROLLOUT_IDX]
            if not shard.owns(pidx):
                continue
            if (pidx, seed, j) in done:
                report.skipped += 1
                continue
            row = rows[pidx]
            verifier = verifiers[C.source_family(row[C.SOURCE] or "")]
            yield Item((pidx, seed, j), [_target_name(verifier.check), row, r[C.RESPONSE] or "", options],
                       *_item_limits(verifier, row, options))


def _grade(pool: CheckPool, items, writer: PartWriter, part_rows: int, desc: str, report) -> None:
    from vr_plugins.data.progress import bar

    buffer = []
    with bar(None, desc, unit="check") as pbar:
        for out in pool.run(items):
            pidx, seed, j = out.key
            buffer.append({C.PROMPT_IDX: pidx, C.SEED: seed, C.ROLLOUT_IDX: j, C.CORRECT: out.correct,
                           C.REASON: out.reason})
            report.checked += 1
            pbar.update(1)
            if len(buffer) >= part_rows:
                writer.write_rows(buffer)
                buffer = []
        writer.write_rows(buffer)


def summarize(paths: list[Path], rows: dict) -> dict[str, FamilyStats]:
    stats: dict[str, FamilyStats] = {}
    for p in paths:
        if not p.exists():
            continue
        t = pq.read_table(p, columns=[C.PROMPT_IDX, C.CORRECT, C.REASON])
        for pidx, ok, reason in zip(*(t[c].to_pylist() for c in (C.PROMPT_IDX, C.CORRECT, C.REASON))):
            fam = C.source_family(rows[pidx][C.SOURCE] or "")
            stats.setdefault(fam, FamilyStats()).add(ok, reason or "")
    return stats
