"""Auto-activation: a post-import hook that applies the plugin registry to the hosts.

``vr_plugins_bootstrap.pth`` (installed at the site-packages root) runs :func:`activate` in every
interpreter of the environment, torchrun and DeepSpeed workers included. It must stay cheap and use the
standard library only: it installs one ``sys.meta_path`` finder that ignores every module except the few
host modules in :data:`HOOKED_MODULES`; when one of those loads, the host adapter is called before and
after the module's own code runs. Nothing of ``vr_plugins`` beyond this file is imported until a host
module is.

``VR_PLUGINS_DISABLE=1`` turns the automatic activation off (the kill switch). :func:`install` activates
explicitly, for environments that skip ``.pth`` files, and also patches host modules imported earlier.
"""

import os
import sys

DISABLE_ENV = "VR_PLUGINS_DISABLE"

#: host module -> adapter module (which defines ``before_exec(name)`` and ``after_exec(name, module)``).
HOOKED_MODULES = {
    "llamafactory.data.template": "vr_plugins.hosts.llamafactory",
    "llamafactory.data.converter": "vr_plugins.hosts.llamafactory",
    "llamafactory.data.parser": "vr_plugins.hosts.llamafactory",
    "llamafactory.hparams.parser": "vr_plugins.hosts.llamafactory",
    "llamafactory.data.processor.supervised": "vr_plugins.hosts.llamafactory",
    "llamafactory.data.collator": "vr_plugins.hosts.llamafactory",
    "llamafactory.train.sft.trainer": "vr_plugins.hosts.llamafactory",
    "skythought.evals": "vr_plugins.hosts.skythought",
    "skythought.evals.tasks": "vr_plugins.hosts.skythought",
    "skythought.evals.models.base": "vr_plugins.hosts.skythought",
    "skythought.evals.inference_and_check": "vr_plugins.hosts.skythought",
}


def _disabled():
    # The .pth line repeats this test before importing this module, so a disabled environment pays
    # nothing at start-up; keep the two in step.
    return os.environ.get(DISABLE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _call_adapter(module_name, hook, *args):
    try:
        adapter = __import__(HOOKED_MODULES[module_name], fromlist=["_"])
        getattr(adapter, hook)(module_name, *args)
        if args:
            args[0].__vr_plugins_applied__ = True
    except Exception as exc:  # a plugin problem must never stop the host from importing
        sys.stderr.write(
            f"[vr_plugins] warning: could not apply plugins to {module_name} ({hook}): "
            f"{type(exc).__name__}: {exc}\n"
        )


class _HookedLoader:
    """Wraps a host module's loader to run the adapter around ``exec_module``."""

    def __init__(self, loader, module_name):
        self._loader = loader
        self._name = module_name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        _call_adapter(self._name, "before_exec")
        self._loader.exec_module(module)
        _call_adapter(self._name, "after_exec", module)

    def __getattr__(self, name):  # get_source, get_code, is_package, ... for tracebacks and pkgutil
        return getattr(self._loader, name)


class HostModuleFinder:
    """A meta-path finder that only answers for :data:`HOOKED_MODULES`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in HOOKED_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _HookedLoader(spec.loader, fullname)
                return spec
        return None

    def invalidate_caches(self):
        pass


def _installed():
    return any(isinstance(f, HostModuleFinder) or type(f).__name__ == "HostModuleFinder" for f in sys.meta_path)


def activate():
    """Called by the ``.pth`` file: install the finder unless the kill switch is set."""
    if _disabled() or _installed():
        return
    sys.meta_path.insert(0, HostModuleFinder())


def install():
    """Explicit activation: install the finder and patch host modules that are already imported.

    Unlike the ``.pth`` path this ignores ``VR_PLUGINS_DISABLE``: calling it is an explicit request.
    Returns the names of already-imported host modules that were patched now.
    """
    if not _installed():
        sys.meta_path.insert(0, HostModuleFinder())
    patched = []
    for name in HOOKED_MODULES:
        module = sys.modules.get(name)
        if module is not None and not getattr(module, "__vr_plugins_applied__", False):
            _call_adapter(name, "after_exec", module)
            patched.append(name)
    return patched
