"""The study's paired 95 % intervals (vr_plugins/study/intervals.py) and how results.py pairs the rows.

Fast: hand-made rows and synthetic matrices, no training. The intervals decide the study's verdicts, so
they are checked against an exact reference (scipy's t quantile), against a closed form (a constant
difference, a difference that only varies between seeds), and for their coverage on simulated studies.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vr_plugins.study.intervals import paired_interval, seeds_for_half_width, t975
from vr_plugins.study.results import comparison_matrix, paired_comparisons, study_comparisons


def test_t975_matches_scipy_for_every_degree_of_freedom():
    stats = pytest.importorskip("scipy.stats")
    for df in list(range(1, 61)) + [100, 1000]:
        assert t975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-3), df
    with pytest.raises(ValueError, match="degree of freedom"):
        t975(0)


def test_t_interval_is_the_textbook_one_over_per_seed_means():
    rng = np.random.default_rng(1)
    diff = rng.normal(0.05, 0.2, size=(6, 40))
    got = paired_interval(diff, reps=200)
    per_seed = diff.mean(axis=1)
    half = t975(5) * per_seed.std(ddof=1) / math.sqrt(6)
    assert got["mean"] == pytest.approx(per_seed.mean())
    assert (got["t_low"], got["t_high"]) == pytest.approx((per_seed.mean() - half, per_seed.mean() + half))
    assert got["seeds"] == 6 and got["questions"] == 40
    assert got["higher"] + got["lower"] == 6 and got["higher"] == int((per_seed > 0).sum())


def test_a_constant_difference_has_a_zero_width_interval():
    got = paired_interval(np.full((4, 10), 0.25), reps=100)
    assert got["t_low"] == pytest.approx(0.25) and got["t_high"] == pytest.approx(0.25)
    assert got["boot_low"] == pytest.approx(0.25) and got["boot_high"] == pytest.approx(0.25)


def test_bootstrap_also_counts_the_questions_as_a_sample():
    """Seeds that agree exactly (no seed variance) but questions that differ a lot: the t interval over
    seeds is a point, the two-way bootstrap is not, and it contains the mean."""
    row = np.linspace(-0.5, 0.7, 30)
    got = paired_interval(np.tile(row, (5, 1)), reps=2000)
    assert got["t_high"] - got["t_low"] == pytest.approx(0.0, abs=1e-12)
    assert got["boot_low"] < got["mean"] < got["boot_high"]
    se_questions = row.std(ddof=1) / math.sqrt(len(row))
    assert got["boot_high"] - got["boot_low"] == pytest.approx(2 * 1.96 * se_questions, rel=0.2)


def test_both_intervals_cover_the_true_difference_about_95_percent_of_the_time():
    """Simulated studies with a seed effect on the difference, question difficulties shared by both arms
    and binomial noise (4 samples): each interval must cover the population difference in about 95 % of
    them (the bootstrap is conservative: it may cover more, not much less)."""
    rng = np.random.default_rng(7)
    true, trials = 0.03, 300
    covered = {"t": 0, "boot": 0}
    for _ in range(trials):
        seed_effect = rng.normal(0, 0.04, size=(8, 1))  # (S, 1): the training run's luck
        difficulty = rng.normal(0, 0.08, size=(1, 60))  # (1, Q): shared, so it cancels in the difference
        p_arm = np.clip(0.3 + true + seed_effect + difficulty, 0, 1)  # (S, Q)
        p_base = np.broadcast_to(np.clip(0.3 + difficulty, 0, 1), p_arm.shape)
        diff = rng.binomial(4, p_arm) / 4 - rng.binomial(4, p_base) / 4
        got = paired_interval(diff, reps=400, rng_seed=int(rng.integers(1 << 30)))
        covered["t"] += got["t_low"] <= true <= got["t_high"]
        covered["boot"] += got["boot_low"] <= true <= got["boot_high"]
    assert 0.90 <= covered["t"] / trials <= 0.99, covered
    assert 0.88 <= covered["boot"] / trials <= 1.0, covered


def test_seeds_for_half_width_is_the_smallest_that_fits():
    need = seeds_for_half_width(0.05, 0.03)
    assert t975(need - 1) * 0.05 / math.sqrt(need) <= 0.03 < t975(need - 2) * 0.05 / math.sqrt(need - 1)
    assert seeds_for_half_width(0.0, 0.03) == 2
    assert seeds_for_half_width(1.0, 0.001, max_seeds=50) is None


def test_paired_interval_refuses_one_seed():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        paired_interval(np.zeros((1, 5)))


def _row(seed, arm, marks):
    """A collect() row: marks = {question id: (fraction correct, level)}."""
    return {"seed": seed, "arm": arm, "by_problem": {q: [f, lvl] for q, (f, lvl) in marks.items()}}


def test_comparison_matrix_pairs_seeds_and_questions_and_filters_the_level():
    rows = [_row(0, "gml", {"a": (1.0, 1), "b": (0.5, 3), "c": (0.25, 3)}),
            _row(0, "pi0", {"a": (0.5, 1), "b": (0.0, 3), "c": (0.75, 3)}),
            _row(1, "gml", {"a": (0.0, 1), "b": (1.0, 3), "c": (0.0, 3)}),
            _row(1, "pi0", {"a": (0.25, 1), "b": (0.5, 3)}),  # question c missing: left out for every seed
            _row(2, "gml", {"a": (1.0, 1), "b": (1.0, 3), "c": (1.0, 3)})]  # seed 2 has no baseline
    seeds, diff = comparison_matrix(rows, "gml", "pi0")
    assert seeds == [0, 1]
    assert diff.tolist() == [[0.5, 0.5], [-0.25, 0.5]]  # questions a, b
    seeds, hard = comparison_matrix(rows, "gml", "pi0", level=3)
    assert hard.tolist() == [[0.5], [0.5]]
    assert comparison_matrix(rows, "gml", "absent") == ([], pytest.approx(np.zeros((0, 0))))


def test_paired_comparisons_skip_pairs_without_two_seeds_and_report_the_seeds_needed():
    rows = [_row(s, arm, {f"q{i}": ((i + s + (arm == "gml")) % 2, 1 + i % 3) for i in range(9)})
            for s in range(3) for arm in ("gml", "pi0")] + [_row(0, "acc", {"q0": (1.0, 1)})]
    got = paired_comparisons(rows, [("gml", "pi0", None), ("acc", "pi0", None), ("gml", "pi0", 3)])
    assert [(c["arm"], c["level"]) for c in got] == [("gml", None), ("gml", 3)]
    overall = got[0]
    assert overall["seeds"] == 3 and overall["questions"] == 9
    assert overall["seeds_for_3_points"] == seeds_for_half_width(overall["sd_seed"], 0.03)


def test_study_comparisons_are_the_two_questions_of_the_study():
    pairs = study_comparisons("b")
    overall = [(a, b) for a, b, level in pairs if level is None]
    hard = [(a, b) for a, b, level in pairs if level == 3]
    assert ("gml (q_b, K=all)", "initial pi_0 (SFT on reference)") in overall
    assert ("rft (pi_0 samples, K=all)", "initial pi_0 (SFT on reference)") in overall
    assert {a for a, _ in hard} == {"gml (q_b, K=all)", "acc (q_b, K=all)", "snis (q_b, K=all)"}
    assert {b for _, b in hard} == {"rft (pi_0 samples, K=all)"}


def test_the_cli_offers_every_preset():
    """tools/vr_tools/study.py spells the choices out (importing the presets would cost the CLI's start-up
    0.7 s); they must be the presets' names."""
    from vr_tools.study import command
    from vr_plugins.study.arms import PRESETS

    [preset] = [p for p in command.params if p.name == "preset"]
    assert list(preset.type.choices) == list(PRESETS)
