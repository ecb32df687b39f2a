"""Built-in losses: the constant-normaliser SFT loss (optionally weighted per example or token)."""

from vr_plugins.hookspecs import hookimpl
from vr_plugins.types import Loss


@hookimpl
def register_losses(register):
    register(
        Loss(
            name="constant_normalizer",
            factory="vr_plugins.losses:make_constant_normalizer_loss",
            description="sum of token NLL (x example weight) / C, C fixed per run: GA-, DDP- and packing-invariant.",
        )
    )
