"""LLaMA-Factory adapter: applies the registry when LLaMA-Factory's modules load.

Called by the post-import hook (``vr_plugins._bootstrap``) before and after each hooked module
executes. Only this package touches LLaMA-Factory internals, and only on tested versions.
"""

from __future__ import annotations

from vr_plugins.hosts._version_guard import warn_if_untested

DIST = "llamafactory"
TESTED_VERSIONS = ("0.9.5",)


def before_exec(module_name: str) -> None:
    """Nothing needs to happen before LLaMA-Factory's modules run."""


def after_exec(module_name: str, module) -> None:
    if not warn_if_untested(DIST, TESTED_VERSIONS):
        return
    if module_name == "llamafactory.data.template":
        from vr_plugins.hosts.llamafactory.templates import register_templates

        register_templates(module)
