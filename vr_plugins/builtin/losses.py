"""Built-in losses."""

from vr_plugins.hookspecs import hookimpl


@hookimpl
def register_losses(register):
    pass
