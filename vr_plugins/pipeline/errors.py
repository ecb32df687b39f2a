"""The pipeline's user-error type, in a leaf module: the config, its layout checks and the engine settings
all raise it, and none of them may import another just for it."""

from __future__ import annotations

from vr_plugins.errors import UserError


class ConfigError(UserError, ValueError):
    """An invalid pipeline config; the message names the file and the key."""
