"""SkyThought's own answer extraction and comparison, for the ``skythought`` math grader (paper parity)
and the multiple-choice tasks.

The only place outside the handler classes that calls into ``skythought.evals.util``: the grader in
:mod:`vr_plugins.verify.math` and the handlers reach SkyThought's parsing through these functions.
"""

from __future__ import annotations

import functools

from vr_plugins.verify.math_libs import quiet_antlr


@functools.lru_cache(maxsize=1)
def _parsing():
    quiet_antlr()  # before latex2sympy2 builds its parsers
    from skythought.evals.util import math_parsing_util

    return math_parsing_util


def extract_answer(text: str) -> str | None:
    """SkyThought's unboxed fallbacks ("final answer is $...$. I hope", "the answer is ...", the last number)."""
    return _parsing().extract_answer(text)


def math_equal(pred: str, target: str) -> bool:
    """SkyThought's ``math_equal`` on both answers after its ``strip_answer_string``: exactly the path of
    its NUMINA/MATH handlers."""
    m = _parsing()
    return bool(m.math_equal(m.strip_answer_string(pred), m.strip_answer_string(target)))


def multiple_choice_answer(text: str) -> str | None:
    """The option letter of a GPQA-style response (SkyThought's ``get_multiple_choice_answer``)."""
    return _parsing().get_multiple_choice_answer(text)


def mmlu_pro_answer(text: str) -> str | None:
    """The option letter of an MMLU-Pro response (SkyThought's ``mmlu_pro_extract_answer``)."""
    return _parsing().mmlu_pro_extract_answer(text)
