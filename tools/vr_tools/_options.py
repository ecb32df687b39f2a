"""A Click option from an options dataclass field, so a command's defaults, types, help and choices are the
ones declared in :mod:`vr_plugins.options` / :mod:`vr_plugins.estimators.options` (one source of truth;
``tests/test_options.py`` checks every such option against its field)."""

from __future__ import annotations

import typing
from dataclasses import fields

import click

from vr_plugins.options import option_default, option_field

#: attributes set on every generated click.Option, for the drift test: (dataclass, field name), and the
#: names of the keyword arguments the command gave instead of the field's (e.g. a command-specific help)
SOURCE_ATTR = "vr_option_source"
OVERRIDES_ATTR = "vr_option_overrides"


def _base_type(tp):
    """``X | None`` -> X; anything else as it is."""
    args = typing.get_args(tp)
    if type(None) in args:
        return next(a for a in args if a is not type(None))
    return tp


def is_list_field(cls: type, name: str) -> bool:
    """A ``tuple[str, ...]`` field: one comma-separated word on the command line."""
    return typing.get_origin(_base_type(typing.get_type_hints(cls)[name])) is tuple


def cli_default(cls: type, name: str):
    """The field's default as the command line spells it (a tuple of words: comma-separated)."""
    default = option_default(cls, name)
    return ",".join(default) if is_list_field(cls, name) else default


def parse_list(text: str) -> tuple[str, ...]:
    """The command-line form of a ``tuple[str, ...]`` field: ``"a, b"`` -> ``("a", "b")``; ``""`` -> ``()``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def from_field(cls: type, name: str, *param_decls: str, **overrides):
    """``click.option`` for the field ``name`` of ``cls``: ``--<name-with-dashes>`` unless ``param_decls``
    are given (give ``"--x/--no-x"`` for a bool that defaults to True); default, type (``click.Choice`` for
    ``choices``, ``IntRange``/``FloatRange`` for ``min``), help, metavar and show_default from the field.
    ``overrides`` are passed to ``click.option`` last (for what is not the field's: ``"name"``, ``callback``)."""
    f = option_field(cls, name)
    meta = f.metadata
    tp = _base_type(typing.get_type_hints(cls)[name])
    default = cli_default(cls, name)
    kwargs: dict = {"default": default, "help": meta["help"]}
    if tp is bool:
        if not any("/" in d for d in param_decls):
            kwargs["is_flag"] = True
        show = default is True
    else:
        if "choices" in meta:
            kwargs["type"] = click.Choice(list(meta["choices"]))
        elif tp is int:
            kwargs["type"] = click.IntRange(min=meta["min"]) if "min" in meta else int
        elif tp is float:
            kwargs["type"] = click.FloatRange(min=meta["min"]) if "min" in meta else float
        show = default is not None
    kwargs["show_default"] = meta.get("show_default", show)
    if "metavar" in meta:
        kwargs["metavar"] = meta["metavar"]
    kwargs.update(overrides)
    decls = param_decls or (f"--{name.replace('_', '-')}",)
    make = click.option(*decls, **kwargs)

    def decorator(func):
        func = make(func)
        param = func.__click_params__[-1]
        setattr(param, SOURCE_ATTR, (cls, name))
        setattr(param, OVERRIDES_ATTR, frozenset(overrides))
        return func

    return decorator


def from_fields(cls: type, *names: str):
    """Options for several fields of ``cls`` (all of them when no names are given), in the given order."""
    names = names or tuple(f.name for f in fields(cls))

    def decorator(func):
        for name in reversed(names):
            func = from_field(cls, name)(func)
        return func

    return decorator
