"""The ``vr`` math grader: exact where exactness matters, Math-Verify for the symbolic rest, vetoes on top.

Why a grader of our own: a wrong answer graded correct becomes a "correct" training example (Acc and RFT
keep traces whose rollouts verify), so a false positive costs more than a false negative. SkyThought's
``math_equal`` compares numbers with a 1e-4 relative tolerance and strips interval brackets; plain
Math-Verify is strict but its extraction of our generations loses answers. Decision order for one
(prediction, target) pair, both already cut out by :mod:`vr_plugins.verify.math_extract`:

1. bad input is incorrect with a reason (answer longer than :data:`MAX_ANSWER_CHARS`, braces nested deeper
   than :data:`MAX_BRACE_DEPTH`, unbalanced braces);
2. both sides are normalised (:func:`normalize`): ``$``, ``\\left``/``\\right``, spacing commands, ``\\dfrac``,
   text units, degrees, a left-hand side of variables (``x=``, ``(p,q)=``), thousands separators inside one
   number; identical normal forms are correct;
3. when both sides are plain numbers (integers, decimals, fractions, percent, base subscripts) the exact
   rule of :func:`numbers_equal` decides alone: integers and exact rationals compare exactly (no relative
   tolerance), a decimal written with >= 2 places matches a fraction only as its rounding;
4. otherwise Math-Verify ``verify(parse(target), parse(prediction))`` on the normal forms;
5. a True from step 4 must survive every veto of :func:`vetoes` (interval ends, strictness of relations,
   base subscripts, digits of integers, kinds of collection, one value against several, a rounded
   decimal for an exact gold); two different units are incorrect before any comparison. A veto makes it
   incorrect: checks that disagree never give "correct".

Units and percent are documented choices (docs/verification.md): a trailing ``\\text{unit}`` or ``^\\circ``
is dropped on both sides; ``50\\%`` equals ``50`` and ``50\\%`` but not ``0.5``.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

#: Longer answers are graded incorrect without parsing (a megabyte of digits is not an answer).
MAX_ANSWER_CHARS = 2000
#: Deeper brace nesting is graded incorrect without parsing (the LaTeX parser recurses per level).
MAX_BRACE_DEPTH = 60

NAME = "vr"


class BadAnswer(ValueError):
    """An answer that is not gradable; the message is the reason."""


def check_shape(text: str, what: str) -> None:
    if len(text) > MAX_ANSWER_CHARS:
        raise BadAnswer(f"{what} is {len(text)} characters long (limit {MAX_ANSWER_CHARS})")
    depth = peak = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "{}":
            i += 2
            continue
        if c == "{":
            depth += 1
            peak = max(peak, depth)
        elif c == "}":
            depth -= 1
            if depth < 0:
                raise BadAnswer(f"{what} has unbalanced braces (a '}}' without its '{{')")
        i += 1
    if depth:
        raise BadAnswer(f"{what} has unbalanced braces ({depth} '{{' never closed)")
    if peak > MAX_BRACE_DEPTH:
        raise BadAnswer(f"{what} nests braces {peak} deep (limit {MAX_BRACE_DEPTH})")


# --- normal form -----------------------------------------------------------------------------------
_DROP = re.compile(r"\\(?:left|right|displaystyle|q?quad|[bB]ig[lr]?)(?![a-zA-Z])")
_SPACING = re.compile(r"(?<!\\)\\[!,;: ]")  # \, \; \! \: and "\ " but not the row break "\\ "
_TEXT_WRAP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|textit|mbox|operatorname)\s*\{([^{}]*)\}")
_UNIT_WORDS = ("cm", "mm", "m", "km", "kg", "g", "mg", "s", "sec", "seconds", "second", "min", "minutes",
               "minute", "h", "hours", "hour", "hrs", "days", "day", "weeks", "week", "years", "year",
               "dollars", "dollar", "cents", "cent", "units", "unit", "degrees", "degree", "inches", "inch",
               "feet", "foot", "ft", "meters", "meter", "miles", "mile", "mph", "liters", "liter", "l", "ml",
               "square units", "sq units", "cubic units", "people", "students", "ways", "points", "pounds",
               "ounces", "gallons", "apples", "marbles", "books", "cups", "boxes", "pages")
_UNIT_TAIL = re.compile(r"(?<=[\d}).\s])\s*(?:\\(?:text|mbox|mathrm)\s*\{\s*([^{}]*)\}|\s+([a-zA-Z ]+))\s*(\^\s*\{?[23]\}?|²|³)?\s*$")
_DEGREE = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:(?:,|\{,\}|\\,|\s)\d{3})+(?:\.\d+)?$")
_LHS = re.compile(r"^\s*(\(?\s*[A-Za-z](?:_\{?\w+\}?)?(?:\s*,\s*[A-Za-z](?:_\{?\w+\}?)?)*\s*\)?|f\s*\(\s*x\s*\))\s*=(?!=)")
_TRAILING = re.compile(r"[\s.,;]+$")


def _unwrap_text(s: str) -> str:
    for _ in range(10):
        new = _TEXT_WRAP.sub(lambda m: m.group(1), s)
        if new == s:
            return s
        s = new
    return s


def normalize(answer: str) -> tuple[str, str | None, str | None]:
    """``(normal form, left-hand side or None, unit dropped or None)`` of one answer (module docstring,
    step 2)."""
    s = answer.strip()
    while True:  # \boxed{\boxed{x}} and $\boxed{x}$ inside an extracted answer
        m = re.fullmatch(r"\\(?:boxed|fbox)\s*\{(.*)\}", s, flags=re.S)
        if not m:
            break
        s = m.group(1).strip()
    s = s.replace("\\$", "")
    s = _SPACING.sub(" ", s)
    s = _DROP.sub(" ", s).replace("$", "")
    s = s.replace("\\$", "")
    s = s.replace(r"\dfrac", r"\frac").replace(r"\tfrac", r"\frac").replace("\\%", "%").replace("−", "-")
    s = re.sub(r"\\(?:mathrm|text)\s*\{\s*\}", "", s)
    s = _DEGREE.sub("", s)
    m = _UNIT_TAIL.search(s)
    dropped = None
    if m:
        unit = (m.group(1) or m.group(2) or "").strip().lower()
        if unit in _UNIT_WORDS and s[: m.start()].strip():
            s = s[: m.start()]
            dropped = unit + (m.group(3) or "").replace(" ", "")
    s = _TRAILING.sub("", s.strip())
    s = re.sub(r"\s+", " ", s)
    lhs = None
    m = _LHS.match(s)
    if m and "=" not in s[m.end():]:
        lhs = re.sub(r"\s+", "", m.group(1))
        s = s[m.end():].strip()
    if _THOUSANDS.match(s):
        s = re.sub(r"\{,\}|\\,|,|\s", "", s)
    if re.fullmatch(r"\\text\{\s*\(?([A-Za-z])\)?\s*\}|\(([A-Z])\)", s):  # multiple-choice letters
        s = re.sub(r"[^A-Za-z]|text", "", s)
    return s.strip(), lhs, dropped


# --- exact numbers ---------------------------------------------------------------------------------
_NUM = re.compile(r"^([+-])?(?:(\d+)(?:\.(\d*))?|\.(\d+))$")
_FRAC = re.compile(r"^([+-])?\\frac\s*\{\s*([+-]?\d+)\s*\}\s*\{\s*([+-]?\d+)\s*\}$|^([+-])?\\frac(\d)(\d)$|^([+-]?\d+)\s*/\s*(\d+)$")
_BASE = re.compile(r"^([0-9A-Fa-f]+)_\{?\s*(\d+)\s*\}?$")


class Number:
    """A plain number literal: exact value, decimal places written (None for fractions/integers), percent."""

    __slots__ = ("value", "places", "percent", "base_digits", "base")

    def __init__(self, value: Fraction | None, places: int | None = None, percent: bool = False,
                 base_digits: str | None = None, base: int | None = None):
        self.value, self.places, self.percent, self.base_digits, self.base = value, places, percent, base_digits, base


def parse_number(s: str) -> Number | None:
    """A :class:`Number` when ``s`` is one plain number, else None. Never evaluates an expression."""
    s = s.strip()
    percent = s.endswith("%")
    if percent:
        s = s[:-1].strip()
    if len(s) > 400:  # Fraction/int of thousands of digits is slow and unbounded; not a plain answer
        return None
    m = _BASE.match(s)
    if m and not percent:
        return Number(None, base_digits=m.group(1).lower().lstrip("0") or "0", base=int(m.group(2)))
    m = _NUM.match(s)
    if m:
        sign, whole, frac, only_frac = m.groups()
        if only_frac is not None:
            whole, frac = "0", only_frac
        text = whole + ("." + frac if frac else "")
        value = Fraction(text)
        if sign == "-":
            value = -value
        return Number(value, places=len(frac) if frac else None, percent=percent)
    m = _FRAC.match(s)
    if m:
        g = m.groups()
        if g[1] is not None:
            sign, a, b = g[0], g[1], g[2]
        elif g[4] is not None:
            sign, a, b = g[3], g[4], g[5]
        else:
            sign, a, b = None, g[6], g[7]
        if int(b) == 0:
            return None
        value = Fraction(int(a), int(b))
        return Number(-value if sign == "-" else value, percent=percent)
    return None


def numbers_equal(pred: Number, target: Number) -> tuple[bool, str]:
    """The exact rule for two plain numbers (module docstring, step 3)."""
    if pred.base is not None or target.base is not None:
        if pred.base is not None and target.base is not None:
            same = pred.base == target.base and pred.base_digits == target.base_digits
            return same, "same digits in the same base" if same else "different digits or base"
        other, based = (pred, target) if target.base is not None else (target, pred)
        if other.value is None or other.value.denominator != 1 or other.places is not None or other.value < 0:
            return False, "a base-subscripted number against a non-integer"
        same = str(int(other.value)) == based.base_digits  # the digits written without the subscript
        return same, "same digits (base subscript left out)" if same else "different digits"
    # Percent is a documented choice: the sign is ignored ("50%" is 50), so 0.5 is never 50%.
    a, b = pred.value, target.value
    if a == b:
        return True, "equal numbers"
    if target.places is not None and target.places >= 2 and pred.places is None and a.denominator != 1:
        # only the gold's own rounding: a rounded prediction of an exact gold stays wrong
        scale = 10 ** target.places
        if Fraction(round(a * scale), scale) == b:
            return True, f"equal to {target.places} decimal places"
    return False, "different numbers"


def number_collection(s: str) -> tuple[str, str, list[Number]] | None:
    """``(kind, brackets, numbers)`` when ``s`` is a tuple/interval ``(a, b]``, a set ``\\{a, b\\}`` or a
    bare list ``a, b`` of plain numbers only; else None. Such answers are compared exactly, without sympy."""
    s = s.strip()
    if s.startswith("\\{") and s.endswith("\\}"):
        kind, brackets, inner = "set", "{}", s[2:-2]
    elif s[:1] in "([" and s[-1:] in ")]":
        kind, brackets, inner = "tuple", s[0] + s[-1], s[1:-1]
    else:
        kind, brackets, inner = "list", "", s
    items = split_top(inner)
    if len(items) < 2 and kind != "set":
        return None
    numbers = [parse_number(i) for i in items]
    if any(n is None or n.value is None or n.percent for n in numbers):
        return None
    return kind, brackets, numbers


def collections_equal(pred, target) -> tuple[bool, str] | None:
    """Exact comparison of two :func:`number_collection` values; None when the kinds are not comparable
    here (a tuple against a bare list is left to Math-Verify and the vetoes)."""
    (pk, pb, pn), (tk, tb, tn) = pred, target
    if len(pn) != len(tn):
        return False, f"{len(pn)} values where {len(tn)} are expected"
    if pk == tk == "tuple":
        if pb != tb:
            return False, f"different brackets ({pb} vs {tb}): interval ends or tuple vs interval"
        ordered = zip(pn, tn)
    elif pk != "tuple" and tk != "tuple":
        ordered = zip(sorted(pn, key=lambda n: n.value), sorted(tn, key=lambda n: n.value))
    else:
        return None
    for a, b in ordered:
        if not numbers_equal(a, b)[0]:
            return False, "different values"
    return True, "same values" + (" in the same order" if pk == "tuple" else "")


# --- Math-Verify -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _mv():
    from vr_plugins.verify.math_libs import load_math_verify

    return load_math_verify()


def mv_equal(pred: str, target: str) -> bool | None:
    """Math-Verify's verdict on two normal forms; None when either side does not parse."""
    mv = _mv()
    gold = mv.parse(f"\\boxed{{{target}}}", parsing_timeout=None)
    got = mv.parse(f"\\boxed{{{pred}}}", parsing_timeout=None)
    if len(gold) < 2 or len(got) < 2:  # [sympy object, string]; a string alone is "did not parse"
        return None
    return bool(mv.verify(gold, got, timeout_seconds=None))


