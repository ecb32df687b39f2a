"""Path values of a run directory: stored relative to the run so a copied or moved run dir stays valid,
and path-like arguments told apart from hub ids so a mistyped path fails at once instead of being
retried against the hub.
"""

from __future__ import annotations

import os
from pathlib import Path

from vr_plugins.errors import UserError

#: file suffixes that mark an argument as a local file, never a hub id
FILE_SUFFIXES = (".json", ".jsonl", ".parquet", ".csv", ".tsv", ".arrow", ".txt", ".yaml", ".yml",
                 ".safetensors", ".bin", ".gz", ".zst")


class MissingPathError(UserError, FileNotFoundError):
    """A dataset or model argument that is written like a local path but does not exist."""


def looks_like_path(text: str) -> bool:
    """True when ``text`` can only be meant as a local path.

    A hub id is ``name`` or ``org/name``. Anything else with a separator (``./x``, ``/x``, ``~/x``,
    ``a/b/c``, a backslash), a file suffix (``x.jsonl``), or an ``a/b`` whose first part is an existing
    local folder (``data/typo.jsonl``, ``runs/base``) is a path.
    """
    text = str(text)
    if text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1:
        return True
    if text.lower().endswith(FILE_SUFFIXES):
        return True
    head = text.split("/", 1)[0]
    return "/" in text and Path(head).is_dir()


def check_local_or_hub(text: str, what: str) -> Path | None:
    """The local path of ``text`` when it exists; None for a hub id; :class:`MissingPathError` naming it
    when it looks like a path and does not exist (no hub lookup, no retries)."""
    path = Path(str(text)).expanduser()
    if path.exists():
        return path
    if looks_like_path(str(text)):
        where = path if path.is_absolute() else f"{text} (relative to {Path.cwd()})"
        raise MissingPathError(f"{where}: {what} not found (written like a local path, so the hub is not tried; "
                               f"a hub id is written org/name)")
    return None


# --- manifest values ---------------------------------------------------------------------------------
def to_stored(value, run_dir: Path):
    """A parameter value as the manifest stores it: an absolute path inside ``run_dir`` becomes relative
    to it (returned with True), anything else is kept as given (with False)."""
    if not isinstance(value, str) or not os.path.isabs(value):
        return value, False
    root = Path(run_dir).resolve()
    try:
        rel = Path(value).resolve().relative_to(root)
    except ValueError:
        return value, False
    return (rel.as_posix() or "."), True


def from_stored(value: str, run_dir: Path) -> str:
    """The absolute path of a manifest value stored relative to ``run_dir``."""
    return str((Path(run_dir).resolve() / value))
