"""Imported once by the check pool's forkserver, so every worker (and every replacement after a kill)
starts with sympy and both math backends loaded. The ANTLR version notice is silenced first: latex2sympy2
builds its parsers at import time."""

from vr_plugins.verify import code, math  # noqa: F401

math._quiet_antlr()
for _name in ("skythought.evals.util.math_parsing_util", "math_verify"):
    try:
        __import__(_name)
    except ImportError:  # a backend that is not installed fails later, with its own message, when used
        pass