# --- vetoes ----------------------------------------------------------------------------------------
_STRICT = re.compile(r"<|>|\\lt\b|\\gt\b")
_NONSTRICT = re.compile(r"<=|>=|\\le(?:q|qslant)?\b|\\ge(?:q|qslant)?\b|≤|≥")
_NEQ = re.compile(r"\\neq?\b|!=|≠")
_INTERVAL = re.compile(r"^[\[(]\s*[^\[\]()]+?\s*,\s*[^\[\]()]+?\s*[\])]$")
_INTEGERS = re.compile(r"(?<![\d.])\d{2,}(?![\d.])")


def _relations(s: str) -> tuple[int, int, int]:
    s2 = _NONSTRICT.sub(" ", s)
    return len(_STRICT.findall(s2)), len(_NONSTRICT.findall(s)), len(_NEQ.findall(s))


def _interval_ends(s: str) -> str | None:
    parts = [p.strip() for p in re.split(r"\\cup|∪", s)]
    if not all(_INTERVAL.match(p) for p in parts):
        return None
    return "".join(p[0] + p[-1] for p in parts)


def _wrapper(s: str) -> str | None:
    """"set" for ``\\{...\\}``, "tuple/interval" for ``(...)``/``[...]``, "matrix", else None."""
    s = s.strip()
    if s.startswith("\\{") and s.endswith("\\}"):
        return "set"
    if s[:1] in "([" and s[-1:] in ")]" and len(split_top(s[1:-1])) > 1:
        return "tuple/interval"
    if s.startswith("\\begin{"):
        return "matrix"
    return None


