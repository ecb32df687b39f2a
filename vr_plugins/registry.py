"""Name -> object registries, filled by calling each plugin's ``register_<kind>`` hook.

Each plugin's hook is called on its own, so a hook that raises, or registers an object of the wrong
type, is reported with the plugin's name and skipped while every other plugin still loads.
"""

from __future__ import annotations

import difflib
import warnings
from typing import Any

from vr_plugins import types as t
from vr_plugins.errors import UserError
from vr_plugins import plugins
from vr_plugins.plugins import PluginLoadWarning, get_plugin_manager

#: kind -> (hook name, expected type)
KINDS: dict[str, tuple[str, type]] = {
    "templates": ("register_templates", t.Template),
    "losses": ("register_losses", t.Loss),
    "dataset_formats": ("register_dataset_formats", t.DatasetFormat),
    "estimators": ("register_estimators", t.Estimator),
    "verifiers": ("register_verifiers", t.Verifier),
    "eval_tasks": ("register_eval_tasks", t.EvalTask),
    "commands": ("register_commands", t.Command),
}


class UnknownNameError(UserError, KeyError):
    """An unknown template/estimator/... name; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        #: "loss", "dataset format", ... for messages
        self.singular = kind.removesuffix("es" if kind == "losses" else "s").replace("_", " ")
        self._items: dict[str, Any] = {}
        self._owners: dict[str, str] = {}
        self.errors: list[str] = []
        #: verifiers only: source family -> verifier, built by ``family_index()``
        self.family_index: dict[str, Any] | None = None
        self._load()

    def _load(self) -> None:
        hook_name, expected = KINDS[self.kind]
        pm = get_plugin_manager()
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            plugin_name = impl.plugin_name

            def register(obj, _plugin=plugin_name, _expected=expected):
                if not isinstance(obj, _expected):
                    raise TypeError(
                        f"{hook_name} expects {_expected.__module__}.{_expected.__name__} objects, "
                        f"got {type(obj).__name__}: {obj!r:.80}"
                    )
                if not isinstance(obj.name, str) or not obj.name:
                    raise TypeError(f"{hook_name}: every registered object needs a non-empty str name")
                if obj.name in self._items:
                    raise ValueError(
                        f"{self.singular} {obj.name!r} is already registered by plugin "
                        f"{self._owners[obj.name]!r}"
                    )
                self._items[obj.name] = obj
                self._owners[obj.name] = _plugin

            try:
                impl.function(**{name: register for name in impl.argnames})
            except Exception as exc:  # noqa: BLE001 - foreign code: report and keep the host running
                message = (
                    f"vr_plugins: plugin {plugin_name!r} failed in {hook_name}: "
                    f"{type(exc).__name__}: {exc}"
                )
                self.errors.append(message)
                warnings.warn(message, PluginLoadWarning, stacklevel=3)

    def get(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            known = sorted(self._items)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownNameError(
                f"unknown {self.singular} {name!r}.{hint} Known: {', '.join(known) or '(none)'}"
            ) from None

    def owner(self, name: str) -> str:
        self.get(name)
        return self._owners[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self):
        return sorted(self._items.items())

    def items_in_order(self):
        """(name, object) in registration order: built-in plugins first, then third-party ones."""
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)


_cache: dict[str, Registry] = {}
_cache_generation = -1  # plugins.generation() the cache was built for


def registry(kind: str) -> Registry:
    """The registry of one kind (``templates``, ``estimators``, ...), built on first use."""
    global _cache_generation
    if kind not in KINDS:
        raise UnknownNameError(f"unknown registry kind {kind!r}. Known: {', '.join(KINDS)}")
    if _cache_generation != plugins.generation():
        _cache.clear()
        _cache_generation = plugins.generation()
    if kind not in _cache:
        _cache[kind] = Registry(kind)
    return _cache[kind]


def reset() -> None:
    """Forget the built registries (plugins.register_plugin/unregister_plugin make this happen by themselves)."""
    _cache.clear()


class FamilyCollisionWarning(PluginLoadWarning):
    """Two verifiers claim the same source family; the message names both and the one used."""


# Typed lookups, one per kind: callers get the registered type back, and a typo lists the known names.


def get_template(name: str) -> t.Template:
    return registry("templates").get(name)


def get_loss(name: str) -> t.Loss:
    return registry("losses").get(name)


def get_dataset_format(name: str) -> t.DatasetFormat:
    return registry("dataset_formats").get(name)


def get_estimator(name: str) -> t.Estimator:
    return registry("estimators").get(name)


def get_verifier(name: str) -> t.Verifier:
    return registry("verifiers").get(name)


def get_eval_task(name: str) -> t.EvalTask:
    return registry("eval_tasks").get(name)


def get_command(name: str) -> t.Command:
    return registry("commands").get(name)


def family_index() -> dict[str, t.Verifier]:
    """Source family -> the verifier that grades it.

    Verifiers are indexed in registration order (built-ins first, then third-party plugins), so a plugin
    that claims a family a built-in already handles takes it over. Because that changes every grade of
    the family, each collision is reported once per registry build with a ``FamilyCollisionWarning``
    naming both verifiers, their plugins, and the one used.
    """
    verifiers = registry("verifiers")
    if verifiers.family_index is None:
        index: dict[str, t.Verifier] = {}
        for name, verifier in verifiers.items_in_order():
            for family in verifier.families:
                previous = index.get(family)
                if previous is not None:
                    warnings.warn(
                        f"vr_plugins: source family {family!r} is claimed by verifier {previous.name!r} (plugin "
                        f"{verifiers.owner(previous.name)!r}) and by verifier {name!r} (plugin "
                        f"{verifiers.owner(name)!r}); using {name!r}, registered later",
                        FamilyCollisionWarning,
                        stacklevel=2,
                    )
                index[family] = verifier
        verifiers.family_index = index
    return verifiers.family_index


def get_verifier_for_family(family: str) -> t.Verifier:
    """The verifier registered for a source family; unknown families name the known ones."""
    index = family_index()
    if family in index:
        return index[family]
    raise UnknownNameError(f"no verifier handles source family {family!r}. Known families: {', '.join(sorted(index))}")
