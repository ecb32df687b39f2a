"""The hooks a plugin may implement. Each receives ``register`` and calls it once per thing it adds."""

import pluggy

hookspec = pluggy.HookspecMarker("vr_plugins")
hookimpl = pluggy.HookimplMarker("vr_plugins")


@hookspec
def register_templates(register):
    """Register prompt templates (``vr_plugins.types.Template``)."""


@hookspec
def register_losses(register):
    """Register training losses (``vr_plugins.types.Loss``)."""


@hookspec
def register_dataset_formats(register):
    """Register dataset formats (``vr_plugins.types.DatasetFormat``)."""


@hookspec
def register_estimators(register):
    """Register dataset-building estimators (``vr_plugins.types.Estimator``)."""


@hookspec
def register_verifiers(register):
    """Register answer verifiers (``vr_plugins.types.Verifier``), keyed by source family."""


@hookspec
def register_eval_tasks(register):
    """Register SkyThought evaluation tasks (``vr_plugins.types.EvalTask``)."""


@hookspec
def register_commands(register):
    """Register ``vr-tools`` subcommands (``vr_plugins.types.Command``)."""
