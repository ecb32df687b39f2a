"""Built-in estimators (docs/method.md section 3). The callable contract is in ``vr_plugins.estimators``."""

from vr_plugins.hookspecs import hookimpl
from vr_plugins.types import Estimator

BUILTIN_ESTIMATORS = (
    Estimator(name="gml", build="vr_plugins.estimators.gml:select",
              description="Argmax of mean answer log-prob + delta_k (geometric mean of token likelihoods)."),
    Estimator(name="acc", build="vr_plugins.estimators.acc:select", needs_verification=True,
              description="Argmax of acc_k * exp(delta_k); trace + first correct rollout; ruc falls back to GML."),
    Estimator(name="snis", build="vr_plugins.estimators.snis:select",
              description="Self-normalised importance weights over the K traces (weight column) or resampling."),
    Estimator(name="rft", build="vr_plugins.estimators.rft:select", needs_verification=True,
              description="Rejection-sampling baseline: every correct trace, weight 1."),
)


@hookimpl
def register_estimators(register):
    for estimator in BUILTIN_ESTIMATORS:
        register(estimator)
