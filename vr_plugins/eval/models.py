"""Which models get the reasoning system prompt and assistant prefill at evaluation.

The released checkpoints were trained on :data:`vr_plugins.formats.REASONING_SYSTEM_PROMPT` with the
assistant turn starting with :data:`vr_plugins.formats.ASSISTANT_PREFILL`; evaluating them without both
measures a different model. They apply automatically to:

- the released ids: ``zhouxiangxin/Initial-Reasoning-*`` and ``zhouxiangxin/Variational-Reasoning-*``;
- any model id or local checkpoint path listed in ``VR_EVAL_REASONING_MODELS`` (entries separated by
  ``os.pathsep``, i.e. ``:`` on Linux; shell-style globs allowed; local paths are compared after
  ``realpath``), e.g. ``VR_EVAL_REASONING_MODELS=/ckpt/final-gml:/ckpt/runs/*``;
- anything added in-process with :func:`register_reasoning_model`.

Explicit ``--system-prompt``/``--system-prompt-name``/``--assistant-prefill`` on the SkyThought CLI still
win. ``--system-prompt-name vr_reasoning`` selects the reasoning prompt for any model by hand.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from vr_plugins import formats
from vr_plugins.errors import ModelPathError  # noqa: F401  (one class for data steps and eval)

REASONING_MODELS_ENV = "VR_EVAL_REASONING_MODELS"
#: Name of the reasoning prompt in SkyThought's ``system_prompts`` (``--system-prompt-name``).
SYSTEM_PROMPT_NAME = "vr_reasoning"

RELEASED_MODEL_IDS = (
    "zhouxiangxin/Initial-Reasoning-4B",
    "zhouxiangxin/Initial-Reasoning-7B",
    "zhouxiangxin/Initial-Reasoning-8B",
    "zhouxiangxin/Initial-Reasoning-32B",
    "zhouxiangxin/Variational-Reasoning-4B-GML",
    "zhouxiangxin/Variational-Reasoning-4B-Acc",
    "zhouxiangxin/Variational-Reasoning-8B-GML",
    "zhouxiangxin/Variational-Reasoning-8B-Acc",
    "zhouxiangxin/Variational-Reasoning-32B-GML",
    "zhouxiangxin/Variational-Reasoning-32B-Acc",
    "zhouxiangxin/Variational-Reasoning-PA-7B-GML",
    "zhouxiangxin/Variational-Reasoning-PB-7B-GML",
    "zhouxiangxin/Variational-Reasoning-PA-7B-Acc",
    "zhouxiangxin/Variational-Reasoning-PB-7B-Acc",
)
RELEASED_PATTERNS = ("zhouxiangxin/Initial-Reasoning-*", "zhouxiangxin/Variational-Reasoning-*")

#: Files of which at least one must exist for a local directory to count as having a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "tokenizer.tiktoken")

_registered: list[str] = []




def register_reasoning_model(pattern: str | os.PathLike) -> None:
    """Treat ``pattern`` (model id, local path or glob) as a reasoning model in this process."""
    _registered.append(str(pattern))


def _patterns() -> list[str]:
    env = [p for p in os.environ.get(REASONING_MODELS_ENV, "").split(os.pathsep) if p.strip()]
    return [*RELEASED_PATTERNS, *env, *_registered]


def _looks_local(value: str) -> bool:
    expanded = os.path.expanduser(value)
    return os.path.isabs(expanded) or value.startswith((".", "~")) or os.path.exists(expanded)


def _forms(value: str) -> set[str]:
    """A model id or path, plus its absolute, symlink-free form when it names a local path."""
    forms = {value.strip()}
    if _looks_local(value.strip()):
        expanded = os.path.expanduser(value.strip())
        forms |= {os.path.normpath(os.path.abspath(expanded)), os.path.realpath(expanded)}
    return forms


def is_reasoning_model(model_id: str) -> bool:
    names = _forms(model_id)
    return any(
        fnmatch.fnmatchcase(name, pattern) for raw in _patterns() for pattern in _forms(raw) for name in names
    )


def reasoning_model_config() -> dict[str, str]:
    """The ``model_configs.yaml`` entry for a reasoning model."""
    return {"system_prompt": formats.REASONING_SYSTEM_PROMPT, "assistant_prefill": formats.ASSISTANT_PREFILL}


def check_local_model(model_id: str) -> None:
    """A local directory must hold a tokenizer; raise :class:`ModelPathError` naming what is missing."""
    path = Path(os.path.expanduser(model_id))
    if not path.is_dir():
        return
    if any((path / name).is_file() for name in TOKENIZER_FILES):
        return
    raise ModelPathError(
        f"local model path {path} has no tokenizer (expected one of {', '.join(TOKENIZER_FILES)} next to "
        f"the weights). Save it with tokenizer.save_pretrained('{path}'), or point at the checkpoint "
        "folder that has it."
    )
