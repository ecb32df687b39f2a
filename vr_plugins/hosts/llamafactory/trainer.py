"""The constant-normaliser loss in LLaMA-Factory's SFT trainer, through ``compute_loss_func``.

With transformers 5.6 and ``compute_loss_func`` set, ``Trainer`` passes the labels unshifted, never
divides by the gradient-accumulation steps (DeepSpeed gets ``scale_wrt_gas=False``) and multiplies the
micro-batch loss by the number of processes when ``average_tokens_across_devices`` is on, which the
data-parallel gradient average then divides out again. So a micro-batch loss of local_sum / C yields an
optimiser step on global_sum / C for any accumulation, world size, ZeRO stage or packing. When the host
does not multiply (``average_tokens_across_devices: false``) the adapter multiplies itself. The batch's
``vr_token_weights`` are taken out of the inputs before the model's forward and handed to the loss.
"""

from __future__ import annotations

import functools

from vr_plugins.hosts.llamafactory import keys as K

LOSS_NAME = "constant_normalizer"


def host_multiplies_by_world_size(args) -> bool:
    return bool(getattr(args, "average_tokens_across_devices", False)) and getattr(args, "n_gpu", 1) <= 1


def _install_loss(trainer) -> None:
    from vr_plugins.registry import registry
    from vr_plugins.types import resolve

    normalizer = getattr(trainer.finetuning_args, K.NORMALIZER_KEY, None)
    if normalizer is None:
        return
    if trainer.compute_loss_func is not None:
        raise RuntimeError(f"{K.NORMALIZER_KEY}: another custom SFT loss is already set on the trainer")
    processes = trainer.accelerator.num_processes
    scale = 1.0 if host_multiplies_by_world_size(trainer.args) else float(processes)
    loss = resolve(registry("losses").get(LOSS_NAME).factory)(normalizer=normalizer, scale=scale)
    weights_required = bool(getattr(trainer.finetuning_args, K.WEIGHTS_KEY, False))

    def compute_loss_func(outputs, labels, num_items_in_batch=None):
        logits = getattr(outputs, "logits", None)
        if logits is None and isinstance(outputs, dict):
            logits = outputs.get("logits")
        if logits is None:
            raise RuntimeError(f"{K.NORMALIZER_KEY}: the model returned no logits (fused-loss kernels are not supported)")
        if weights_required and trainer._vr_token_weights is None:
            raise RuntimeError(
                f"{K.WEIGHTS_KEY} is on but the batch carries no weights (a tokenized_path saved without "
                "them? delete it or re-run with overwrite_cache: true)"
            )
        return loss(logits, labels, trainer._vr_token_weights)

    trainer._vr_token_weights = None
    trainer.compute_loss_func = compute_loss_func


def install(module) -> None:
    cls = module.CustomSeq2SeqTrainer
    if getattr(cls, K.PATCHED, False):
        return
    init, compute_loss, prediction_step = cls.__init__, cls.compute_loss, cls.prediction_step

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._vr_token_weights = None
        _install_loss(self)

    @functools.wraps(compute_loss)
    def wrapped_compute_loss(self, model, inputs, *args, **kwargs):
        weights = inputs.pop(K.TOKEN_WEIGHTS, None)
        if weights is not None:
            self._vr_token_weights = weights
        try:
            return compute_loss(self, model, inputs, *args, **kwargs)
        finally:
            self._vr_token_weights = None

    @functools.wraps(prediction_step)
    def wrapped_prediction_step(self, model, inputs, *args, **kwargs):
        weights = inputs.pop(K.TOKEN_WEIGHTS, None)  # generation must not see it; the eval loss uses it
        self._vr_token_weights = weights
        try:
            return prediction_step(self, model, inputs, *args, **kwargs)
        finally:
            self._vr_token_weights = None

    cls.__init__ = __init__
    cls.compute_loss = wrapped_compute_loss
    cls.prediction_step = wrapped_prediction_step
    setattr(cls, K.PATCHED, True)
