"""The project's own math equivalence table (tests/data/math_equivalence.yaml, >= 300 cases in nine
categories) through the default ``vr`` grader and through plain Math-Verify on the same texts.

Prints agreement, false positives and false negatives per category (``pytest -s`` shows the table that
docs/verification.md records). Asserts: zero false positives, agreement >= 97 %, and higher agreement
than plain ``verify(parse(gold), parse(text))``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from vr_plugins import formats
from vr_plugins.verify.math import grade_math

TABLE = Path(__file__).parent / "data" / "math_equivalence.yaml"
MARKERS = {"ENDTHINK": f"{formats.END_OF_THOUGHT}\n\n", "THINK": formats.BEGIN_OF_THOUGHT + "\n\n",
           "EOS": formats.END_OF_SOLUTION, "SOL": formats.BEGIN_OF_SOLUTION}


def _expand(text: str) -> str:
    for word, marker in MARKERS.items():  # ENDTHINK before THINK: the longer name first
        text = text.replace(word, marker)
    return text


def load_cases() -> list[tuple[str, int, str, str]]:
    """``(category, label, gold, response)`` for every row of the table."""
    data = yaml.safe_load(TABLE.read_text(encoding="utf-8"))
    cases = []
    for category, kinds in data.items():
        for kind, rows in kinds.items():
            assert kind in ("boxed", "raw"), f"{TABLE}: {category}: unknown list {kind!r}"
            for row in rows:
                assert len(row) == 3 and row[0] in (0, 1), f"{TABLE}: {category}: bad row {row!r}"
                label, gold, answer = row
                response = (f"Putting it together, the final answer is $\\boxed{{{answer}}}$." if kind == "boxed"
                            else _expand(answer))
                cases.append((category, label, str(gold), response))
    return cases


CASES = load_cases()


def plain_math_verify(gold: str, text: str, wrap_gold: bool = False) -> bool:
    """Plain Math-Verify as its README shows it: ``verify(parse(gold), parse(text))``; ``wrap_gold`` gives
    it the gold as ``$gold$`` (its LaTeX extraction needs math delimiters), the fairer comparison."""
    from vr_plugins.verify.math import _math_verify

    mv = _math_verify()
    try:
        return bool(mv.verify(mv.parse(f"${gold}$" if wrap_gold else gold), mv.parse(text)))
    except Exception:  # noqa: BLE001 - a crash is "not verified"
        return False


def score(grader) -> dict[str, Counter]:
    stats: dict[str, Counter] = {}
    for category, label, gold, response in CASES:
        got = grader(gold, response)
        c = stats.setdefault(category, Counter())
        c["n"] += 1
        c["agree"] += got == bool(label)
        c["fp"] += got and not label
        c["fn"] += (not got) and bool(label)
    return stats


def table(name: str, stats: dict[str, Counter]) -> str:
    total = sum(stats.values(), Counter())
    lines = [f"{name}", f"{'category':<24}{'cases':>6}{'agree':>7}{'rate':>8}{'FP':>4}{'FN':>4}"]
    for category, c in list(stats.items()) + [("all", total)]:
        lines.append(f"{category:<24}{c['n']:>6}{c['agree']:>7}{100 * c['agree'] / c['n']:>7.1f}%{c['fp']:>4}{c['fn']:>4}")
    return "\n".join(lines)


def test_table_has_the_categories_and_size():
    categories = Counter(c for c, *_ in CASES)
    assert len(CASES) >= 300
    assert set(categories) == {"numbers_formats", "latex_notation", "sets_intervals_tuples", "relations_equations",
                               "units_percent", "matrices", "multiple_boxes", "long_no_box", "adversarial",
                               "held_out"}  # written after the grader, see the YAML
    assert all(n >= 20 for n in categories.values()), categories
    labels = Counter(label for _, label, *_ in CASES)
    assert labels[0] >= 100 and labels[1] >= 100, labels  # both kinds of error can be measured
    assert len({(g, r) for _, _, g, r in CASES}) == len(CASES), "duplicate cases"


@pytest.fixture(scope="module")
def ours():
    return score(lambda gold, response: grade_math(response, gold)[0])


def test_vr_grader_zero_false_positives_and_agreement(ours):
    print("\n" + table("vr grader (default)", ours))
    total = sum(ours.values(), Counter())
    wrong = [(c, l, g, r[:70]) for c, l, g, r in CASES if grade_math(r, g)[0] != bool(l)]
    assert total["fp"] == 0, [w for w in wrong if not w[1]]
    assert total["agree"] / total["n"] >= 0.97, wrong


@pytest.mark.parametrize("wrap_gold", [False, True], ids=["gold-as-is", "gold-in-dollars"])
def test_vr_grader_beats_plain_math_verify(ours, wrap_gold):
    theirs = score(lambda gold, text: plain_math_verify(gold, text, wrap_gold))
    gold = "f'${gold}$'" if wrap_gold else "gold"
    print("\n" + table(f"plain Math-Verify verify(parse({gold}), parse(text))", theirs))
    a, b = sum(ours.values(), Counter()), sum(theirs.values(), Counter())
    assert a["agree"] > b["agree"], (a, b)
    assert a["fp"] <= b["fp"]
