"""The things plugins register. Plain dataclasses, host-agnostic: host adapters translate them.

Callables are given either as objects or as ``"module:attribute"`` strings; strings are imported on first
use (:func:`resolve`), so registering a feature never imports torch or a host.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Union
from collections.abc import Callable

from vr_plugins.formats import Template  # noqa: F401  (re-exported: templates are registered as-is)

Target = Union[str, Callable[..., Any]]


def resolve(target: Target) -> Any:
    """Import a ``"module:attr"`` target (or return an object unchanged)."""
    if not isinstance(target, str):
        return target
    module_name, sep, attr = target.partition(":")
    if not sep:
        raise ValueError(f"expected 'module:attribute', got {target!r}")
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Loss:
    """A training loss, chosen in a recipe with ``vr_loss: <name>`` (default ``constant_normalizer``).

    ``factory(normalizer=C, scale=s)`` returns ``loss(logits, labels, token_weights=None) -> scalar``, where
    ``labels`` are unshifted and ``token_weights`` is None or float [batch, seq] aligned with them. A
    callable that also has ``from_hidden(hidden, weight, labels, token_weights=None)`` gets the final hidden
    states and the output layer's weight instead of the logits (no [tokens x vocab] tensor).
    """

    name: str
    factory: Target
    description: str = ""


@dataclass(frozen=True)
class DatasetFormat:
    """A dataset layout usable as LLaMA-Factory ``formatting:``.

    ``to_example(row, columns, template=None)`` maps one raw row to ``{"system": str, "user": str,
    "response": str, "weight": float | None}``; ``columns`` are the dataset_info column names (defaults in
    ``default_columns``); ``template`` is the recipe's registered template (a ``formats.Template``) or None
    (see ``vr_plugins.dataset_formats``).
    """

    name: str
    to_example: Target
    default_columns: dict[str, str] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True)
class Estimator:
    """Turns the scored (and optionally verified) traces of one run into training rows.

    ``build`` is called as ``build(inputs, options)`` by ``vr_plugins.estimators``; see that package
    for the exact inputs. ``needs_verification`` makes ``build`` refuse a run without verified files.
    """

    name: str
    build: Target
    needs_verification: bool = False
    description: str = ""


@dataclass(frozen=True)
class Verifier:
    """Grades a generation. ``check(question_row: dict, response: str, options) -> (correct, reason)``.

    ``families`` are the source families (``source`` column before the slash) it handles.
    """

    name: str
    families: tuple[str, ...]
    check: Target
    description: str = ""


@dataclass(frozen=True)
class EvalTask:
    """A SkyThought task: its YAML file and the handler class (``"module:Class"``, importable top-level)."""

    name: str
    yaml_path: str
    handler: str
    description: str = ""


@dataclass(frozen=True)
class Command:
    """A ``vr-tools`` subcommand: ``target`` resolves to a ``click.Command``."""

    name: str
    target: Target
    help: str = ""
