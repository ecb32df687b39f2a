"""An exact-string verifier for the ``exact`` source family (e.g. answers that are names or codes)."""

from vr_plugins.verify.math import extract_boxed


def check(question_row, response, options=None):
    gold = question_row.get("gold_answer")
    if not gold:
        return False, "no gold answer for an exact-string check"
    answer = extract_boxed(response)
    if answer is None:
        return False, "no \\boxed{} answer in the response"
    return (answer.strip() == gold.strip()), ("exact match" if answer.strip() == gold.strip() else "mismatch")
