"""Built-in verifiers."""

from vr_plugins.hookspecs import hookimpl


@hookimpl
def register_verifiers(register):
    pass
