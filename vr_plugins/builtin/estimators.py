"""Built-in estimators."""

from vr_plugins.hookspecs import hookimpl


@hookimpl
def register_estimators(register):
    pass
