"""Estimators on a hand-built run directory whose answer is known, row by row (docs/method.md section 3).

Every branch: argmax, ties (lowest seed), all traces over the length cap (28,000 exactly included),
acc all zero for a ruc question (GML fallback) and for a non-ruc one (original), some seeds missing,
first correct rollout not at index 0 and written out of order, a rollout that kept its stop string,
non-finite log-probs and zero-length traces (never candidates), a question with no trace at all.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest

from est_rundir import RunBuilder
from vr_plugins import formats
from vr_plugins.estimators.build import build_dataset, load_inputs
from vr_plugins.estimators.candidates import BuildOptions
from vr_plugins.rundir import columns as C

N_QUESTIONS = 10


def layout(think: str, solution: str) -> str:
    """The response layout written out from the marker constants (independent of render_response)."""
    return think + formats.END_OF_THOUGHT + "\n\n" + formats.BEGIN_OF_SOLUTION + solution + formats.END_OF_SOLUTION


def ref(i: int) -> str:
    return layout(f"ref think {i}", f"ref sol {i}")


def tr(i: int, seed: int, solution: str | None = None) -> str:
    return layout(f"think {i}/{seed}", solution if solution is not None else f"ref sol {i}")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    b = RunBuilder(tmp_path_factory.mktemp("est-run"))
    families = ["numina", "numina", "apps", "ruc", "numina", "taco", "ruc", "numina", "numina", "taco"]
    for i in reversed(range(N_QUESTIONS)):  # written out of order on purpose
        b.question(i, families[i])
    # q0: gml -> seed 1 (score -0.5); acc -> seed 2 (log rho = log .25 + .5), first correct rollout_idx 3
    b.trace(0, 0, 10, -20, -10, 5, -5).trace(0, 1, 10, -10, -10, 4, -2).trace(0, 2, 20, -10, -20, 2, -4)
    b.rollouts_for(0, 0, [False, True, True, False]).rollouts_for(0, 1, [False] * 4)
    for r, ok in ((3, True), (1, False), (0, False), (2, False)):  # out of order; the correct one kept its stop string
        b.rollout(0, 2, r, ok, text="sol 0/2/3" + formats.END_OF_SOLUTION if r == 3 else None)
    # q1: ties between seeds 1 and 2 under both scores -> seed 1
    b.trace(1, 0, 10, -30, -10, 5, -5).trace(1, 1, 10, -10, -10, 5, -5).trace(1, 2, 10, -10, -10, 5, -5)
    b.rollouts_for(1, 0, [False, False]).rollouts_for(1, 1, [True, False]).rollouts_for(1, 2, [False, True])
    # q2 (apps): every trace at or over the cap, however good -> original (source -1)
    b.trace(2, 0, 28000, -1, -100, 5, -1).trace(2, 1, 30000, -1, -100, 5, -1)
    b.rollouts_for(2, 0, [True, True]).rollouts_for(2, 1, [True, True])
    # q3 (ruc): acc all zero -> GML fallback: seed 0 + reference solution, average_correctness 0
    b.trace(3, 0, 10, -10, -10, 5, -1).trace(3, 1, 10, -10, -10, 5, -3)
    b.rollouts_for(3, 0, [False, False]).rollouts_for(3, 1, [False, False])
    # q4 (numina): acc all zero -> original; gml -> seed 1
    b.trace(4, 0, 10, -10, -10, 5, -3).trace(4, 1, 10, -10, -10, 5, -1)
    b.rollouts_for(4, 0, [False]).rollouts_for(4, 1, [False])
    # q5 (taco): seed 0 missing; gml -> seed 2; acc -> seed 1 (only correct one)
    b.trace(5, 1, 10, -10, -10, 5, -4).trace(5, 2, 10, -10, -10, 5, -2)
    b.rollouts_for(5, 1, [False, True]).rollouts_for(5, 2, [False, False])
    # q6 (ruc): over the cap and acc zero -> the GML fallback has no candidate either -> original
    b.trace(6, 0, 40000, -10, -10, 5, -1).rollouts_for(6, 0, [False])
    # q7: no trace at all -> original everywhere
    # q8: NaN prior (seed 0) and inf posterior (seed 1) would win but are invalid; zero think tokens
    #     (seed 3) is invalid; zero answer tokens (seed 4) has no GML score -> gml/acc pick seed 2
    b.trace(8, 0, 10, float("nan"), -50, 5, -0.1).trace(8, 1, 10, -10, float("-inf"), 5, -0.1)
    b.trace(8, 2, 10, -10, -10, 5, -3).trace(8, 3, 0, 0.0, 0.0, 5, -0.1).trace(8, 4, 10, -10, -20, 0, 0.0)
    b.rollouts_for(8, 0, [True]).rollouts_for(8, 1, [True]).rollouts_for(8, 2, [True, False])
    b.rollouts_for(8, 3, [True]).rollouts_for(8, 4, [False])
    # q9 (taco): acc picks the larger acc*exp(delta): seed 0 acc 1/2 delta 0 (.5) vs seed 1 acc 1 delta -1 (.37)
    b.trace(9, 0, 10, -10, -10, 5, -5).trace(9, 1, 10, -20, -10, 5, -5)
    b.rollouts_for(9, 0, [True, False]).rollouts_for(9, 1, [True, True])
    return b.write()


def rows(path):
    table = pq.read_table(path)
    assert table.schema.equals(C.DATASET_SCHEMA), table.schema
    return table.to_pylist()


def check(path, expected, estimator, mix=True):
    got = rows(path)
    if mix:
        originals, got = got[:N_QUESTIONS], got[N_QUESTIONS:]
        assert [r[C.PROMPT_IDX] for r in originals] == list(range(N_QUESTIONS))
        for r in originals:
            i = r[C.PROMPT_IDX]
            assert (r[C.SOURCE], r[C.RESPONSE], r[C.QUESTION], r[C.WEIGHT], r[C.AVERAGE_CORRECTNESS]) == \
                (C.SOURCE_ORIGINAL, ref(i), f"Q{i}?", 1.0, None)
    assert len(got) == len(expected), [(r[C.PROMPT_IDX], r[C.SOURCE]) for r in got]
    for r, (i, source, response, weight, avg) in zip(got, expected):
        assert (r[C.PROMPT_IDX], r[C.SOURCE], r[C.RESPONSE]) == (i, source, response), r
        assert r[C.QUESTION] == f"Q{i}?" and r[C.ESTIMATOR] == estimator
        assert r[C.WEIGHT] == pytest.approx(weight, rel=1e-12), r
        assert (r[C.AVERAGE_CORRECTNESS] is None) if avg is None else r[C.AVERAGE_CORRECTNESS] == pytest.approx(avg)


def test_gml_row_by_row(run_dir):
    result = build_dataset(run_dir, "gml", BuildOptions())
    assert result.path == run_dir / "datasets" / "gml-mix.parquet" and result.rows == 2 * N_QUESTIONS
    check(result.path, [
        (0, 1, tr(0, 1), 1, None), (1, 1, tr(1, 1), 1, None), (2, -1, ref(2), 1, None), (3, 0, tr(3, 0), 1, None),
        (4, 1, tr(4, 1), 1, None), (5, 2, tr(5, 2), 1, None), (6, -1, ref(6), 1, None), (7, -1, ref(7), 1, None),
        (8, 2, tr(8, 2), 1, None), (9, 0, tr(9, 0), 1, None),
    ], "gml")
    counts = result.summary
    assert counts["problem:nonfinite_think_logp"] == 2 and counts["problem:zero_think_tokens"] == 1
    assert counts["problem:invalid_answer_score"] == 1 and counts["questions_original_fallback"] == 3


def test_acc_row_by_row(run_dir):
    result = build_dataset(run_dir, "acc", BuildOptions())
    check(result.path, [
        (0, 2, tr(0, 2, "sol 0/2/3"), 1, 0.25), (1, 1, tr(1, 1, "sol 1/1/0"), 1, 0.5), (2, -1, ref(2), 1, None),
        (3, 0, tr(3, 0), 1, 0.0), (4, -1, ref(4), 1, None), (5, 1, tr(5, 1, "sol 5/1/1"), 1, 0.5),
        (6, -1, ref(6), 1, None), (7, -1, ref(7), 1, None), (8, 2, tr(8, 2, "sol 8/2/0"), 1, 0.5),
        (9, 0, tr(9, 0, "sol 9/0/0"), 1, 0.5),
    ], "acc")


def test_acc_without_fallback_families_keeps_the_original(run_dir, tmp_path):
    out = tmp_path / "acc-nofb.parquet"
    build_dataset(run_dir, "acc", BuildOptions(fallback_families=()), mix=False, out=out)
    got = {r[C.PROMPT_IDX]: r for r in rows(out)}
    assert len(got) == N_QUESTIONS
    assert (got[3][C.SOURCE], got[3][C.RESPONSE], got[3][C.AVERAGE_CORRECTNESS]) == (-1, ref(3), None)
    # and with numina as a fallback family, q4 (acc all zero) takes its GML choice
    build_dataset(run_dir, "acc", BuildOptions(fallback_families=("numina",)), mix=False, out=out, force=True)
    got = {r[C.PROMPT_IDX]: r for r in rows(out)}
    assert (got[4][C.SOURCE], got[4][C.RESPONSE], got[3][C.SOURCE]) == (1, tr(4, 1), -1)


def test_length_cap_is_a_parameter(run_dir, tmp_path):
    out = tmp_path / "gml-cap.parquet"
    build_dataset(run_dir, "gml", BuildOptions(max_think_tokens=28001), mix=False, out=out)
    got = {r[C.PROMPT_IDX]: r for r in rows(out)}
    assert got[2][C.SOURCE] == 0  # T = 28000 < 28001 is now a candidate; T = 30000 still is not
    build_dataset(run_dir, "gml", BuildOptions(max_think_tokens=15), mix=False, out=out, force=True)
    got = {r[C.PROMPT_IDX]: r for r in rows(out)}
    assert got[0][C.SOURCE] == 1 and got[6][C.SOURCE] == -1  # q0 seed 2 (T=20) excluded, seed 1 (T=10) kept


def softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def test_snis_soft_weights_row_by_row(run_dir):
    result = build_dataset(run_dir, "snis", BuildOptions(), mix=False)
    w0 = softmax([-2.0, -0.5, -1.5])
    w1 = softmax([-3.0, -1.0, -1.0])
    w3, w4, w5, w9 = softmax([-0.2, -0.6]), softmax([-0.6, -0.2]), softmax([-0.8, -0.4]), softmax([-1.0, -2.0])
    check(result.path, [
        (0, 0, tr(0, 0), w0[0], 0.5), (0, 1, tr(0, 1), w0[1], 0.0), (0, 2, tr(0, 2), w0[2], 0.25),
        (1, 0, tr(1, 0), w1[0], 0.0), (1, 1, tr(1, 1), w1[1], 0.5), (1, 2, tr(1, 2), w1[2], 0.5),
        (2, -1, ref(2), 1, None), (3, 0, tr(3, 0), w3[0], 0.0), (3, 1, tr(3, 1), w3[1], 0.0),
        (4, 0, tr(4, 0), w4[0], 0.0), (4, 1, tr(4, 1), w4[1], 0.0), (5, 1, tr(5, 1), w5[0], 0.5),
        (5, 2, tr(5, 2), w5[1], 0.0), (6, -1, ref(6), 1, None), (7, -1, ref(7), 1, None),
        (8, 2, tr(8, 2), 1.0, 0.5), (9, 0, tr(9, 0), w9[0], 0.5), (9, 1, tr(9, 1), w9[1], 1.0),
    ], "snis", mix=False)


def test_snis_resampling_is_seeded_and_weighted(run_dir, tmp_path):
    outs = [tmp_path / f"r{i}.parquet" for i in range(3)]
    build_dataset(run_dir, "snis", BuildOptions(resample=400, seed=1), mix=False, out=outs[0])
    build_dataset(run_dir, "snis", BuildOptions(resample=400, seed=1), mix=False, out=outs[1])
    build_dataset(run_dir, "snis", BuildOptions(resample=400, seed=2), mix=False, out=outs[2])
    a, b, c = (rows(p) for p in outs)
    assert a == b and a != c
    q0 = [r[C.SOURCE] for r in a if r[C.PROMPT_IDX] == 0]
    assert len(q0) == 400 and all(r[C.WEIGHT] == pytest.approx(1 / 400) for r in a if r[C.SOURCE] >= 0)
    freq = np.bincount(q0, minlength=3) / 400
    assert np.allclose(freq, softmax([-2.0, -0.5, -1.5]), atol=0.08)
    assert [r[C.SOURCE] for r in a if r[C.PROMPT_IDX] == 8] == [2] * 400
    assert [(r[C.SOURCE], r[C.WEIGHT]) for r in a if r[C.PROMPT_IDX] == 7] == [(-1, 1.0)]


def test_snis_iwae_log_weight_uses_sums(run_dir, tmp_path):
    out = tmp_path / "iwae.parquet"
    build_dataset(run_dir, "snis", BuildOptions(log_weight="iwae"), mix=False, out=out)
    q0 = [r[C.WEIGHT] for r in rows(out) if r[C.PROMPT_IDX] == 0]
    assert q0 == pytest.approx(softmax([-20 + 10 - 5, -10 + 10 - 2, -10 + 20 - 4]))


def test_rft_keeps_every_correct_trace(run_dir):
    result = build_dataset(run_dir, "rft", BuildOptions(), mix=False)
    check(result.path, [
        (0, 0, tr(0, 0, "sol 0/0/1"), 1, 0.5), (0, 2, tr(0, 2, "sol 0/2/3"), 1, 0.25),
        (1, 1, tr(1, 1, "sol 1/1/0"), 1, 0.5), (1, 2, tr(1, 2, "sol 1/2/1"), 1, 0.5),
        (5, 1, tr(5, 1, "sol 5/1/1"), 1, 0.5),
        # RFT does not use log-probs: the NaN/inf traces of q8 are kept, the zero-length one is not
        (8, 0, tr(8, 0, "sol 8/0/0"), 1, 1.0), (8, 1, tr(8, 1, "sol 8/1/0"), 1, 1.0),
        (8, 2, tr(8, 2, "sol 8/2/0"), 1, 0.5),
        (9, 0, tr(9, 0, "sol 9/0/0"), 1, 0.5), (9, 1, tr(9, 1, "sol 9/1/0"), 1, 1.0),
    ], "rft", mix=False)


def test_inputs_are_scalar_columns_with_acc(run_dir):
    inputs = load_inputs(run_dir, needs_verification=True)
    t = inputs.traces
    k = int(np.flatnonzero((t.prompt_idx == 0) & (t.seed == 2))[0])
    assert (t.n_rollouts[k], t.n_correct[k], t.first_correct[k], t.acc[k]) == (4, 1, 3, 0.25)
    assert list(inputs.questions.prompt_idx) == list(range(N_QUESTIONS))
    assert inputs.problems.counts.get("traces_without_rollouts", 0) == 0 and t.has_verification


def test_snis_weights_property_seeded_random_loop():
    """Weights of each question sum to 1 and equal softmax of the log weights, for extreme magnitudes too."""
    from vr_plugins.estimators.candidates import softmax_per_question

    rng = np.random.default_rng(1234)
    for trial in range(300):
        n_q = int(rng.integers(1, 6))
        sizes = rng.integers(1, 9, size=n_q)
        q = np.repeat(np.arange(n_q), sizes)
        scale = float(10.0 ** rng.integers(-2, 5))  # up to 1e4: exp() would overflow without the max shift
        lw = rng.normal(0, scale, size=len(q)) + rng.normal(0, 1e4)
        if trial % 7 == 0:
            lw[rng.integers(len(lw))] = -np.inf  # a zero weight among finite ones is fine
            if not np.all(np.isfinite(np.maximum.reduceat(lw, np.r_[0, np.cumsum(sizes)[:-1]]))):
                continue
        w = softmax_per_question(q, lw)
        for g in range(n_q):
            wg, lg = w[q == g], lw[q == g]
            assert abs(math.fsum(wg) - 1.0) < 1e-12
            # independent formula: w_k = 1 / sum_j exp(lw_j - lw_k)
            with np.errstate(over="ignore"):
                expected = [0.0 if np.isneginf(a) else 1.0 / math.fsum(np.exp(lg - a)) for a in lg]
            assert np.allclose(wg, expected, rtol=1e-12, atol=1e-300)


def test_third_party_estimator_plugs_in(run_dir, tmp_path):
    """A plugin registers its own estimator through the same hook; the builder checks its selection."""
    from vr_plugins.estimators.candidates import SOLUTION_REFERENCE, Selection, within_cap
    from vr_plugins.hookspecs import hookimpl
    from vr_plugins.plugins import register_plugin, unregister_plugin
    from vr_plugins.types import Estimator

    def shortest(inputs, options):  # keep the shortest candidate trace of every question
        t = inputs.traces
        keep = np.flatnonzero(within_cap(t, options) & t.valid)
        keep = keep[np.lexsort((t.seed[keep], t.think_tokens[keep], t.q[keep]))]
        first = np.r_[True, t.q[keep][1:] != t.q[keep][:-1]]
        k = keep[first]
        return Selection(q=t.q[k], trace=k, solution=np.full(len(k), SOLUTION_REFERENCE, np.int8),
                         weight=np.ones(len(k)), average_correctness=np.full(len(k), np.nan))

    def broken(inputs, options):
        sel = shortest(inputs, options)
        sel.trace = np.roll(sel.trace, 1)  # pairs questions with other questions' traces
        return sel

    class Plugin:
        @hookimpl
        def register_estimators(self, register):
            register(Estimator(name="test_shortest", build=shortest))
            register(Estimator(name="test_broken", build=broken))

    register_plugin(Plugin(), name="test-estimator-plugin")
    try:
        out = build_dataset(run_dir, "test_shortest", BuildOptions(), mix=False, out=tmp_path / "s.parquet").path
        got = {r[C.PROMPT_IDX]: r[C.SOURCE] for r in rows(out)}
        assert got == {0: 0, 1: 0, 3: 0, 4: 0, 5: 1, 8: 2, 9: 0}
        with pytest.raises(ValueError, match="another question's trace"):
            build_dataset(run_dir, "test_broken", BuildOptions(), mix=False, out=tmp_path / "b.parquet")
        assert not (tmp_path / "b.parquet").exists()
    finally:
        unregister_plugin("test-estimator-plugin")
        from vr_plugins.registry import reset

        reset()
