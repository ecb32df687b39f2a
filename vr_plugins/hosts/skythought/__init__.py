"""SkyThought adapter: compatibility shims before ``skythought.evals`` loads, registrations after.

Only this package touches SkyThought internals, and only on tested versions:

- ``skythought.evals.tasks``: the registered ``EvalTask`` objects are added to ``TASK_NAMES_TO_YAML``
  (name -> YAML) and ``TASK_HANDLER_MAP`` (the YAML's ``handler:`` key -> class, imported on first
  lookup: the handler modules import this very package, so resolving them eagerly would be circular).
  This runs before ``skythought.evals.cli`` builds its ``click.Choice`` of task names.
- ``skythought.evals.models.base``: the reasoning system prompt and prefill for the released checkpoints
  and for the local paths named in ``VR_EVAL_REASONING_MODELS`` (:mod:`vr_plugins.eval.models`), the
  ``vr_reasoning`` system prompt name, and a clear error for a local model directory without a tokenizer.
- ``skythought.evals.inference_and_check``: scoring uses at most as many worker processes as this
  process may run on (0.1.0 always starts 32), or ``VR_EVAL_SCORE_WORKERS``.
"""

from __future__ import annotations

import sys

from vr_plugins.hosts._version_guard import warn_if_untested
from vr_plugins.hosts.versions import TESTED

DIST = "skythought"
TESTED_VERSIONS = TESTED[DIST]


def before_exec(module_name: str) -> None:
    if module_name == "skythought.evals":
        from vr_plugins.hosts.skythought.compat import apply_shims

        apply_shims()


def after_exec(module_name: str, module) -> None:
    if not warn_if_untested(DIST, TESTED_VERSIONS):
        return
    if module_name == "skythought.evals.tasks":
        register_tasks(module)
    elif module_name == "skythought.evals.models.base":
        register_model_configs(module)
    elif module_name == "skythought.evals.inference_and_check":
        cap_scoring_workers(module)


class PluginHandlerMap(dict):
    """SkyThought's ``TASK_HANDLER_MAP`` plus plugin handler classes imported on first lookup."""

    def __init__(self, base, lazy: dict[str, str]):
        super().__init__(base)
        self.lazy = dict(lazy)

    def __missing__(self, key):
        if key not in self.lazy:
            raise KeyError(key)
        from vr_plugins.types import resolve

        handler_cls = resolve(self.lazy[key])
        self[key] = handler_cls
        return handler_cls

    def __contains__(self, key) -> bool:
        return dict.__contains__(self, key) or key in self.lazy

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default


def _warn(message: str) -> None:
    sys.stderr.write(f"[vr_plugins] warning: {message}\n")


def register_tasks(module) -> list[str]:
    """Add every registered eval task to SkyThought's task tables; returns the names added."""
    from vr_plugins.eval.tasks import resolve_task, task_names

    upstream_handlers = dict(module.TASK_HANDLER_MAP)
    lazy: dict[str, str] = dict(getattr(module.TASK_HANDLER_MAP, "lazy", {}))
    added = []
    for name in task_names():
        try:
            task = resolve_task(name)
        except Exception as exc:  # noqa: BLE001 - one broken task must not hide the others
            _warn(f"eval task {name!r} skipped: {exc}")
            continue
        if task.handler_key in upstream_handlers and task.handler_key not in lazy:
            _warn(f"eval task {name!r} skipped: handler key {task.handler_key!r} is one of SkyThought's own")
            continue
        if lazy.get(task.handler_key, task.handler_target) != task.handler_target:
            _warn(
                f"eval task {name!r} skipped: handler key {task.handler_key!r} already maps to "
                f"{lazy[task.handler_key]}, not {task.handler_target}"
            )
            continue
        existing = module.TASK_NAMES_TO_YAML.get(name)
        if existing is not None and existing != str(task.yaml_path):
            _warn(f"eval task {name!r} replaces SkyThought's {existing}")
        lazy[task.handler_key] = task.handler_target
        module.TASK_NAMES_TO_YAML[name] = str(task.yaml_path)
        added.append(name)
    module.TASK_HANDLER_MAP = PluginHandlerMap(upstream_handlers, lazy)
    return added


def register_model_configs(module) -> None:
    """Reasoning prompt + prefill for reasoning models, the ``vr_reasoning`` prompt name, tokenizer check."""
    from vr_plugins.eval import models

    if module.ALL_MODEL_CONFIGS is None:
        module.ALL_MODEL_CONFIGS = module.read_yaml(module.MODEL_CONFIG_FILE_PATH)
    configs = module.ALL_MODEL_CONFIGS
    configs.setdefault("system_prompts", {})[models.SYSTEM_PROMPT_NAME] = models.reasoning_model_config()["system_prompt"]
    for model_id in models.RELEASED_MODEL_IDS:
        configs.setdefault("models", {})[model_id] = models.reasoning_model_config()

    model_config_cls = module.ModelConfig
    original = model_config_cls.__dict__["from_model_id"].__func__
    if getattr(original, "_vr_plugins", False):
        return

    inserted: set[str] = set()  # ids we added (the environment may change between calls)

    def from_model_id(cls, model_id, system_prompt_name=None, system_prompt=None, assistant_prefill=None):
        models.check_local_model(model_id)
        if module.ALL_MODEL_CONFIGS is None:
            module.ALL_MODEL_CONFIGS = configs
        entries = module.ALL_MODEL_CONFIGS["models"]
        if models.is_reasoning_model(model_id):
            # a fresh dict per call: SkyThought mutates the entry it reads
            entries[model_id] = models.reasoning_model_config()
            inserted.add(model_id)
        elif model_id in inserted:
            entries.pop(model_id, None)
            inserted.discard(model_id)
        return original(cls, model_id, system_prompt_name, system_prompt, assistant_prefill)

    from_model_id._vr_plugins = True
    from_model_id.__doc__ = original.__doc__
    model_config_cls.from_model_id = classmethod(from_model_id)


def cap_scoring_workers(module) -> None:
    """Wrap ``score_responses`` so its process pool never exceeds :func:`score_workers`."""
    original = module.score_responses
    if getattr(original, "_vr_plugins", False):
        return
    from vr_plugins.eval.scoring import score_workers

    def score_responses(handler, id_to_results, max_workers: int = 32):
        return original(handler, id_to_results, max_workers=min(max_workers, score_workers()))

    score_responses._vr_plugins = True
    score_responses.__wrapped__ = original
    module.score_responses = score_responses
