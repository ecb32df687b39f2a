"""Shims that let SkyThought 0.1.0's task package import on Python 3.11 without editing the install.

- ``inspect.getargspec`` was removed in Python 3.11; ``tasks/taco/pyext2.py`` calls it at import time.
- PyPI ``pyext`` cannot be built on 3.11; ``tasks/apps/apps_util.py`` imports only
  ``pyext.RuntimeModule.from_string``. Our tasks grade code in our own sandbox and never call it, so the
  stand-in module only provides that one name.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import types
from collections import namedtuple

ArgSpec = namedtuple("ArgSpec", "args varargs keywords defaults")


def _getargspec(func):
    spec = inspect.getfullargspec(func)
    return ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)


class RuntimeModule:
    """Minimal ``pyext.RuntimeModule`` (only ``from_string``), for SkyThought's APPS import."""

    @staticmethod
    def from_string(name, doc, code=None):
        if code is None:
            doc, code = "", doc
        module = types.ModuleType(name, doc)
        exec(code, module.__dict__)  # noqa: S102 - same behaviour as pyext; never called by our tasks
        return module


def apply_shims() -> None:
    if not hasattr(inspect, "getargspec"):
        inspect.getargspec = _getargspec
    if "pyext" not in sys.modules and importlib.util.find_spec("pyext") is None:
        module = types.ModuleType("pyext", "vr_plugins compatibility stand-in: RuntimeModule.from_string only")
        module.RuntimeModule = RuntimeModule
        sys.modules["pyext"] = module
