"""Each estimator's options, declared once (default, type, help), and the options object they all receive.

- :class:`CandidateOptions`: the length cap every built-in estimator applies (``within_cap``);
- :class:`AccOptions`: acc's fallback families (also the report's fallback rates);
- :class:`SnisOptions`: snis' log weight and resampling.

``vr-tools build`` makes one option per field (help and defaults from here, see :mod:`vr_tools._options`),
so an estimator's options are not part of the shared build options (:class:`vr_plugins.options.BuildStepOptions`).
:class:`BuildOptions`, what ``select(inputs, options)`` receives, is the union of the built-in ones plus
``extra`` (``--option key=value``): the plugin contract keeps one object, and the run manifest keeps
recording the same parameters. A plugin declares its own dataclass the same way and reads it from
``extra`` with :func:`from_extra`.

This module imports nothing of the estimators, so each of them (and the CLI) can import it.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vr_plugins.errors import UserError
from vr_plugins.options import option

#: ``SnisOptions.log_weight`` values (docs/estimators.md)
LOG_WEIGHTS = ("gml", "iwae", "acc")


class EstimatorOptionError(UserError, ValueError):
    """An estimator option that is unknown or does not parse as its field's type."""


@dataclass(frozen=True)
class CandidateOptions:
    """The rule every built-in estimator shares: a trace is a candidate only below the length cap."""

    max_think_tokens: int = option(28000, "A trace is a candidate only if think_tokens is below this.", min=1)


@dataclass(frozen=True)
class AccOptions:
    """acc: source families whose questions without a candidate take the GML choice instead of the original."""

    fallback_families: tuple[str, ...] = option(
        ("ruc",), "Comma-separated source families that fall back to the GML choice under acc ('' for none).")


@dataclass(frozen=True)
class SnisOptions:
    """snis: the log importance weight of a trace, and resampling by weight instead of soft weights."""

    seed: int = option(0, "Seed of --resample.")
    resample: int | None = option(None, "snis only: draw this many traces per question by weight instead of "
                                  "writing soft weights.", min=1)
    log_weight: str = option("gml", "snis only: the log importance weight of a trace.", choices=LOG_WEIGHTS)


@dataclass(frozen=True)
class BuildOptions(SnisOptions, AccOptions, CandidateOptions):
    """What every estimator's ``select(inputs, options)`` receives: the built-in estimators' options (fields
    in the order max_think_tokens, fallback_families, seed, resample, log_weight) and ``extra``, the
    free-form ``--option key=value`` pairs for plugin estimators (:func:`from_extra`)."""

    extra: Mapping[str, Any] = field(default_factory=dict)


#: the defaults, for ``max_think_tokens: int = CANDIDATES.max_think_tokens`` elsewhere
CANDIDATES = CandidateOptions()
ACC = AccOptions()
SNIS = SnisOptions()


def _parse(text: str, tp, key: str, owner: str):
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if type(None) in args:
        if text.strip().lower() in ("", "none", "null"):
            return None
        tp = next(a for a in args if a is not type(None))
    if tp is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise EstimatorOptionError(f"{owner}: option {key}={text!r}: expected true or false")
    if origin is tuple:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise EstimatorOptionError(f"{owner}: option {key}={text!r}: expected {tp.__name__}") from None
    return text


def from_extra(cls: type, extra: Mapping[str, Any], owner: str = "estimator") -> Any:
    """An instance of the options dataclass ``cls`` from ``BuildOptions.extra`` (``--option key=value``):
    string values are parsed as each field's type, values of other types are taken as they are; missing
    keys keep their defaults; an unknown key or a bad value is an :class:`EstimatorOptionError` naming it."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(extra) - names)
    if unknown:
        raise EstimatorOptionError(f"{owner}: unknown option(s) {', '.join(unknown)}; "
                                   f"known: {', '.join(sorted(names))}")
    values = {k: _parse(v, hints[k], k, owner) if isinstance(v, str) else v for k, v in extra.items()}
    choices = {f.name: f.metadata.get("choices") for f in dataclasses.fields(cls)}
    for key, value in values.items():
        if choices[key] and value not in choices[key]:
            raise EstimatorOptionError(f"{owner}: option {key}={value!r}: choose one of {', '.join(choices[key])}")
    return cls(**values)
