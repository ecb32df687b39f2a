"""A worked example plugin (docs/plugins.md): one estimator, one verifier, one evaluation task.

Each hook receives ``register`` and calls it with a plain dataclass from ``vr_plugins.types``.
Callables are given as ``"module:attribute"`` strings so that registering imports nothing heavy.
"""

from pathlib import Path

from vr_plugins.hookspecs import hookimpl
from vr_plugins.types import EvalTask, Estimator, Verifier


@hookimpl
def register_estimators(register):
    register(Estimator(
        name="tempered_snis",
        build="vr_example_plugin.estimator:select",
        description="SNIS weights with a temperature: softmax(beta * GML score); --option beta=0.5",
    ))


@hookimpl
def register_verifiers(register):
    register(Verifier(
        name="exact_string",
        families=("exact",),
        check="vr_example_plugin.verifier:check",
        description="Correct iff the last \\boxed{} equals the gold answer string exactly.",
    ))


@hookimpl
def register_eval_tasks(register):
    register(EvalTask(
        name="example_arith",
        yaml_path=str(Path(__file__).with_name("example_arith.yaml")),
        handler="vr_plugins.hosts.skythought.handlers:VRMathTaskHandler",  # reuse the built-in math handler
        description="Two-step arithmetic from local data (VR_EVAL_DATA_DIR/example_arith.jsonl)",
    ))
