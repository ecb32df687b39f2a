"""Verification of generated answers: math answer checking and sandboxed execution of generated code.

Submodules stay cheap to import (no torch, no sympy until a math check runs):

- :mod:`vr_plugins.verify.math` - answer extraction and equivalence (SkyThought ``math_equal`` or
  Math-Verify), :func:`~vr_plugins.verify.math.grade_math`;
- :mod:`vr_plugins.verify.sandbox` - run one untrusted program in an isolated interpreter;
- :mod:`vr_plugins.verify.code` - APPS/TACO/LiveCodeBench test formats, :func:`~vr_plugins.verify.code.grade_code`;
- :mod:`vr_plugins.verify.pool` - worker processes with a hard wall-clock kill per item;
- :mod:`vr_plugins.verify.step` - the ``verify`` step over a run directory.
"""
