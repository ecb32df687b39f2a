"""Built-in eval tasks."""

from vr_plugins.hookspecs import hookimpl


@hookimpl
def register_eval_tasks(register):
    pass
