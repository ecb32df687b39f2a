"""Benchmark ``vr-tools build`` (gml, acc) on a full-scale synthetic run directory.

Full scale = the paper's data: 16,710 questions (numina 10,500 / apps 3,299 / taco 2,096 / ruc 815)
x 8 traces x 8 rollouts (1,069,440 rollouts). Texts are random letters (incompressible-ish), by default
~6,000 characters per trace and ~1,000 per rollout (about 2 GB of Parquet on disk).

Baseline: the reference method, a Python loop indexing Hugging Face ``datasets`` row by row (one
``ds[i]`` per trace and per verified rollout), timed on a subset of questions in the same run: its
loading time counts once, its loop time is extrapolated linearly to all questions. Its output on the
subset is compared with ours row by row ("agree").

    python benchmarks/bench_build.py                  # full scale, temporary run directory
    python benchmarks/bench_build.py --questions 2000 # smaller
Each build runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own; ours and the reference run
interleaved (benchmarks/harness.py), 3 repetitions.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare  # noqa: E402

from vr_plugins import formats
from vr_plugins.rundir import columns as C

FAMILIES = (("numina", 10500), ("apps", 3299), ("taco", 2096), ("ruc", 815))


def make_run(root: Path, n_q: int, seeds: int, n_roll: int, trace_chars: int, roll_chars: int) -> None:
    rng = np.random.default_rng(0)
    pool = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz     \n"), size=8_000_000).tolist())

    def texts(n, mean):
        lengths = np.clip(rng.normal(mean, mean / 3, n), 1, 3 * mean).astype(int)
        starts = rng.integers(0, len(pool) - 3 * mean, n)
        return [pool[s:s + k] for s, k in zip(starts.tolist(), lengths.tolist())]

    total = sum(c for _, c in FAMILIES)
    fam = np.concatenate([np.full(round(c * n_q / total), f, dtype=object) for f, c in FAMILIES])[:n_q]
    fam = np.concatenate([fam, np.full(n_q - len(fam), "numina", dtype=object)])
    idx = np.arange(n_q, dtype=np.int64)
    root.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        C.PROMPT_IDX: idx, C.QUESTION: texts(n_q, 300), C.REFERENCE_THINK: texts(n_q, trace_chars),
        C.REFERENCE_SOLUTION: texts(n_q, roll_chars), C.SOURCE: [f"{f}/{i}" for f, i in zip(fam, idx)],
        C.GOLD_ANSWER: pa.nulls(n_q, pa.string()), C.TESTS: pa.nulls(n_q, pa.string())}, schema=C.QUESTIONS_SCHEMA),
        root / C.QUESTIONS_FILE)
    ease = rng.beta(0.6, 0.9, n_q)  # per-question accuracy level: many hard questions
    for k in range(seeds):
        t = np.where(rng.random(n_q) < 0.03, rng.integers(28000, 32000, n_q), rng.lognormal(7.5, 0.7, n_q).astype(int) + 1)
        a = rng.integers(50, 800, n_q)
        prior = -t * rng.uniform(0.2, 0.6, n_q)
        post = -t * rng.uniform(0.1, 0.5, n_q)
        for d in (C.SCORES_DIR, C.ROLLOUTS_DIR, C.VERIFIED_DIR):
            (root / d).mkdir(exist_ok=True)
        pq.write_table(pa.table({
            C.PROMPT_IDX: idx, C.SEED: np.full(n_q, k), C.THINK_TEXT: texts(n_q, trace_chars), C.THINK_TOKENS: t,
            C.THINK_LOGP_PRIOR: prior, C.THINK_LOGP_POSTERIOR: post, C.ANSWER_TOKENS: a,
            C.ANSWER_LOGP_PRIOR: -a * rng.uniform(0.05, 1.0, n_q)}, schema=C.SCORES_SCHEMA), root / C.SCORES_DIR / C.seed_file_name(k))
        n = n_q * n_roll
        ridx = np.tile(np.arange(n_roll), n_q)
        pidx = np.repeat(idx, n_roll)
        pq.write_table(pa.table({C.PROMPT_IDX: pidx, C.SEED: np.full(n, k), C.ROLLOUT_IDX: ridx,
                                 C.RESPONSE: texts(n, roll_chars)}, schema=C.ROLLOUTS_SCHEMA),
                       root / C.ROLLOUTS_DIR / C.seed_file_name(k))
        correct = rng.random(n) < np.repeat(ease, n_roll) * rng.uniform(0.5, 1.0)
        pq.write_table(pa.table({C.PROMPT_IDX: pidx, C.SEED: np.full(n, k), C.ROLLOUT_IDX: ridx, C.CORRECT: correct,
                                 C.REASON: pa.array(np.where(correct, "ok", "wrong"))}, schema=C.VERIFIED_SCHEMA),
                       root / C.VERIFIED_DIR / C.seed_file_name(k))


# --- the reference method: row-by-row indexing of Hugging Face datasets ------------------------------
def reference_build(root: Path, estimator: str, subset: int, seeds: int, n_roll: int, cache: str,
                    cap: int = 28000) -> tuple[list[dict], float, float]:
    """Returns (rows of the subset, load seconds, loop seconds over the subset)."""
    import datasets
    from datasets import Dataset

    datasets.disable_progress_bars()
    t0 = time.perf_counter()

    def load(path):
        return Dataset.from_parquet(str(path), cache_dir=cache)

    questions = load(root / C.QUESTIONS_FILE)
    scores = [load(root / C.SCORES_DIR / C.seed_file_name(k)) for k in range(seeds)]
    if estimator == "acc":
        rollouts = [load(root / C.ROLLOUTS_DIR / C.seed_file_name(k)) for k in range(seeds)]
        verified = [load(root / C.VERIFIED_DIR / C.seed_file_name(k)) for k in range(seeds)]
    load_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = []
    for i in range(subset):
        q = questions[i]
        best, best_score, best_resp = -1, -np.inf, None
        gml_best, gml_score, gml_text = -1, -np.inf, None
        for k in range(seeds):
            s = scores[k][i]
            if s[C.THINK_TOKENS] >= cap:
                continue
            d = (s[C.THINK_LOGP_PRIOR] - s[C.THINK_LOGP_POSTERIOR]) / s[C.THINK_TOKENS]
            g = s[C.ANSWER_LOGP_PRIOR] / s[C.ANSWER_TOKENS] + d
            if g > gml_score:
                gml_best, gml_score, gml_text = k, g, s[C.THINK_TEXT]
            if estimator == "acc":
                rows = [verified[k][i * n_roll + r] for r in range(n_roll)]
                acc = sum(r[C.CORRECT] for r in rows) / n_roll
                if acc > 0 and np.log(acc) + d > best_score:
                    first = min(r[C.ROLLOUT_IDX] for r in rows if r[C.CORRECT])
                    best, best_score = k, np.log(acc) + d
                    best_resp = formats.render_response(s[C.THINK_TEXT], rollouts[k][i * n_roll + first][C.RESPONSE])
        if estimator == "gml":
            best, best_resp = gml_best, gml_text and formats.render_response(gml_text, q[C.REFERENCE_SOLUTION])
        elif best < 0 and C.source_family(q[C.SOURCE]) == "ruc" and gml_best >= 0:
            best, best_resp = gml_best, formats.render_response(gml_text, q[C.REFERENCE_SOLUTION])
        if best < 0:
            best_resp = formats.render_response(q[C.REFERENCE_THINK], q[C.REFERENCE_SOLUTION])
        out.append({C.PROMPT_IDX: q[C.PROMPT_IDX], C.SOURCE: best, C.RESPONSE: best_resp})
    Dataset.from_list(out)
    return out, load_seconds, time.perf_counter() - t0


def child(run_dir: str, estimator: str) -> None:
    from vr_plugins.estimators.build import build_dataset

    start = time.perf_counter()
    result = build_dataset(run_dir, estimator, mix=True, force=True)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(json.dumps({"seconds": seconds, "peak_rss_mib": rss, "rows": result.rows, "path": str(result.path)}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=16710)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--trace-chars", type=int, default=6000)
    ap.add_argument("--rollout-chars", type=int, default=1000)
    ap.add_argument("--subset", type=int, default=300, help="questions timed with the reference method")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--run-dir", default=None, help="keep/reuse the synthetic run directory here")
    ap.add_argument("--child", nargs=2, metavar=("RUN", "ESTIMATOR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0
    tmp = None
    if args.run_dir:
        root = Path(args.run_dir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-build-")
        root = Path(tmp.name) / "run"
    if not (root / C.QUESTIONS_FILE).exists():
        t0 = time.perf_counter()
        make_run(root, args.questions, args.seeds, args.rollouts, args.trace_chars, args.rollout_chars)
        size = sum(p.stat().st_size for p in root.rglob("*.parquet")) / 2**30
        print(f"synthetic run: {args.questions} questions x {args.seeds} traces x {args.rollouts} rollouts, "
              f"{size:.2f} GiB Parquet, generated in {time.perf_counter() - t0:.0f}s")
    n_q = pq.ParquetFile(root / C.QUESTIONS_FILE).metadata.num_rows
    subset = min(args.subset, n_q)
    for estimator in ("gml", "acc"):
        agree = {}

        def ours(estimator=estimator, agree=agree):
            proc = subprocess.run([sys.executable, __file__, "--child", str(root), estimator], capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit(proc.stderr)
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            agree["path"] = got["path"]
            agree.setdefault("peaks", []).append(got["peak_rss_mib"])
            return got

        def reference(estimator=estimator, agree=agree):
            with tempfile.TemporaryDirectory(prefix="bench-hf-cache-") as cache:
                ref, load_s, loop_s = reference_build(root, estimator, subset, args.seeds, args.rollouts, cache)
            if "rows" not in agree:
                agree["rows"] = ref
            return {"seconds": load_s + loop_s * n_q / subset}  # loading once + the loop extrapolated

        def same_rows(estimator=estimator, agree=agree):
            built = pq.read_table(agree["path"]).slice(n_q, subset).select([C.PROMPT_IDX, C.SOURCE, C.RESPONSE]).to_pylist()
            return f"{estimator}: our rows equal the reference method's on the {subset} timed questions: {built == agree['rows']}"

        compare(f"{estimator} build at {n_q:,} questions x {args.seeds} traces x {args.rollouts} rollouts",
                {"ours": ours, "reference (extrapolated)": reference}, {"seconds": "lower"}, repeats=args.repeats,
                command=f"python benchmarks/bench_build.py --questions {n_q}", note=same_rows)
        print(f"  peak RSS of our build: max {max(agree['peaks']):.0f} MiB over the repetitions (target < 2 GB)")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
