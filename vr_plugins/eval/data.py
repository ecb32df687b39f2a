"""Benchmark data: local JSONL files instead of the hub, and LiveCodeBench test data without pickle.

``VR_EVAL_DATA_DIR=DIR`` makes task ``T`` read ``DIR/T.jsonl``: one JSON object per line with the hub
dataset's columns (the same filters and prompt building then apply), so evaluation runs offline.

LiveCodeBench's hub rows store ``private_test_cases`` as base64(zlib(pickle(json string))). SkyThought
0.1.0 decodes that with ``pickle.loads``, which executes whatever the payload says. Here the payload is
only *parsed* (``pickletools.genops``): it must be exactly one pickled ``str`` and nothing else, whose
text is then read as JSON. A payload with any other opcode (globals, calls, containers) is refused.
Local files may store the tests as plain JSON text (or a JSON list), which needs no decoding at all.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import pickletools
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vr_plugins.errors import UserError

DATA_DIR_ENV = "VR_EVAL_DATA_DIR"
#: Largest decompressed LiveCodeBench test payload accepted (a zlib bomb must not exhaust memory).
MAX_TEST_PAYLOAD_BYTES = 256 * 1024 * 1024

# Opcodes a pickled plain string may use: framing, the string itself, memo bookkeeping, STOP.
_STRING_PICKLE_OPCODES = {
    "PROTO", "FRAME", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE",
    "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT", "STOP",
}


class EvalDataError(UserError, ValueError):
    """Benchmark data that cannot be used; the message names the file/row/key and what was expected."""


def local_data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The local data folder (``explicit`` first, then ``$VR_EVAL_DATA_DIR``), or None for the hub."""
    value = explicit if explicit is not None else os.environ.get(DATA_DIR_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise EvalDataError(f"{DATA_DIR_ENV}={value}: not a directory")
    return path


def local_data_file(task_name: str, data_dir: Path) -> Path:
    path = data_dir / f"{task_name}.jsonl"
    if not path.is_file():
        present = sorted(p.name for p in data_dir.glob("*.jsonl"))
        raise EvalDataError(
            f"task {task_name!r}: local data file {path} does not exist ({DATA_DIR_ENV}={data_dir}). "
            f"Expected one JSON object per line with the hub dataset's columns. Files present: "
            f"{', '.join(present) or '(none)'}"
        )
    return path


def read_jsonl(path: Path, required: Iterable[str], task_name: str) -> list[dict[str, Any]]:
    """Read a JSONL file, checking that every row is an object with the ``required`` columns."""
    required = list(required)
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise EvalDataError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            missing = [column for column in required if column not in row]
            if missing:
                raise EvalDataError(
                    f"{path}:{lineno}: missing column(s) {', '.join(missing)}; task {task_name!r} needs "
                    f"the hub dataset's columns {', '.join(required)}"
                )
            rows.append(row)
    if not rows:
        raise EvalDataError(f"{path}: no rows")
    return rows


def check_columns(columns: Iterable[str], required: Iterable[str], task_name: str, source: str) -> None:
    missing = [column for column in required if column not in set(columns)]
    if missing:
        raise EvalDataError(
            f"{source}: missing column(s) {', '.join(missing)}; task {task_name!r} needs {', '.join(required)}"
        )


def _inflate(data: bytes, where: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_TEST_PAYLOAD_BYTES)
    except zlib.error as exc:
        raise EvalDataError(f"{where}: test data is neither JSON nor base64+zlib ({exc})") from None
    if inflater.unconsumed_tail:
        raise EvalDataError(f"{where}: decompressed test data exceeds {MAX_TEST_PAYLOAD_BYTES} bytes")
    return out


def pickled_string(payload: bytes, where: str = "test data") -> str:
    """The ``str`` a pickle holds, found by parsing (never executing) it; anything else is refused."""
    found: list[str] = []
    try:
        for opcode, arg, _pos in pickletools.genops(payload):
            if opcode.name not in _STRING_PICKLE_OPCODES:
                raise EvalDataError(
                    f"{where}: refusing to decode a pickle with opcode {opcode.name} (only a pickled plain "
                    "string is accepted; nothing is ever unpickled)"
                )
            if isinstance(arg, str) and opcode.name not in ("PROTO", "FRAME", "STOP") and "UNICODE" in opcode.name:
                found.append(arg)
    except EvalDataError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed pickles raise ValueError and friends
        raise EvalDataError(f"{where}: malformed pickle payload ({type(exc).__name__}: {exc})") from None
    if len(found) != 1:
        raise EvalDataError(f"{where}: expected exactly one pickled string, found {len(found)}")
    return found[0]


def decode_lcb_tests(value: Any, where: str = "test data") -> list[dict[str, Any]]:
    """LiveCodeBench test cases as a list of ``{input, output, testtype}`` dicts.

    Accepts a list, JSON text, or the hub's base64(zlib(pickle(json))) string (parsed without pickle).
    """
    if isinstance(value, (list, tuple)):
        tests = list(value)
    elif hasattr(value, "tolist"):  # numpy array from a pandas round trip
        tests = list(value.tolist())
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                tests = json.loads(text)
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"{where}: invalid JSON test list ({exc.msg})") from None
        else:
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise EvalDataError(f"{where}: test data is neither a JSON list nor base64 text") from None
            decoded = pickled_string(_inflate(raw, where), where)
            try:
                tests = json.loads(decoded)
            except json.JSONDecodeError as exc:
                raise EvalDataError(f"{where}: decoded test data is not JSON ({exc.msg})") from None
    else:
        raise EvalDataError(f"{where}: expected a JSON list of tests, got {type(value).__name__}")
    if not isinstance(tests, list) or not all(isinstance(t, dict) and "input" in t and "output" in t for t in tests):
        raise EvalDataError(f"{where}: expected a list of objects with 'input' and 'output'")
    return tests


def encode_lcb_tests_as_json(value: Any, where: str = "test data") -> str:
    """Offline conversion helper: any accepted encoding -> plain JSON text (what local files store)."""
    return json.dumps(decode_lcb_tests(value, where), ensure_ascii=False)
