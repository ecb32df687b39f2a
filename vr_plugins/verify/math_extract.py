"""Where a math answer is in a text: the solution section, its ``\\boxed{}`` values, an unboxed fallback.

One source of truth for answer extraction: ``vr-tools prepare`` (gold answers from reference solutions),
the verifier and the evaluation handlers all call these functions, so a gold answer and a prediction are
always cut out of their texts the same way. Pure string scanning in linear time (no recursion, no
backtracking regex), so a megabyte of digits or ``\\boxed`` nested 1,000 deep costs milliseconds.
"""

from __future__ import annotations

import re

from vr_plugins import formats

_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_BARE = re.compile(r"\\boxed ([^\s${}]+)")  # "\boxed 5" without braces
#: Special tokens that end what a model meant to say: anything after them is another turn or padding.
END_MARKERS = (formats.END_OF_SOLUTION, formats.IM_START, formats.IM_END, "<|endoftext|>", "<|eot_id|>",
               "<|end|>", "</s>")
_SPECIAL_TOKEN = re.compile(r"<\|[A-Za-z_]+\|>")


def boxed_spans(text: str | None) -> list[tuple[int, int, bool]]:
    """``(start, end, closed)`` of every OUTERMOST ``\\boxed{`` / ``\\fbox{`` in order; ``text[start:end]``
    is the content. A box that never closes runs to the end of the text with ``closed=False``."""
    if not text:
        return []
    spans = []
    pos = 0
    while True:
        m = _BOX_START.search(text, pos)
        if m is None:
            return spans
        start = depth = m.end()
        depth = 1
        i = start
        n = len(text)
        while i < n and depth:
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            elif c == "\\" and i + 1 < n and text[i + 1] in "{}":
                i += 1  # \{ and \} are literal braces, not grouping
            i += 1
        if depth:
            spans.append((start, n, False))
            return spans
        spans.append((start, i - 1, True))
        pos = i


def all_boxed(text: str | None) -> list[str]:
    """Contents of every complete outermost box, in order (an unterminated trailing box is dropped)."""
    return [text[s:e].strip() for s, e, closed in boxed_spans(text) if closed]


def last_boxed(text: str | None) -> str | None:
    """Content of the LAST outermost ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces balanced.

    None when there is none, or when the last box never closes (a generation cut off inside it gives no
    answer rather than a truncated one). ``"\\boxed 5"`` without braces counts when no braced box exists.
    """
    spans = boxed_spans(text)
    if spans:
        s, e, closed = spans[-1]
        return text[s:e].strip() if closed else None
    if not text:
        return None
    m = _BOX_BARE.search(text)
    return m.group(1) if m else None


def strip_end_markers(text: str) -> str:
    """``text`` up to the first end or chat marker (``<|im_end|>``, ``<|im_start|>user``, ...)."""
    cut = len(text)
    for marker in END_MARKERS:
        i = text.find(marker)
        if 0 <= i < cut:
            cut = i
    return _SPECIAL_TOKEN.sub(" ", text[:cut])


def solution_section(text: str | None) -> tuple[str | None, str]:
    """``(section, where)``: the part of a generation that holds its final answer, and which part it was.

    - text after the last ``<|begin_of_solution|>`` (``where = "solution section"``);
    - else text after ``<|end_of_thought|>`` ("after the thought section");
    - else, when ``<|begin_of_thought|>`` opened a thought that never closed, None ("thought section never
      closed"): a box inside an unfinished thought is a tentative answer, not a final one;
    - else the whole text ("whole response": rollout responses start after the solution marker).

    End and chat markers cut the section in every case.
    """
    if not text:
        return None, "empty response"
    for marker, where in ((formats.BEGIN_OF_SOLUTION, "solution section"),
                          (formats.END_OF_THOUGHT, "after the thought section")):
        i = text.rfind(marker)
        if i >= 0:
            return strip_end_markers(text[i + len(marker):]), where
    if formats.BEGIN_OF_THOUGHT in text:
        return None, "thought section never closed"
    return strip_end_markers(text), "whole response"


_ANSWER_PHRASE = re.compile(r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def _phrase_answer(tail: str) -> str | None:
    tail = tail.lstrip()
    if tail.startswith("$"):
        end = tail.find("$", 1)
        return tail[1:end].strip() if end > 1 else None
    if tail.startswith("\\("):
        end = tail.find("\\)")
        return tail[2:end].strip() if end > 2 else None
    m = re.match(r"[^\n]*?(?=(?:\.\s|\.$|\n|,\s|;|$))", tail)
    return m.group(0).strip() or None if m else None


_INLINE_MATH = re.compile(r"\$([^$]{1,400})\$|\\\((.{1,400}?)\\\)")


def unboxed_answer(section: str) -> str | None:
    """The answer of a section without a box: the later of the text after the last "answer is" /
    "answer:" phrase and the last inline math (``$...$``) ending in the section's last 300 characters
    (so "the answer is $x$ ... no, it is $y$" gives y); else the last number of its last 2,000 characters.
    None when nothing answer-like is there."""
    tail = section[-2000:]
    phrases = list(_ANSWER_PHRASE.finditer(tail))
    maths = [m for m in _INLINE_MATH.finditer(tail) if m.end() >= len(tail) - 300]
    math_answer = (maths[-1].group(1) or maths[-1].group(2) or "").strip() if maths else ""
    if phrases:
        got = _phrase_answer(tail[phrases[-1].end():])
        if got and not (math_answer and maths[-1].start() > phrases[-1].end() + len(got) + 2):
            return got
    if math_answer:
        return math_answer
    numbers = _NUMBER.findall(tail)
    return numbers[-1].rstrip(",") if numbers else None
