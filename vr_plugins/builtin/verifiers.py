"""Built-in verifiers: math answers (the ``vr`` grader, SkyThought ``math_equal`` or Math-Verify) and sandboxed code tests.

Families are the ``source`` prefix of a question (``numina/12`` -> ``numina``). Checks are given as
``"module:attr"`` strings so registering imports nothing heavy, and so pool workers can import them.
"""

from vr_plugins.hookspecs import hookimpl
from vr_plugins.types import Verifier

MATH_FAMILIES = ("numina", "ruc", "still", "math", "math500", "aime", "amc", "olympiadbench", "gsm8k",
                 "deepscaler", "openr1", "omni_math", "minerva", "bespoke_math")
CODE_FAMILIES = ("apps", "taco", "livecodebench", "code", "codecontests", "codeforces")


@hookimpl
def register_verifiers(register):
    register(Verifier(
        name="math",
        families=MATH_FAMILIES,
        check="vr_plugins.verify.math:check",
        description="Answer of the solution section (its boxes, else an unboxed fallback) vs the gold answer or "
        "the reference solution's answer; options: math_backend = vr (default) | skythought (paper parity) | "
        "math_verify.",
    ))
    register(Verifier(
        name="code",
        families=CODE_FAMILIES,
        check="vr_plugins.verify.code:check",
        description="Last fenced code block run on APPS/TACO input_output or LiveCodeBench tests in an "
        "isolated sandbox; correct only when every test passes. Options: code_timeout_s, memory_mb.",
    ))
