"""Built-in dataset formats."""

from vr_plugins.hookspecs import hookimpl


@hookimpl
def register_dataset_formats(register):
    pass
