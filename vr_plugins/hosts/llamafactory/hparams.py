"""The new recipe keys, parsed by LLaMA-Factory's own HfArgumentParser, and their validation.

``constant_loss_normalizer``, ``use_sample_weights`` and ``vr_loss`` become fields of a dataclass subclass of
LLaMA-Factory's ``FinetuningArguments`` that replaces it in the parser module's argument lists (appending
a sixth dataclass would break the parser's tuple unpacking). ``get_train_args`` is wrapped so every bad
combination fails with a clear message before any model or data is loaded. Without the keys nothing
changes: the subclass only adds fields with neutral defaults.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from vr_plugins.hosts._version_guard import UntestedHostError, host_version, is_tested
from vr_plugins.hosts.llamafactory import keys as K
from vr_plugins.losses import LossConfigError, validate_normalizer

# _TRAIN_MBRIDGE_ARGS: LLaMA-Factory main (0.9.6.dev0) only. The MCA and Megatron-bridge lists are patched so
# the keys parse there, and precheck refuses them with a clear message: those paths train with Megatron's
# trainer, which the plugin does not patch, so the loss would silently be the default one.
ARG_LISTS = ("_TRAIN_ARGS", "_INFER_ARGS", "_EVAL_ARGS", "_TRAIN_MCA_ARGS", "_TRAIN_MBRIDGE_ARGS")
#: LLaMA-Factory's switches to Megatron-based training (read as its ``is_env_enabled`` does)
MEGATRON_SWITCHES = ("USE_MCA", "USE_MEGATRON_BRIDGE")


def make_args_class(base: type) -> type:
    """``FinetuningArguments`` plus the recipe keys (help texts show in ``llamafactory-cli train -h``)."""
    cls = dataclasses.make_dataclass(
        "VRFinetuningArguments",
        [
            (
                K.NORMALIZER_KEY,
                float | None,
                dataclasses.field(
                    default=None,
                    metadata={
                        "help": "variational-reasoning: divide the SUM of token NLL by this constant C (fixed per "
                        "run) instead of averaging over the step's tokens. `auto`: computed from the training "
                        "dataset in this process (or paste the value `vr-tools normalizer` prints)."
                    },
                ),
            ),
            (
                K.WEIGHTS_KEY,
                bool,
                dataclasses.field(
                    default=False,
                    metadata={
                        "help": "variational-reasoning: multiply each example's token NLL by its weight column "
                        "(needs constant_loss_normalizer)."
                    },
                ),
            ),
            (
                K.LOSS_KEY,
                str,
                dataclasses.field(
                    default=K.DEFAULT_LOSS,
                    metadata={
                        "help": "variational-reasoning: the registered loss used with constant_loss_normalizer "
                        f"(`vr-tools plugins` lists them; default {K.DEFAULT_LOSS})."
                    },
                ),
            ),
        ],
        bases=(base,),
    )
    cls.__module__ = __name__  # make_dataclass(module=...) needs Python 3.12
    setattr(cls, K.PATCHED, True)
    return cls


def install(parser_module, tested: Callable[[], tuple[str, tuple[str, ...]]]) -> None:
    """Patch the parser module; ``tested()`` gives (distribution, tested versions) at call time (the adapter
    passes it in, so this module never imports its own package: no import cycle)."""
    base = parser_module.FinetuningArguments
    if getattr(base, K.PATCHED, False):
        return
    cls = make_args_class(base)
    globals()["VRFinetuningArguments"] = cls  # importable by name: pickle and dill find it
    for name in ARG_LISTS:
        classes = getattr(parser_module, name, None)
        if isinstance(classes, list):
            classes[:] = [cls if c is base else c for c in classes]
    parser_module.get_train_args = _wrap_get_train_args(parser_module.get_train_args, parser_module, tested)


def _used_keys(raw: Any) -> dict[str, Any]:
    """The vr keys a recipe sets (dict from YAML/JSON, or a ``--key value`` list)."""
    used = {}
    if isinstance(raw, dict):
        for key in K.RECIPE_KEYS:
            if key in raw:
                used[key] = raw[key]
    elif isinstance(raw, (list, tuple)):
        for i, item in enumerate(raw):
            for key in K.RECIPE_KEYS:
                if item == f"--{key}" or str(item).startswith(f"--{key}="):
                    used[key] = raw[i + 1] if "=" not in str(item) and i + 1 < len(raw) else str(item).partition("=")[2]
    return used


def _template_name(raw: Any) -> str | None:
    if isinstance(raw, dict):
        return raw.get("template")
    if isinstance(raw, (list, tuple)) and "--template" in raw:
        i = list(raw).index("--template")
        return raw[i + 1] if i + 1 < len(raw) else None
    return None


def precheck(raw: Any, dist: str, tested: tuple[str, ...]) -> None:
    """Checks on the raw recipe, before LLaMA-Factory parses it."""
    used = _used_keys(raw)
    template = _template_name(raw)
    vr_template = isinstance(template, str) and template.startswith("vr_")
    if (used or vr_template) and not is_tested(dist, tested):
        what = ", ".join(sorted(used)) or f"template {template!r}"
        raise UntestedHostError(
            f"variational-reasoning: {what} needs {dist} {' or '.join(tested)}; found {host_version(dist)}. The "
            f"plugin patches {dist} internals and is only enabled on tested versions: pip install '{dist}=={tested[-1]}'."
        )
    if K.NORMALIZER_KEY in used and used[K.NORMALIZER_KEY] is None:
        validate_normalizer(None, K.NORMALIZER_KEY)
    switched = [name for name in MEGATRON_SWITCHES if os.environ.get(name, "0").lower() in ("true", "y", "1")]
    if used and switched:
        raise LossConfigError(
            f"{', '.join(sorted(used))}: not supported with {'/'.join(switched)}=1 (LLaMA-Factory then trains "
            "with Megatron's trainer, which variational-reasoning does not patch); unset it to train with the plugin"
        )


def validate(model_args, data_args, training_args, finetuning_args) -> None:
    """Checks on the parsed arguments; normalises the two keys in place."""
    normalizer = getattr(finetuning_args, K.NORMALIZER_KEY, None)
    weights = getattr(finetuning_args, K.WEIGHTS_KEY, False)
    if isinstance(normalizer, str):  # parse_dict does not convert types; YAML may give "1e3" as a string
        try:
            normalizer = float(normalizer)
        except ValueError:
            pass
    setattr(finetuning_args, K.DATA_ARGS_ATTR, data_args)
    if isinstance(normalizer, str) and normalizer.strip().lower() == K.AUTO_NORMALIZER:
        normalizer = K.AUTO_NORMALIZER  # computed by the trainer hook from the training dataset
        if data_args.streaming:
            raise LossConfigError(f"{K.NORMALIZER_KEY}: auto cannot count a streamed dataset before training; "
                                  "compute C with `vr-tools normalizer` and set the number")
        setattr(finetuning_args, K.NORMALIZER_KEY, normalizer)
    elif normalizer is not None:
        normalizer = validate_normalizer(normalizer, K.NORMALIZER_KEY)
        setattr(finetuning_args, K.NORMALIZER_KEY, normalizer)
    if not isinstance(weights, bool):
        raise LossConfigError(f"{K.WEIGHTS_KEY} must be true or false, got {weights!r}")
    loss_name = getattr(finetuning_args, K.LOSS_KEY, K.DEFAULT_LOSS)
    if loss_name != K.DEFAULT_LOSS:
        if normalizer is None:
            raise LossConfigError(f"{K.LOSS_KEY}: {loss_name!r} is used with {K.NORMALIZER_KEY}, which is not set")
        from vr_plugins.registry import get_loss

        get_loss(loss_name)  # an unknown name lists the registered losses before any model loads
    if weights and normalizer is None:
        raise LossConfigError(
            f"{K.WEIGHTS_KEY}: true needs {K.NORMALIZER_KEY} (a weighted token mean has no fixed scale). Compute C "
            "with `vr-tools normalizer` and add the printed line to the recipe."
        )
    if normalizer is None:
        setattr(data_args, K.DATA_WEIGHTS_FLAG, False)
        return
    if finetuning_args.stage != "sft":
        raise LossConfigError(f"{K.NORMALIZER_KEY} / {K.WEIGHTS_KEY} apply to `stage: sft` only, got {finetuning_args.stage!r}")
    for other in ("use_dft_loss", "use_eaft_loss", "use_asft_loss"):
        if getattr(finetuning_args, other, False):
            raise LossConfigError(f"{K.NORMALIZER_KEY} replaces the SFT loss: it cannot be combined with {other}")
    if getattr(training_args, "label_smoothing_factor", 0.0):
        raise LossConfigError(f"{K.NORMALIZER_KEY} cannot be combined with label_smoothing_factor")
    if weights and data_args.neat_packing:
        raise LossConfigError(
            f"{K.WEIGHTS_KEY} with neat_packing is not supported (LLaMA-Factory trims packed rows for "
            "FlashAttention-2 and the per-token weights would lose their alignment); use `packing: true` "
            "without neat_packing, or no packing."
        )
    _require_patches(weights)
    setattr(data_args, K.DATA_WEIGHTS_FLAG, weights)


def _require_patches(weights: bool) -> None:
    """Refuse to train with a vr key when a patch did not apply (the bootstrap only warns)."""
    import importlib

    needed = {"llamafactory.train.sft.trainer": "CustomSeq2SeqTrainer"}
    if weights:
        needed.update(
            {
                "llamafactory.data.processor.supervised": "SupervisedDatasetProcessor",
                "llamafactory.data.collator": "SFTDataCollatorWith4DAttentionMask",
                "llamafactory.data.converter": "align_dataset",
            }
        )
    missing = []
    for module_name, attr in needed.items():
        obj = getattr(importlib.import_module(module_name), attr, None)
        if not getattr(obj, K.PATCHED, False):
            missing.append(f"{module_name}.{attr}")
    if missing:
        raise RuntimeError(
            "variational-reasoning: the plugin could not patch " + ", ".join(missing) + " (see the [vr_plugins] "
            "warnings above); refusing to train with constant_loss_normalizer/use_sample_weights without them."
        )


def _wrap_get_train_args(original, parser_module, tested):
    @functools.wraps(original)
    def get_train_args(args=None):
        raw = parser_module.read_args(args)
        precheck(raw, *tested())
        result = original(raw)
        model_args, data_args, training_args, finetuning_args = result[0], result[1], result[2], result[3]
        validate(model_args, data_args, training_args, finetuning_args)
        normalizer = getattr(finetuning_args, K.NORMALIZER_KEY, None)
        if normalizer is not None and training_args.should_log:
            shown = "auto (computed from the training dataset)" if normalizer == K.AUTO_NORMALIZER else f"{normalizer:g}"
            sys.stderr.write(
                f"[vr_plugins] constant-normaliser loss: C = {shown}, "
                f"use_sample_weights = {getattr(finetuning_args, K.WEIGHTS_KEY)}\n"
            )
        return result

    setattr(get_train_args, K.PATCHED, True)
    return get_train_args
