"""Dataset rows -> training examples, for the project's three layouts (host-agnostic).

Each ``to_*`` function maps one raw row to::

    {"system": str, "user": str, "response": str, "weight": float | None}

``system`` and ``user`` are the texts of the chat turns (the assistant prefill comes from the template);
``response`` is what is supervised. ``columns`` maps the logical names of a format (``question``,
``think``, ...) to the dataset's column names; it comes from the ``columns`` of a LLaMA-Factory
``dataset_info.json`` entry, over the format's defaults. Every prompt text and marker comes from
``vr_plugins.formats``: nothing here writes one.

- ``vr_reasoning``: question / think / solution [/ system]; response = ``formats.render_response``.
  The prompt is the reasoning template (or the template named by the recipe when it is a registered
  non-posterior template).
- ``vr_posterior``: question / solution / think; the prompt is the posterior template named by the recipe
  (``vr_posterior_a`` or ``vr_posterior_b``) rendered with the reference solution; the response is the
  thinking trace followed by the end-of-thought marker, so the posterior learns where a trace stops
  (the sampler cuts there).
- ``vr_build``: the run directory's ``datasets/<name>.parquet`` (prompt_idx, question, response, source,
  estimator, weight, average_correctness); the prompt is the question under the reasoning template, the
  response column is used as is, the weight column feeds ``use_sample_weights``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vr_plugins import formats
from vr_plugins.errors import UserError
from vr_plugins.losses import validate_weight


class DefaultColumns(Mapping):
    """Logical name -> default column name; run-directory names (``"rundir:QUESTION"``) are looked up in
    ``vr_plugins.rundir.columns`` on first use, so registering the formats does not import pyarrow."""

    def __init__(self, **spec: str):
        self._spec = spec
        self._resolved: dict[str, str] | None = None

    def _columns(self) -> dict[str, str]:
        if self._resolved is None:
            from vr_plugins.rundir import columns as rc

            self._resolved = {
                key: getattr(rc, value.partition(":")[2]) if value.startswith("rundir:") else value
                for key, value in self._spec.items()
            }
        return self._resolved

    def __getitem__(self, key: str) -> str:
        return self._columns()[key]

    def __iter__(self):
        return iter(self._spec)

    def __len__(self) -> int:
        return len(self._spec)

    def __repr__(self) -> str:
        return f"DefaultColumns({self._columns()!r})"


REASONING_COLUMNS = DefaultColumns(
    question="rundir:QUESTION", think="think", solution="solution", system="system", weight="rundir:WEIGHT"
)
POSTERIOR_COLUMNS = DefaultColumns(question="rundir:QUESTION", think="think", solution="solution", weight="rundir:WEIGHT")
BUILD_COLUMNS = DefaultColumns(question="rundir:QUESTION", response="rundir:RESPONSE", weight="rundir:WEIGHT")


class DatasetFormatError(UserError, ValueError):
    """A row does not fit its dataset format (missing column, wrong type, wrong template)."""


def _text(row: Mapping[str, Any], columns: Mapping[str, str], key: str, fmt: str) -> str:
    column = columns.get(key, key)
    if column not in row:
        raise DatasetFormatError(
            f"format {fmt!r}: column {column!r} (for {key!r}) is missing; the row has {sorted(row)}. Map it in "
            f"dataset_info.json, e.g. \"columns\": {{\"{key}\": \"<your column>\"}}"
        )
    value = row[column]
    if not isinstance(value, str):
        raise DatasetFormatError(f"format {fmt!r}: column {column!r} must be a string, got {type(value).__name__}")
    return value


def _weight(row: Mapping[str, Any], columns: Mapping[str, str], fmt: str) -> float | None:
    column = columns.get("weight")
    if column is None or column not in row or row[column] is None:
        return None
    return validate_weight(row[column], f"format {fmt!r}, column {column!r}")


def _prompt_template(template: formats.Template | None, fmt: str, want_posterior: bool) -> formats.Template:
    if template is None:
        if want_posterior:
            raise DatasetFormatError(f"format {fmt!r} needs a posterior template (vr_posterior_a or vr_posterior_b)")
        return formats.REASONING
    if template.needs_solution != want_posterior:
        if want_posterior:
            raise DatasetFormatError(
                f"format {fmt!r} renders the posterior prompt: use template vr_posterior_a or vr_posterior_b, "
                f"not {template.name!r}"
            )
        raise DatasetFormatError(
            f"format {fmt!r} renders the reasoning prompt; template {template.name!r} is a posterior template "
            "(use formatting vr_posterior for posterior training)"
        )
    return template


def to_reasoning(row: Mapping[str, Any], columns: Mapping[str, str], template: formats.Template | None = None) -> dict:
    template = _prompt_template(template, "vr_reasoning", want_posterior=False)
    system, user = template.format_fields(_text(row, columns, "question", "vr_reasoning"))
    system_column = columns.get("system", "system")
    if row.get(system_column):
        system = _text(row, columns, "system", "vr_reasoning")
    response = formats.render_response(
        _text(row, columns, "think", "vr_reasoning"), _text(row, columns, "solution", "vr_reasoning")
    )
    return {"system": system, "user": user, "response": response, "weight": _weight(row, columns, "vr_reasoning")}


def posterior_response(think: str) -> str:
    """What the posterior is trained to produce: the trace, then the end-of-thought marker."""
    return think + formats.END_OF_THOUGHT


def to_posterior(row: Mapping[str, Any], columns: Mapping[str, str], template: formats.Template | None = None) -> dict:
    template = _prompt_template(template, "vr_posterior", want_posterior=True)
    system, user = template.format_fields(
        _text(row, columns, "question", "vr_posterior"), _text(row, columns, "solution", "vr_posterior")
    )
    response = posterior_response(_text(row, columns, "think", "vr_posterior"))
    return {"system": system, "user": user, "response": response, "weight": _weight(row, columns, "vr_posterior")}


def to_build(row: Mapping[str, Any], columns: Mapping[str, str], template: formats.Template | None = None) -> dict:
    template = _prompt_template(template, "vr_build", want_posterior=False)
    system, user = template.format_fields(_text(row, columns, "question", "vr_build"))
    response = _text(row, columns, "response", "vr_build")
    return {"system": system, "user": user, "response": response, "weight": _weight(row, columns, "vr_build")}
