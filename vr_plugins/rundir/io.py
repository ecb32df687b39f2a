"""Atomic Parquet writes and validated reads: a reader names the file and what is missing."""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vr_plugins.errors import UserError


class RunDirError(UserError, ValueError):
    """Bad or inconsistent run-directory input; the message names the file and the rows or columns."""


def tmp_path_for(path: Path) -> Path:
    """A unique temporary sibling of ``path`` (same filesystem, so ``os.replace`` is atomic)."""
    return path.with_name(f".tmp-{path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


@contextlib.contextmanager
def file_lock(path: str | os.PathLike):
    """Exclusive lock on ``.<name>.lock`` beside ``path``: serialises read-modify-write of shared files
    (the manifest, dataset_info.json, shard merges) between processes on many nodes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, fsync: bool = True):
    """Yield a temporary sibling of ``path`` to write; on success fsync and rename it over ``path``.

    Readers never see a half-written file, and a failure leaves neither ``path`` nor the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_table_atomic(table: pa.Table, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    with atomic_path(path, fsync=False) as tmp:
        tmp.write_text(text)
    return Path(path)


def check_columns(table_or_schema, required: pa.Schema | list[str], path: str | os.PathLike) -> None:
    """Raise :class:`RunDirError` naming ``path`` when a required column is missing or mistyped."""
    schema = table_or_schema.schema if isinstance(table_or_schema, pa.Table) else table_or_schema
    names = required.names if isinstance(required, pa.Schema) else list(required)
    missing = [n for n in names if n not in schema.names]
    if missing:
        raise RunDirError(f"{path}: missing column(s) {missing}; expected at least {names}, found {schema.names}")
    if isinstance(required, pa.Schema):
        for field in required:
            got = schema.field(field.name).type
            if got != field.type and not (pa.types.is_null(got) or _compatible(got, field.type)):
                raise RunDirError(f"{path}: column {field.name!r} has type {got}, expected {field.type}")


def _compatible(got: pa.DataType, want: pa.DataType) -> bool:
    if pa.types.is_integer(want):
        return pa.types.is_integer(got)
    if pa.types.is_floating(want):
        return pa.types.is_floating(got) or pa.types.is_integer(got)
    if pa.types.is_string(want):
        return pa.types.is_string(got) or pa.types.is_large_string(got)
    return False


def read_table(path: str | os.PathLike, required: pa.Schema | list[str] | None = None, columns=None) -> pa.Table:
    """Read a Parquet file, failing with the file name when it is missing, unreadable or incomplete."""
    path = Path(path)
    if not path.exists():
        raise RunDirError(f"{path}: file not found")
    try:
        table = pq.read_table(path, columns=columns)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise RunDirError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
    if required is not None:
        check_columns(table, required, path)
    return table


def check_unique(table: pa.Table, keys: list[str], path: str | os.PathLike) -> None:
    """Raise naming the first duplicated key rows."""
    import pyarrow.compute as pc

    if table.num_rows == 0:
        return
    counts = table.group_by(keys).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    if dup.num_rows:
        examples = dup.slice(0, 5).to_pylist()
        raise RunDirError(f"{path}: {dup.num_rows} duplicated {tuple(keys)} key(s), e.g. {examples}")
