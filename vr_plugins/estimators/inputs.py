"""Columnar loading and validation of what an estimator reads from a run directory.

Only scalar columns are read here (ids, token counts, summed log-probs, correctness); texts are read
later, for the selected rows only (:mod:`vr_plugins.estimators.build`), and per-token list columns are
never read. Everything lands in flat numpy arrays: 16,710 questions x 8 traces x 8 rollouts is ~1M
rollout keys, a few tens of MB.

Two modes share one code path so the build and the report can never disagree on what is bad input:

- ``strict=True`` (build): structural problems raise :class:`RunDirError` naming the file and keys;
- ``strict=False`` (report): the same problems are counted in :class:`Problems` and the offending rows
  are dropped, so a report can be written for a broken or partial run.

Per-row rules that apply in both modes (counted, never silent; see docs/estimators.md):
non-finite think log-probs, ``think_tokens == 0`` or ``truncated`` (optional scores column) make a
trace invalid (never a candidate);
``answer_tokens == 0`` or a non-finite ``answer_logp_prior`` make its GML score undefined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vr_plugins.rundir import columns as C
from vr_plugins.rundir.io import RunDirError, check_columns

SEED_FILE_RE = re.compile(r"^seed-(-?\d+)\.parquet$")
SHARD_FILE_RE = re.compile(r"^seed-(-?\d+)\.shard-\d+-of-\d+\.parquet$")
SCORE_COLUMNS = [C.PROMPT_IDX, C.SEED, C.THINK_TOKENS, C.THINK_LOGP_PRIOR, C.THINK_LOGP_POSTERIOR,
                 C.ANSWER_TOKENS, C.ANSWER_LOGP_PRIOR]
KEY3 = [C.PROMPT_IDX, C.SEED, C.ROLLOUT_IDX]
#: optional scores columns (issue 4's scorer) and their value when absent
OPTIONAL_FLAGS = {C.TRUNCATED: False, C.THINK_COMPLETE: True}


@dataclass
class Problems:
    """Counts of bad input by kind, with a few example keys each (what the report shows)."""

    strict: bool = True
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list] = field(default_factory=dict)

    def add(self, kind: str, n: int, examples=(), error: str | None = None) -> None:
        """Record ``n`` rows of ``kind``; in strict mode ``error`` (when given) is raised instead."""
        if n <= 0:
            return
        if self.strict and error is not None:
            raise RunDirError(error)
        self.counts[kind] = self.counts.get(kind, 0) + int(n)
        self.examples.setdefault(kind, []).extend(list(examples)[: 5 - len(self.examples.get(kind, []))])


def seed_files(directory: Path, problems: Problems | None = None) -> list[tuple[int, Path]]:
    """``[(seed, path)]`` of ``seed-<k>.parquet`` files, by seed. Unmerged shard files are an error."""
    if not directory.is_dir():
        return []
    found, shards = {}, set()
    for path in directory.iterdir():
        if m := SEED_FILE_RE.match(path.name):
            found[int(m.group(1))] = path
        elif m := SHARD_FILE_RE.match(path.name):
            shards.add(int(m.group(1)))
    pending = sorted(shards - set(found))
    if pending and problems is not None:
        problems.add("unmerged_shard_files", len(pending), [f"{directory.name}/seed-{s}" for s in pending],
                     error=f"{directory}: seed(s) {pending} have shard files but no merged seed-<k>.parquet; "
                           f"the step is still running or one shard failed (re-run the missing shards)")
    return sorted(found.items())


def _read(path: Path, cols: list[str], schema: pa.Schema) -> pa.Table:
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise RunDirError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
    check_columns(pf.schema_arrow, pa.schema([schema.field(c) for c in cols]), path)
    return pf.read(columns=cols)


def _np(table: pa.Table, name: str, dtype) -> np.ndarray:
    col = table[name]
    if col.null_count:
        col = pc.fill_null(col, -1 if np.issubdtype(dtype, np.integer) else np.nan)
    return col.to_numpy().astype(dtype, copy=False)


@dataclass
class Questions:
    """``prompt_idx`` sorted ascending and the source family of each question."""

    path: Path
    prompt_idx: np.ndarray
    family: np.ndarray  # object array of str

    def __len__(self) -> int:
        return len(self.prompt_idx)

    def positions(self, prompt_idx: np.ndarray) -> np.ndarray:
        """Row position of each ``prompt_idx`` in this table, -1 where unknown."""
        pos = np.searchsorted(self.prompt_idx, prompt_idx)
        pos = np.minimum(pos, max(len(self.prompt_idx) - 1, 0))
        ok = (len(self.prompt_idx) > 0) & (self.prompt_idx[pos] == prompt_idx) if len(self.prompt_idx) else np.zeros(len(prompt_idx), bool)
        return np.where(ok, pos, -1)


def load_questions(run_dir: Path, problems: Problems) -> Questions:
    path = run_dir / C.QUESTIONS_FILE
    if not path.exists():
        raise RunDirError(f"{path}: file not found (run `vr-tools prepare` first)")
    table = _read(path, [C.PROMPT_IDX, C.SOURCE], C.QUESTIONS_SCHEMA)
    idx = _np(table, C.PROMPT_IDX, np.int64)
    family = np.array([C.source_family(s or "") for s in table[C.SOURCE].to_pylist()], dtype=object)
    order = np.argsort(idx, kind="stable")
    idx, family = idx[order], family[order]
    dup = np.unique(idx[1:][idx[1:] == idx[:-1]])
    if len(dup):
        raise RunDirError(f"{path}: {len(dup)} duplicated prompt_idx value(s), e.g. {dup[:5].tolist()}; "
                          f"prompt_idx must be unique")
    return Questions(path, idx, family)


@dataclass
class Traces:
    """One entry per scored trace (a row of some ``scores/seed-<k>.parquet``), as numpy columns.

    ``file`` indexes ``files``; ``row`` is the row position inside that file (how texts are fetched later).
    Verification columns are filled by :func:`attach_verification` (``n_rollouts == 0`` until then).
    """

    files: list[Path]
    prompt_idx: np.ndarray
    seed: np.ndarray
    q: np.ndarray  # position in Questions
    file: np.ndarray
    row: np.ndarray
    think_tokens: np.ndarray
    answer_tokens: np.ndarray
    think_logp_prior: np.ndarray
    think_logp_posterior: np.ndarray
    answer_logp_prior: np.ndarray
    truncated: np.ndarray = None  # scorer cut the sequence: never a candidate
    think_complete: np.ndarray = None  # informational (report only)
    n_rollouts: np.ndarray = None
    n_correct: np.ndarray = None
    first_correct: np.ndarray = None  # rollout_idx of the first correct rollout, -1 if none

    def __len__(self) -> int:
        return len(self.prompt_idx)

    @property
    def valid(self) -> np.ndarray:
        """Finite think log-probs, at least one think token, scored in full: delta_k is defined."""
        return ~self.truncated & (self.think_tokens > 0) & np.isfinite(self.think_logp_prior) & np.isfinite(self.think_logp_posterior)

    @property
    def answer_valid(self) -> np.ndarray:
        return (self.answer_tokens > 0) & np.isfinite(self.answer_logp_prior)

    #: True once verified files were attached (acc_k is then defined where n_rollouts > 0)
    has_verification: bool = False

    @property
    def acc(self) -> np.ndarray:
        """acc_k = n_correct / n_rollouts; NaN where the trace has no verified rollouts."""
        if self.n_rollouts is None:
            return np.full(len(self), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.n_rollouts > 0, self.n_correct / np.maximum(self.n_rollouts, 1), np.nan)


def load_traces(run_dir: Path, questions: Questions, problems: Problems) -> Traces:
    directory = run_dir / C.SCORES_DIR
    files = seed_files(directory, problems)
    parts, paths = [], []
    for file_no, (seed, path) in enumerate(files):
        table = _read(path, SCORE_COLUMNS, C.SCORES_SCHEMA)
        cols = {name: _np(table, name, np.float64 if "logp" in name else np.int64) for name in SCORE_COLUMNS}
        n = table.num_rows
        names = pq.ParquetFile(path).schema_arrow.names
        for flag, default in OPTIONAL_FLAGS.items():
            cols[flag] = (pc.fill_null(pq.read_table(path, columns=[flag])[flag], default).to_numpy(zero_copy_only=False)
                          .astype(bool) if flag in names else np.full(n, default))
        cols["file"] = np.full(n, file_no, np.int64)
        cols["row"] = np.arange(n, dtype=np.int64)
        wrong_seed = cols[C.SEED] != seed
        if wrong_seed.any():
            bad = np.flatnonzero(wrong_seed)
            problems.add("seed_column_mismatch", len(bad), [(path.name, int(cols[C.SEED][i])) for i in bad[:5]],
                         error=f"{path}: {len(bad)} row(s) have seed != {seed} (the file name's seed), e.g. rows "
                               f"{bad[:5].tolist()} with seed {cols[C.SEED][bad[:5]].tolist()}")
            cols = {k: v[~wrong_seed] for k, v in cols.items()}
        negative = (cols[C.THINK_TOKENS] < 0) | (cols[C.ANSWER_TOKENS] < 0)
        if negative.any():
            bad = np.flatnonzero(negative)
            problems.add("negative_token_count", len(bad), cols[C.PROMPT_IDX][bad[:5]].tolist(),
                         error=f"{path}: {len(bad)} row(s) with a negative or null token count, e.g. "
                               f"prompt_idx {cols[C.PROMPT_IDX][bad[:5]].tolist()}")
            cols = {k: v[~negative] for k, v in cols.items()}
        parts.append(cols)
        paths.append(path)
    names = SCORE_COLUMNS + ["file", "row"] + list(OPTIONAL_FLAGS)
    empty = {k: np.zeros(0, np.float64 if "logp" in k else (bool if k in OPTIONAL_FLAGS else np.int64)) for k in names}
    merged = {k: (np.concatenate([p[k] for p in parts]) if parts else empty[k]) for k in names}

    # scores for questions that do not exist
    q = questions.positions(merged[C.PROMPT_IDX])
    unknown = q < 0
    if unknown.any():
        bad = np.flatnonzero(unknown)
        where = sorted({files[merged["file"][i]][1].name for i in bad[:20]})
        problems.add("scores_unknown_prompt_idx", len(bad), merged[C.PROMPT_IDX][bad[:5]].tolist(),
                     error=f"{directory}: {len(bad)} score row(s) for prompt_idx not in {questions.path.name} "
                           f"(files {where}), e.g. prompt_idx {np.unique(merged[C.PROMPT_IDX][bad])[:5].tolist()}")
        merged = {k: v[~unknown] for k, v in merged.items()}
        q = q[~unknown]

    # duplicated (prompt_idx, seed): keep the first row (report mode), error in build mode
    order = np.lexsort((merged["row"], merged["file"], merged[C.SEED], merged[C.PROMPT_IDX]))
    merged = {k: v[order] for k, v in merged.items()}
    q = q[order]
    p, s = merged[C.PROMPT_IDX], merged[C.SEED]
    dup = np.zeros(len(p), bool)
    dup[1:] = (p[1:] == p[:-1]) & (s[1:] == s[:-1])
    if dup.any():
        bad = np.flatnonzero(dup)
        examples = [(int(p[i]), int(s[i])) for i in bad[:5]]
        where = sorted({files[merged["file"][i]][1].name for i in bad[:20]})
        problems.add("duplicate_scores", len(bad), examples,
                     error=f"{directory}: {len(bad)} duplicated (prompt_idx, seed) score row(s) in {where}, e.g. "
                           f"{examples}; each trace must be scored once")
        merged = {k: v[~dup] for k, v in merged.items()}
        q = q[~dup]

    traces = Traces(
        files=paths, prompt_idx=merged[C.PROMPT_IDX], seed=merged[C.SEED], q=q, file=merged["file"],
        row=merged["row"], think_tokens=merged[C.THINK_TOKENS], answer_tokens=merged[C.ANSWER_TOKENS],
        think_logp_prior=merged[C.THINK_LOGP_PRIOR], think_logp_posterior=merged[C.THINK_LOGP_POSTERIOR],
        answer_logp_prior=merged[C.ANSWER_LOGP_PRIOR], truncated=merged[C.TRUNCATED],
        think_complete=merged[C.THINK_COMPLETE],
    )
    # per-row rules: counted, the rows stay (they are never candidates)
    nonfinite = ~(np.isfinite(traces.think_logp_prior) & np.isfinite(traces.think_logp_posterior))
    problems.add("nonfinite_think_logp", int(nonfinite.sum()), _pairs(traces, nonfinite))
    zero_think = traces.think_tokens == 0
    problems.add("zero_think_tokens", int(zero_think.sum()), _pairs(traces, zero_think))
    bad_answer = (traces.answer_tokens == 0) | ~np.isfinite(traces.answer_logp_prior)
    problems.add("invalid_answer_score", int(bad_answer.sum()), _pairs(traces, bad_answer))
    problems.add("truncated_scores", int(traces.truncated.sum()), _pairs(traces, traces.truncated))
    return traces


def _pairs(traces: Traces, mask: np.ndarray) -> list[tuple[int, int]]:
    idx = np.flatnonzero(mask)[:5]
    return [(int(traces.prompt_idx[i]), int(traces.seed[i])) for i in idx]


# --- rollouts and verification ------------------------------------------------------------------
@dataclass
class KeyCodec:
    """Packs (prompt_idx, seed, rollout_idx) into one int64, so joins and de-duplication are numpy sorts."""

    pmin: int
    seeds: np.ndarray  # sorted unique seeds
    n_rollout: int

    @classmethod
    def fit(cls, prompt_idx: list[np.ndarray], seeds: list[np.ndarray], rollout_idx: list[np.ndarray]) -> KeyCodec:
        p = np.concatenate(prompt_idx)
        s = np.unique(np.concatenate(seeds))
        r = np.concatenate(rollout_idx)
        pmin, pmax = (int(p.min()), int(p.max())) if len(p) else (0, 0)
        n_r = int(r.max()) + 1 if len(r) else 1
        if (pmax - pmin + 1) * max(len(s), 1) * n_r >= 2**62:
            raise RunDirError(f"prompt_idx / seed / rollout_idx ranges too large to index ({pmin}..{pmax}, "
                              f"{len(s)} seeds, rollout_idx < {n_r})")
        return cls(pmin, s, n_r)

    def trace_key(self, prompt_idx: np.ndarray, seed: np.ndarray) -> np.ndarray:
        return (prompt_idx - self.pmin) * len(self.seeds) + np.searchsorted(self.seeds, seed)

    def key(self, prompt_idx: np.ndarray, seed: np.ndarray, rollout_idx: np.ndarray) -> np.ndarray:
        return self.trace_key(prompt_idx, seed) * self.n_rollout + rollout_idx


@dataclass
class Rollouts:
    """Every rollout row: its packed key (sorted), file and row position (to fetch chosen texts later)."""

    files: list[Path]
    codec: KeyCodec
    key: np.ndarray
    file: np.ndarray
    row: np.ndarray

    def locate(self, prompt_idx: np.ndarray, seed: np.ndarray, rollout_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(file, row) of the given rollouts; they must exist."""
        want = self.codec.key(prompt_idx, seed, rollout_idx)
        pos = np.searchsorted(self.key, want)
        if len(want) and (pos.max() >= len(self.key) or np.any(self.key[pos] != want)):
            raise RunDirError("a selected rollout is missing from rollouts/ (files changed during the build?)")
        return self.file[pos], self.row[pos]


