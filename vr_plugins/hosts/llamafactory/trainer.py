"""The constant-normaliser loss in LLaMA-Factory's SFT trainer, through ``compute_loss_func``.

With transformers 5.5/5.6 and ``compute_loss_func`` set, ``Trainer`` passes the labels unshifted, never
divides by the gradient-accumulation steps (DeepSpeed gets ``scale_wrt_gas=False``) and multiplies the
micro-batch loss by the number of processes when ``average_tokens_across_devices`` is on, which the
data-parallel gradient average then divides out again. So a micro-batch loss of local_sum / C yields an
optimiser step on global_sum / C for any accumulation, world size, ZeRO stage or packing. When the host
does not multiply (``average_tokens_across_devices: false``) the adapter multiplies itself. The batch's
``vr_token_weights`` are taken out of the inputs before the model's forward and handed to the loss.

No [tokens x vocab] logits in training: the model's output layer (``lm_head``) gets a forward that, while a
training micro-batch is in flight, receives the final hidden states, computes sum(NLL x weight) / C over
the supervised rows in chunks (``losses.constant_normalized_nll_from_hidden``; Liger's fused kernel on a
CUDA device with liger-kernel) and returns that scalar in place of the logits; ``compute_loss_func`` hands
it to the Trainer. Going through the module (not around it) keeps every host mechanism working: DeepSpeed
ZeRO-3 gathers the sharded weight for the module's forward and again before its backward, DDP sees one
forward, Liger's patched model forwards call ``lm_head`` when no labels are passed (the Trainer pops them).
Evaluation (``model.eval()``) and generation use the original output layer and the logits loss. Models
whose forward changes lm_head's output (a logit soft-cap or scale in the config) or whose output layer is
not a plain ``Linear`` keep the logits loss.
"""

from __future__ import annotations

import functools

from vr_plugins.hosts.llamafactory import keys as K


def host_multiplies_by_world_size(args) -> bool:
    return bool(getattr(args, "average_tokens_across_devices", False)) and getattr(args, "n_gpu", 1) <= 1


def _install_loss(trainer) -> None:
    from vr_plugins.registry import get_loss
    from vr_plugins.types import resolve

    normalizer = getattr(trainer.finetuning_args, K.NORMALIZER_KEY, None)
    if normalizer is None:
        return
    if normalizer == K.AUTO_NORMALIZER:
        normalizer = resolve_auto_normalizer(trainer)
        setattr(trainer.finetuning_args, K.NORMALIZER_KEY, normalizer)
    if trainer.compute_loss_func is not None:
        raise RuntimeError(f"{K.NORMALIZER_KEY}: another custom SFT loss is already set on the trainer")
    processes = trainer.accelerator.num_processes
    scale = 1.0 if host_multiplies_by_world_size(trainer.args) else float(processes)
    loss_name = getattr(trainer.finetuning_args, K.LOSS_KEY, K.DEFAULT_LOSS)
    loss = resolve(get_loss(loss_name).factory)(normalizer=normalizer, scale=scale)
    weights_required = bool(getattr(trainer.finetuning_args, K.WEIGHTS_KEY, False))

    def compute_loss_func(outputs, labels, num_items_in_batch=None):
        logits = getattr(outputs, "logits", None)
        if logits is None and isinstance(outputs, dict):
            logits = outputs.get("logits")
        if logits is None:
            raise RuntimeError(f"{K.NORMALIZER_KEY}: the model returned no logits and no loss from its output layer")
        if trainer._vr_fused is not None and trainer._vr_fused.ran:
            if logits.dim() != 0:
                raise RuntimeError(f"{K.NORMALIZER_KEY}: the model changed its output layer's loss value "
                                   f"(shape {tuple(logits.shape)}); this model needs the logits loss")
            return logits
        if weights_required and trainer._vr_token_weights is None:
            raise missing_weights_error()
        return loss(logits, labels, trainer._vr_token_weights)

    trainer._vr_token_weights = None
    trainer.compute_loss_func = compute_loss_func
    if hasattr(loss, "from_hidden"):
        trainer._vr_fused = FusedOutputLayer.install(trainer.model, loss, weights_required)
    else:
        import sys

        sys.stderr.write(f"[vr_plugins] {K.LOSS_KEY}: {loss_name!r} has no from_hidden(); full logits are computed\n")


def missing_weights_error() -> RuntimeError:
    return RuntimeError(f"{K.WEIGHTS_KEY} is on but the batch carries no weights (a tokenized_path saved without "
                        "them? delete it or re-run with overwrite_cache: true)")


