"""Math answer checking: extract the final answer of a generation and compare it with the gold answer
or with the answer of the reference solution (either match counts, docs/method.md, step 7).

Three backends (graders):

- ``"vr"`` (default): :mod:`vr_plugins.verify.math_vr` on answers cut out by
  :mod:`vr_plugins.verify.math_extract` (solution section, every box, end markers stripped): exact
  numbers, Math-Verify for the rest, vetoes that never turn a disagreement into "correct";
- ``"skythought"``: SkyThought's ``strip_answer_string`` + ``math_equal``, exactly the path of
  its NUMINA/MATH handlers, so grades agree with the paper's evaluation (reference parity; its known
  false positives are listed in docs/verification.md);
- ``"math_verify"``: Hugging Face Math-Verify (``parse`` + ``verify``) on the last box.

No backend has a usable timeout off the main thread (both rely on signals), so these functions do
no timing at all: callers that grade untrusted text in bulk run them in :mod:`vr_plugins.verify.pool`,
whose workers are killed when an item exceeds its CPU budget (or a generous wall-clock backstop). Module import is cheap; sympy and the
backends load on first use.
"""

from __future__ import annotations

from vr_plugins.verify import math_extract, math_libs

#: The graders ``--math-backend`` accepts; the first is the default.
BACKENDS = ("vr", "skythought", "math_verify")
DEFAULT_BACKEND = "vr"

#: One extraction function for the whole project (``vr-tools prepare`` imports it too).
extract_boxed = math_extract.last_boxed


def grader_name(backend: str) -> str:
    """How summaries name the grader that produced a number, e.g. ``"vr (Math-Verify 0.9.0 + exact)"``."""
    try:
        from importlib.metadata import version

        mv = version("math-verify")
    except Exception:  # noqa: BLE001 - a label only
        mv = "?"
    return {"vr": f"vr (exact numbers + Math-Verify {mv} + vetoes)", "skythought": "skythought math_equal (paper parity)",
            "math_verify": f"math_verify {mv} (last box)"}.get(backend, backend)


_math_verify = math_libs.load_math_verify


def _skythought():
    """The SkyThought grader's functions (its adapter is the one module that imports SkyThought)."""
    from vr_plugins.hosts.skythought import grading

    return grading


def extract_answer(text: str | None) -> str | None:
    """The final answer of a generation: the last ``\\boxed{}``; otherwise SkyThought's fallbacks
    ("final answer is $...$. I hope", "the answer is ...", "final answer is ...", the last number).
    Returns None when nothing answer-like is found."""
    if not text:
        return None
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed or None
    answer = _skythought().extract_answer(text)
    return answer if answer not in (None, "") else None


def _targets(gold: str | None, reference_solution: str | None, *, every_box: bool = False) -> list[tuple[str, str]]:
    """The answers a prediction may match. With ``every_box`` (the ``vr`` grader) a gold or a reference
    solution that boxes several values gives them all, comma-joined, instead of only the last one."""
    targets = []
    if gold is not None and str(gold).strip():
        gold = str(gold).strip()
        if every_box and "\\boxed" in gold and len(math_extract.all_boxed(gold)) > 1:
            gold = ", ".join(math_extract.all_boxed(gold))
        targets.append(("gold answer", gold))
    if reference_solution:
        if every_box:
            section = math_extract.solution_section(reference_solution)[0] or reference_solution
            boxes = math_extract.all_boxed(section)
            ref = ", ".join(dict.fromkeys(boxes)) if boxes else None
        else:
            ref = extract_boxed(reference_solution)
        if ref:
            targets.append(("reference solution answer", ref))
    return targets


def _equal_skythought(pred: str, target: str) -> bool:
    return _skythought().math_equal(pred, target)


