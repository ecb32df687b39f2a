"""The one plugin manager: built-in plugins first, then third-party ones from the entry-point group.

Built-ins are registered exactly like third-party plugins (datasette's DEFAULT_PLUGINS pattern), so the
plugin API is exercised by our own features. A third-party plugin that fails to import is reported by
name and skipped: a broken plugin must never stop a host from starting.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from importlib import metadata

import pluggy

from vr_plugins import hookspecs

ENTRY_POINT_GROUP = "vr_plugins"

DEFAULT_PLUGINS = (
    "vr_plugins.builtin.templates",
    "vr_plugins.builtin.losses",
    "vr_plugins.builtin.dataset_formats",
    "vr_plugins.builtin.estimators",
    "vr_plugins.builtin.verifiers",
    "vr_plugins.builtin.eval_tasks",
    "vr_plugins.builtin.commands",
)


class PluginLoadWarning(UserWarning):
    """A third-party plugin could not be loaded or registered something malformed."""


_pm: pluggy.PluginManager | None = None
#: bumped whenever the set of plugins changes; the registries rebuild when it moved (``registry`` reads it,
#: so this module never imports ``registry``: dependencies point one way)
_generation = 0


def generation() -> int:
    """How many times the plugin set changed in this process (the registries' cache key)."""
    return _generation


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - report any failure of foreign code, keep going
            warnings.warn(
                f"vr_plugins: plugin {ep.name!r} (entry point {ep.value!r}) failed to load and was "
                f"skipped: {type(exc).__name__}: {exc}",
                PluginLoadWarning,
                stacklevel=2,
            )


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created on first use."""
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        pm.add_hookspecs(hookspecs)
        for module_name in DEFAULT_PLUGINS:
            pm.register(importlib.import_module(module_name), name=module_name)
        _load_entry_points(pm)
        _pm = pm
    return _pm


def register_plugin(plugin, name: str | None = None) -> None:
    """Register a plugin object or module at run time (tests, notebooks) and refresh the registries."""
    global _generation
    get_plugin_manager().register(plugin, name=name)
    _generation += 1


def unregister_plugin(name: str) -> None:
    global _generation
    pm = get_plugin_manager()
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _generation += 1


def _reset_for_tests() -> None:
    global _pm, _generation
    _pm = None
    _generation += 1
    sys.modules.pop("vr_plugins.registry", None)
