"""Where the recipes and eval task files are, in a wheel install and in a source checkout.

The wheel ships them as package data under ``vr_plugins/_data``; a source checkout (editable install)
uses the folders at the repository root.
"""

from __future__ import annotations

from pathlib import Path

from vr_plugins.errors import UserError

_PACKAGE = Path(__file__).resolve().parent


class RecipeNotFoundError(UserError, FileNotFoundError):
    """A config names a recipe that is not in the installed ``recipes/`` folder."""


def _data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {name}/ folder is not installed next to vr_plugins ({_PACKAGE})")


def recipes_dir() -> Path:
    return _data_dir("recipes")


def eval_tasks_dir() -> Path:
    return _data_dir("eval_tasks")


def recipe(relative: str) -> Path:
    """A recipe file by path relative to ``recipes/``, with a clear error listing what exists."""
    path = recipes_dir() / relative
    if not path.exists():
        known = sorted(str(p.relative_to(recipes_dir())) for p in recipes_dir().rglob("*.yaml"))
        raise RecipeNotFoundError(f"recipe {relative!r} not found in {recipes_dir()}. Known: {', '.join(known)}")
    return path
