"""Verification of generated answers: math answer checking and sandboxed execution of generated code.

Submodules stay cheap to import (no torch, no sympy until a math check runs):

- :mod:`vr_plugins.verify.math` - the math graders (``vr`` by default, SkyThought ``math_equal`` for
  paper parity, Math-Verify), :func:`~vr_plugins.verify.math.grade_math`;
- :mod:`vr_plugins.verify.math_extract` - where an answer is in a text (solution section, boxes, end
  markers, unboxed fallback): the one extraction ``prepare``, the verifier and the eval handlers share;
- :mod:`vr_plugins.verify.math_vr` - the ``vr`` comparison: exact numbers, Math-Verify, vetoes;
- :mod:`vr_plugins.verify.sandbox` - run one untrusted program in an isolated interpreter;
- :mod:`vr_plugins.verify.code` - APPS/TACO/LiveCodeBench test formats, :func:`~vr_plugins.verify.code.grade_code`;
- :mod:`vr_plugins.verify.pool` - worker processes with a hard kill per item (CPU budget or wall clock);
- :mod:`vr_plugins.verify.step` - the ``verify`` step over a run directory.
"""