def _read_keys(files: list[tuple[int, Path]], schema: pa.Schema, extra: list[str]) -> dict[str, np.ndarray]:
    cols = {k: [] for k in KEY3 + extra + ["file", "row"]}
    for file_no, (_, path) in enumerate(files):
        t = _read(path, KEY3 + extra, schema)
        for k in KEY3:
            cols[k].append(_np(t, k, np.int64))
        for k in extra:
            col = t[k]
            cols[k].append(np.zeros(t.num_rows, np.int8) - 1 if col.null_count == t.num_rows else
                           pc.fill_null(pc.cast(col, pa.int8()), -1).to_numpy())
        cols["file"].append(np.full(t.num_rows, file_no, np.int64))
        cols["row"].append(np.arange(t.num_rows, dtype=np.int64))
    return {k: (np.concatenate(v) if v else np.zeros(0, np.int64)) for k, v in cols.items()}


def _dedupe(key: np.ndarray, cols: dict, problems: Problems, kind: str, where: Path, codec: KeyCodec):
    """Sort by key; drop repeated keys (keeping the first row) or raise in strict mode."""
    order = np.argsort(key, kind="stable")
    key = key[order]
    dup = np.r_[False, key[1:] == key[:-1]]
    if dup.any():
        ex = [_unkey(codec, k) for k in np.unique(key[dup])[:5]]
        problems.add(kind, int(dup.sum()), ex,
                     error=f"{where}: {int(dup.sum())} duplicated (prompt_idx, seed, rollout_idx) row(s), e.g. {ex}")
    keep = order[~dup]
    return key[~dup], {k: v[keep] for k, v in cols.items()}


