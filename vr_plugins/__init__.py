"""variational-reasoning: the method of arXiv 2509.22637 as plugins for LLaMA-Factory and SkyThought.

This module must stay cheap to import (the ``.pth`` bootstrap runs in every interpreter of the
environment), so everything beyond the version is loaded lazily on first attribute access.
"""

__version__ = "0.1.0"

_LAZY = {
    "install": ("vr_plugins._bootstrap", "install"),
    "get_plugin_manager": ("vr_plugins.plugins", "get_plugin_manager"),
    "registry": ("vr_plugins.registry", "registry"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        return getattr(importlib.import_module(module_name), attr)
    raise AttributeError(f"module 'vr_plugins' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
