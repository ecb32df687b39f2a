"""SkyThought adapter: compatibility shims before ``skythought.evals`` loads, registrations after.

Only this package touches SkyThought internals, and only on tested versions.
"""

from __future__ import annotations

from vr_plugins.hosts._version_guard import warn_if_untested

DIST = "skythought"
TESTED_VERSIONS = ("0.1.0",)


def before_exec(module_name: str) -> None:
    if module_name == "skythought.evals":
        from vr_plugins.hosts.skythought.compat import apply_shims

        apply_shims()


def after_exec(module_name: str, module) -> None:
    if not warn_if_untested(DIST, TESTED_VERSIONS):
        return