def _unkey(codec: KeyCodec, key: int) -> tuple[int, int, int]:
    t, r = divmod(int(key), codec.n_rollout)
    p, s = divmod(t, len(codec.seeds))
    return (p + codec.pmin, int(codec.seeds[s]), r)


def attach_verification(run_dir: Path, traces: Traces, problems: Problems, required: bool) -> Rollouts | None:
    """Aggregate rollouts + verified rows into per-trace ``n_rollouts``, ``n_correct``, ``first_correct``.

    Returns None when the run has no verified files (and raises instead when ``required``).
    """
    r_files = seed_files(run_dir / C.ROLLOUTS_DIR, problems)
    v_files = seed_files(run_dir / C.VERIFIED_DIR, problems)
    n = len(traces)
    traces.n_rollouts = np.zeros(n, np.int64)
    traces.n_correct = np.zeros(n, np.int64)
    traces.first_correct = np.full(n, -1, np.int64)
    if not v_files:
        if required:
            raise RunDirError(f"{run_dir / C.VERIFIED_DIR}: no verified/seed-<k>.parquet files; this estimator "
                              f"needs verified rollouts (run `vr-tools rollout` and `vr-tools verify` first)")
        return None
    if required:
        have_r, have_v = {s for s, _ in r_files}, {s for s, _ in v_files}
        scored = sorted({int(s) for s in np.unique(traces.seed)})
        missing = [s for s in scored if s not in have_r or s not in have_v]
        if missing:
            raise RunDirError(f"{run_dir}: scores exist for seed(s) {missing} but rollouts/ or verified/ "
                              f"seed-<k>.parquet is missing for them; run rollout and verify for every seed")
    traces.has_verification = True

    rol = _read_keys(r_files, C.ROLLOUTS_SCHEMA, [])
    ver = _read_keys(v_files, C.VERIFIED_SCHEMA, [C.CORRECT])
    for name, cols, folder in (("rollouts", rol, C.ROLLOUTS_DIR), ("verified", ver, C.VERIFIED_DIR)):
        bad = cols[C.ROLLOUT_IDX] < 0
        if bad.any():
            problems.add(f"negative_rollout_idx_{name}", int(bad.sum()), [],
                         error=f"{run_dir / folder}: {int(bad.sum())} row(s) with a negative or null rollout_idx")
            for k in cols:
                cols[k] = cols[k][~bad]
    codec = KeyCodec.fit([rol[C.PROMPT_IDX], ver[C.PROMPT_IDX], traces.prompt_idx],
                         [rol[C.SEED], ver[C.SEED], traces.seed], [rol[C.ROLLOUT_IDX], ver[C.ROLLOUT_IDX]])
    rkey, rol = _dedupe(codec.key(rol[C.PROMPT_IDX], rol[C.SEED], rol[C.ROLLOUT_IDX]), rol, problems,
                        "duplicate_rollouts", run_dir / C.ROLLOUTS_DIR, codec)
    vkey, ver = _dedupe(codec.key(ver[C.PROMPT_IDX], ver[C.SEED], ver[C.ROLLOUT_IDX]), ver, problems,
                        "duplicate_verified", run_dir / C.VERIFIED_DIR, codec)
    null = ver[C.CORRECT] < 0
    if null.any():
        problems.add("null_correct", int(null.sum()), [_unkey(codec, k) for k in vkey[null][:5]],
                     error=f"{run_dir / C.VERIFIED_DIR}: {int(null.sum())} row(s) with a null 'correct' value")
        vkey, ver = vkey[~null], {k: v[~null] for k, v in ver.items()}
    orphan = ~np.isin(vkey, rkey, assume_unique=True)
    if orphan.any():
        ex = [_unkey(codec, k) for k in vkey[orphan][:5]]
        problems.add("verified_without_rollout", int(orphan.sum()), ex,
                     error=f"{run_dir / C.VERIFIED_DIR}: {int(orphan.sum())} verified row(s) have no matching "
                           f"rollout (prompt_idx, seed, rollout_idx) in {C.ROLLOUTS_DIR}/, e.g. {ex}")
        vkey, ver = vkey[~orphan], {k: v[~orphan] for k, v in ver.items()}
    unverified = ~np.isin(rkey, vkey, assume_unique=True)
    if unverified.any():
        ex = [_unkey(codec, k) for k in rkey[unverified][:5]]
        problems.add("rollout_without_verification", int(unverified.sum()), ex,
                     error=f"{run_dir / C.ROLLOUTS_DIR}: {int(unverified.sum())} rollout(s) have no verified row "
                           f"(verify incomplete?), e.g. {ex}; acc_k would be wrong")

    # per-trace aggregates over verified rollouts (vkey is sorted, so rollout_idx ascends within a trace)
    correct = ver[C.CORRECT] == 1
    vt = vkey // codec.n_rollout
    tkeys = codec.trace_key(traces.prompt_idx, traces.seed)
    t_order = np.argsort(tkeys)
    pos = np.searchsorted(tkeys[t_order], vt)
    pos = np.minimum(pos, max(n - 1, 0))
    matched = (tkeys[t_order][pos] == vt) if n else np.zeros(len(vt), bool)
    if (~matched).any():
        problems.add("rollouts_without_scores", int((~matched).sum()),
                     [_unkey(codec, k)[:2] for k in vkey[~matched][:5]])
    t = t_order[pos[matched]]
    ok = correct[matched]
    traces.n_rollouts = np.bincount(t, minlength=n).astype(np.int64)
    traces.n_correct = np.bincount(t, weights=ok, minlength=n).astype(np.int64)
    rid = (vkey % codec.n_rollout)[matched]
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, t[ok], rid[ok])
    traces.first_correct = np.where(first == np.iinfo(np.int64).max, -1, first)
    no_rollouts = traces.valid & (traces.n_rollouts == 0)
    problems.add("traces_without_rollouts", int(no_rollouts.sum()), _pairs(traces, no_rollouts))
    return Rollouts([p for _, p in r_files], codec, rkey, rol["file"], rol["row"])