def resolve_auto_normalizer(trainer) -> float:
    """``constant_loss_normalizer: auto``: C from the trainer's own tokenised dataset and world size; written
    to ``output_dir/vr_normalizer.json`` (the ``vr-tools normalizer --json`` fields) by the main process."""
    import json
    import sys
    from pathlib import Path

    from vr_plugins.hosts.llamafactory.counting import processed_dataset_counts
    from vr_plugins.losses import LossConfigError
    from vr_plugins.normalizer import normalizer_from_counts

    dataset = trainer.train_dataset
    if dataset is None or not hasattr(dataset, "with_format"):
        raise LossConfigError(f"{K.NORMALIZER_KEY}: auto needs a (non-streamed) training dataset")
    args, data_args = trainer.args, getattr(trainer.finetuning_args, K.DATA_ARGS_ATTR, None)
    rows, tokens = processed_dataset_counts(dataset)
    names = getattr(data_args, "dataset", None) or []
    result = normalizer_from_counts(
        rows, tokens, args.per_device_train_batch_size, args.gradient_accumulation_steps, max(args.world_size, 1),
        getattr(data_args, "cutoff_len", None), getattr(data_args, "template", None),
        bool(getattr(data_args, "packing", False)), names if isinstance(names, str) else ",".join(names),
        "the training dataset")
    if trainer.is_world_process_zero():
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / K.NORMALIZER_FILE).write_text(json.dumps(result.to_dict(), sort_keys=True) + "\n")
        sys.stderr.write(f"[vr_plugins] {K.NORMALIZER_KEY}: auto -> {result.normalizer:g} ({rows} rows, {tokens} "
                         f"supervised tokens, global batch {result.global_batch_size}); written to "
                         f"{out / K.NORMALIZER_FILE}\n")
    return result.normalizer


class FusedOutputLayer:
    """The output layer's training forward: hidden states in, the micro-batch's loss out (module docstring)."""

    def __init__(self, head, loss, weights_required: bool):
        self.head = head
        self.loss = loss
        self.weights_required = weights_required
        self.original = head.forward
        self.pending = None  #: (labels, token weights) of the micro-batch in flight
        self.ran = False
        self.announced = False

    @classmethod
    def install(cls, model, loss, weights_required: bool):
        """Patch ``model``'s output layer, or return None (then the logits loss is used) with the reason logged."""
        reason = unsupported_reason(model)
        if reason is not None:
            import sys

            sys.stderr.write(f"[vr_plugins] {K.NORMALIZER_KEY}: full logits are computed ({reason})\n")
            return None
        head = model.get_output_embeddings()
        fused = cls(head, loss, weights_required)
        head.forward = fused.forward  # an instance attribute: module hooks (ZeRO-3 gathering) still run
        return fused

    def begin(self, labels, token_weights) -> None:
        if self.weights_required and token_weights is None:
            raise missing_weights_error()
        self.pending, self.ran = (labels, token_weights), False

    def end(self) -> None:
        self.pending, self.ran = None, False

    def forward(self, hidden_states):
        import torch

        pending = self.pending
        if pending is None or not torch.is_grad_enabled() or tuple(hidden_states.shape[:2]) != tuple(pending[0].shape):
            return self.original(hidden_states)
        self.pending, self.ran = None, True
        labels, token_weights = pending
        if not self.announced:
            import sys

            from vr_plugins.losses import LOSS_CHUNK_ROWS, liger_available

            how = "Liger fused linear cross-entropy" if liger_available(hidden_states.device) else \
                f"chunked output layer, {LOSS_CHUNK_ROWS} rows per chunk"
            sys.stderr.write(f"[vr_plugins] {K.NORMALIZER_KEY}: loss from the final hidden states ({how}); "
                             "no [tokens x vocab] logits\n")
            self.announced = True
        return self.loss.from_hidden(hidden_states, self.head.weight, labels, token_weights)


def unsupported_reason(model) -> str | None:
    """Why the hidden-state loss cannot replace the logits of ``model`` (None: it can)."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if type(head) is not torch.nn.Linear:
        return f"the output layer is a {type(head).__name__}, not a plain Linear"
    if head.bias is not None:
        return "the output layer has a bias"
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", config)
    for key in ("final_logit_softcapping", "logits_scaling", "logit_scale"):
        if getattr(config, key, None):
            return f"the model's forward changes the output layer's logits ({key})"
    return None


def install(module) -> None:
    cls = module.CustomSeq2SeqTrainer
    if getattr(cls, K.PATCHED, False):
        return
    init, compute_loss, prediction_step = cls.__init__, cls.compute_loss, cls.prediction_step

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self._vr_token_weights = None
        self._vr_fused = None
        _install_loss(self)

    @functools.wraps(compute_loss)
    def wrapped_compute_loss(self, model, inputs, *args, **kwargs):
        weights = inputs.pop(K.TOKEN_WEIGHTS, None)
        if weights is not None:
            self._vr_token_weights = weights
        fused = getattr(self, "_vr_fused", None)
        if fused is not None and model.training and "labels" in inputs:
            fused.begin(inputs["labels"], weights)
        try:
            return compute_loss(self, model, inputs, *args, **kwargs)
        finally:
            self._vr_token_weights = None
            if fused is not None:
                fused.end()

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