def _equal_math_verify(pred: str, target: str) -> bool:
    mv = _math_verify()
    # parsing_timeout/timeout_seconds use SIGALRM, which fails off the main thread: the pool kills instead.
    gold_parsed = mv.parse(f"\\boxed{{{target}}}", parsing_timeout=None)
    pred_parsed = mv.parse(f"\\boxed{{{pred}}}", parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return pred.strip() == target.strip()
    return bool(mv.verify(gold_parsed, pred_parsed, timeout_seconds=None))


_EQUAL = {"skythought": _equal_skythought, "math_verify": _equal_math_verify}


def vr_candidate(section: str, target: str) -> str | None:
    """The prediction of a solution section for one target: its last box; every box, comma-joined (in
    parentheses for a parenthesised tuple), when the target is multi-valued and the last box is not; the
    unboxed fallback when there is no box."""
    from vr_plugins.verify.math_vr import normalize, split_top

    spans = math_extract.boxed_spans(section)
    if spans and not spans[-1][2]:
        return None  # cut off inside its last box: no final answer
    boxes = [section[s:e].strip() for s, e, _ in spans]
    if not boxes:
        return math_extract.unboxed_answer(section)
    last = boxes[-1]
    if len(boxes) == 1 or len(split_top(normalize(last)[0])) > 1:
        return last
    t = normalize(target)[0]
    if len(split_top(t)) > 1:
        return ", ".join(boxes)
    for left, right in (("(", ")"), ("\\{", "\\}")):  # a tuple or a set written as one
        if t.startswith(left) and t.endswith(right) and len(split_top(t[len(left):-len(right)])) == len(boxes):
            return left + ", ".join(boxes) + right
    return last


def _grade_vr(response: str, targets: list[tuple[str, str]]) -> tuple[bool, str]:
    from vr_plugins.verify.math_vr import BadAnswer, equal

    section, where = math_extract.solution_section(response)
    if section is None:
        return False, f"no answer found in the response ({where})"
    reasons = []
    pred = None
    for name, target in targets:
        pred = vr_candidate(section, target)
        if pred is None:
            cut = math_extract.boxed_spans(section)[-1:] and not math_extract.boxed_spans(section)[-1][2]
            detail = "its last \\boxed{} never closes" if cut else "no \\boxed{} and no number"
            return False, f"no answer found in the response ({where}: {detail})"
        try:
            ok, why = equal(pred, target)
        except BadAnswer as exc:
            ok, why = False, f"bad input: {exc}"
        except (Exception, RecursionError) as exc:  # noqa: BLE001 - a checker crash is a failed comparison
            ok, why = False, f"checker error: {type(exc).__name__}"
        if ok:
            return True, f"matches the {name} ({why})"
        reasons.append(f"{name}: {why}")
    return False, f"answer {pred[:80]!r} matches neither " + " nor ".join(n for n, _ in targets) + f" ({'; '.join(reasons)})"


def grade_math(
    response: str,
    gold: str | None,
    reference_solution: str | None = None,
    *,
    backend: str = DEFAULT_BACKEND,
) -> tuple[bool, str]:
    """Grade one generation. Correct when its answer equals ``gold`` or the answer of
    ``reference_solution``. Returns ``(correct, reason)``; never True without a comparison target."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown math backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    targets = _targets(gold, reference_solution, every_box=backend == "vr")
    if not targets:
        return False, "no gold answer and no \\boxed{} answer in the reference solution to compare with"
    if backend == "vr":
        return _grade_vr(response or "", targets)
    equal = _EQUAL[backend]
    pred = extract_answer(response)
    if pred is None:
        return False, "no answer found in the response"
    errors = []
    for name, target in targets:
        try:
            if equal(pred, target):
                return True, f"matches the {name}"
        except Exception as exc:  # noqa: BLE001 - a checker crash is a failed comparison, never a pass
            errors.append(f"{name}: {type(exc).__name__}")
    detail = f" (checker errors: {'; '.join(errors)})" if errors else ""
    return False, f"answer {pred[:80]!r} matches neither " + " nor ".join(n for n, _ in targets) + detail


def check(question_row: dict, response: str, options: dict | None = None) -> tuple[bool, str]:
    """The :class:`vr_plugins.types.Verifier` entry point for math families."""
    from vr_plugins.rundir.columns import GOLD_ANSWER, REFERENCE_SOLUTION

    options = options or {}
    return grade_math(
        response,
        question_row.get(GOLD_ANSWER),
        question_row.get(REFERENCE_SOLUTION),
        backend=options.get("math_backend", DEFAULT_BACKEND),
    )
