"""Imported once by the check pool's forkserver, so every worker (and every replacement after a kill)
starts warm: sympy, both math backends and their lazily built parsers are loaded here, once, and
inherited by fork. Without this a fresh worker's first check pays the lazy imports and can exceed a
short per-item timeout, which would kill it again (a restart cascade)."""

from vr_plugins.verify import code, math, math_libs  # noqa: F401

math_libs.quiet_antlr()  # before latex2sympy2 builds its parsers at import time
for _backend in math.BACKENDS:
    try:
        for _response, _gold in ((r"\boxed{\frac{1}{2}}", "0.5"), (r"\boxed{(x+1)^2}", "x^2+2x+1"), (r"\boxed{(1,2)}", "(1, 2)")):
            math.grade_math(_response, _gold, backend=_backend)
    except ImportError:  # a backend that is not installed fails later, with its own message, when used
        pass
