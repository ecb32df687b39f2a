"""LLaMA-Factory adapter: applies the registry when LLaMA-Factory's modules load.

Called by the post-import hook (``vr_plugins._bootstrap``) before and after each hooked module
executes. Only this package touches LLaMA-Factory internals, and only on tested versions:

- ``hparams.parser``: the recipe keys ``constant_loss_normalizer`` and ``use_sample_weights``
  (:mod:`.hparams`); installed on every version, so that using a key on an untested version fails with
  a clear error naming the tested versions instead of the parser's generic one;
- ``data.template``: the registered templates (:mod:`.templates`);
- ``data.parser`` / ``data.converter``: dataset_info.json columns, the registered dataset formats and
  example weights (:mod:`.data`);
- ``data.processor.supervised`` / ``data.collator``: weights through plain and packed batches
  (:mod:`.processors`, :mod:`.collator`);
- ``train.sft.trainer``: the constant-normaliser loss (:mod:`.trainer`).
"""

from __future__ import annotations

from vr_plugins.hosts._version_guard import warn_if_untested, warn_untested_dependency
from vr_plugins.hosts.versions import TESTED

DIST = "llamafactory"
TESTED_VERSIONS = TESTED[DIST]


def _tested() -> tuple[str, tuple[str, ...]]:
    """This host's name and tested versions, read when a recipe is parsed (tests may change them)."""
    return DIST, TESTED_VERSIONS


def before_exec(module_name: str) -> None:
    """Nothing needs to happen before LLaMA-Factory's modules run."""


def after_exec(module_name: str, module) -> None:
    tested = warn_if_untested(DIST, TESTED_VERSIONS)
    warn_untested_dependency("transformers", TESTED["transformers"])
    if module_name == "llamafactory.hparams.parser":
        from vr_plugins.hosts.llamafactory import hparams

        hparams.install(module, _tested)
    if not tested:
        return
    if module_name == "llamafactory.data.template":
        from vr_plugins.hosts.llamafactory.templates import register_templates

        register_templates(module)
    elif module_name == "llamafactory.data.parser":
        from vr_plugins.hosts.llamafactory.data import install_dataset_attr

        install_dataset_attr(module)
    elif module_name == "llamafactory.data.converter":
        from vr_plugins.hosts.llamafactory.data import install_converters

        install_converters(module)
    elif module_name == "llamafactory.data.processor.supervised":
        from vr_plugins.hosts.llamafactory import processors

        processors.install(module)
    elif module_name == "llamafactory.data.collator":
        from vr_plugins.hosts.llamafactory import collator

        collator.install(module)
    elif module_name == "llamafactory.train.sft.trainer":
        from vr_plugins.hosts.llamafactory import trainer

        trainer.install(module)