def vetoes(pred: str, target: str) -> list[str]:
    """Reasons a Math-Verify "equal" must not stand (each an exactness the field's graders get wrong)."""
    out = []
    rp, rt = _relations(pred), _relations(target)
    if (any(rp) or any(rt)) and rp != rt:
        out.append("relations differ (strict/non-strict/not-equal)")
    ep, et = _interval_ends(pred), _interval_ends(target)
    if ep is not None and et is not None and ep != et:
        out.append(f"interval ends differ ({ep} vs {et})")
    for one, other in ((pred, target), (target, pred)):
        if parse_number(one) is not None and len(split_top(other)) > 1:
            out.append("one value against several")
    pn = parse_number(pred)
    if pn is not None and pn.places is not None and pn.places >= 3 and parse_number(target) is None:
        out.append("a rounded decimal for an exact answer")
    kp, kt = _wrapper(pred), _wrapper(target)
    if kp and kt and kp != kt:
        out.append(f"different kinds of collection ({kp} vs {kt})")
    if bool(_BASE.search(pred.replace(" ", ""))) != bool(_BASE.search(target.replace(" ", ""))):
        out.append("one side has a base subscript")
    ip, it = sorted(_INTEGERS.findall(pred)), sorted(_INTEGERS.findall(target))
    if ip and it and len(ip) == len(it) and ip != it and not any(c in pred + target for c in "^!\\*+-/"):
        out.append(f"integers differ ({' '.join(ip)[:40]} vs {' '.join(it)[:40]})")
    return out


