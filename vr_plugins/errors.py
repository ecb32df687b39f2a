"""The one user-error type.

Every error caused by what the user gave us (a file, a column, an option, a config key, a model path)
derives from :class:`UserError`. The CLI catches this one type, prints its message and exits 1; any other
exception is a bug and keeps its traceback. Library code raises a subclass whose message names the file,
row or key and says what was expected.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and what was expected."""


class ModelPathError(UserError, ValueError):
    """A model path that does not exist, is not a model folder, or lacks a tokenizer (data steps and eval)."""