# --- one comparison --------------------------------------------------------------------------------
def split_top(s: str) -> list[str]:
    """Top-level comma-separated items (commas inside brackets, braces or parentheses do not split)."""
    items, depth, cur = [], 0, []
    for c in s:
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
    items.append("".join(cur).strip())
    return [i for i in items if i]


def _join_words(s: str) -> str:
    """``2 \\text{ and } 3``, ``2 or 3``: alternatives as a comma list."""
    return re.sub(r"\s*(?:\\text\s*\{\s*(?:and|or)\s*\}|\b(?:and|or)\b)\s*", ", ", s)


def equal(pred: str, target: str) -> tuple[bool, str]:
    """Compare one extracted prediction with one target answer; ``(correct, reason)``."""
    check_shape(pred, "the answer")
    check_shape(target, "the target answer")
    p, p_lhs, p_unit = normalize(_join_words(pred))
    t, t_lhs, t_unit = normalize(_join_words(target))
    if p_unit and t_unit and p_unit.rstrip("s") != t_unit.rstrip("s"):
        return False, f"different units ({p_unit} vs {t_unit})"
    if not p:
        return False, "empty answer"
    if len(re.sub(r"[^0-9]", "", p)) > 400 and re.fullmatch(r"[-+\d.,\s]+", p):
        raise BadAnswer(f"the answer is a number of {len(p)} characters (limit 400)")
    if p_lhs and t_lhs and p_lhs != t_lhs:
        return False, f"left-hand sides differ ({p_lhs} vs {t_lhs})"
    if p == t:
        return True, "identical after normalisation"
    p_items, t_items = split_top(p), split_top(t)
    if len(p_items) > 1 and len(p_items) == len(t_items):  # "x=2, x=3": strip a left-hand side per item
        p = ", ".join(normalize(i)[0] for i in p_items)
        t = ", ".join(normalize(i)[0] for i in t_items)
        if p == t:
            return True, "identical after normalisation"
    pn, tn = parse_number(p), parse_number(t)
    if pn is not None and tn is not None:
        return numbers_equal(pn, tn)
    pc, tc = number_collection(p), number_collection(t)
    if pc is not None and tc is not None:
        verdict = collections_equal(pc, tc)
        if verdict is not None:
            return verdict
    if (pn is None) != (tn is None) and (p.endswith("%") or t.endswith("%")):
        return False, "a percentage against a non-number"
    p_mv, t_mv = p.rstrip("%") if pn is None else p, t.rstrip("%") if tn is None else t
    verdict = mv_equal(p_mv, t_mv)
    if verdict is None:
        return False, "Math-Verify could not parse " + ("the answer" if mv_equal_parses(p_mv) is False else "the target")
    if not verdict:
        return False, "Math-Verify: not equivalent"
    veto = vetoes(p, t)
    if veto:
        return False, "checks disagree, graded incorrect: Math-Verify equal but " + "; ".join(veto)
    return True, "Math-Verify: equivalent"


def mv_equal_parses(text: str) -> bool:
    return len(_mv().parse(f"\\boxed{{{text}}}", parsing_timeout=None)) >= 2
