"""Registered eval tasks by name: YAML path, handler key and handler class.

The SkyThought adapter and :func:`vr_plugins.eval.local.evaluate_local` both go through here, so the
CLI and the CPU runner use the same YAML and the same handler class for a task name. Building the handler
itself needs SkyThought: :func:`vr_plugins.hosts.skythought.tasks.load_handler`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from vr_plugins.errors import UserError
from vr_plugins.registry import UnknownNameError, registry


class TaskFileError(UserError, ValueError):
    """A registered eval task whose YAML is missing or lacks its ``handler:`` key."""


@dataclass(frozen=True)
class ResolvedTask:
    name: str
    yaml_path: Path
    handler_key: str  # the YAML's ``handler:`` value (key of SkyThought's TASK_HANDLER_MAP)
    handler_target: str  # "module:Class"


def task_names() -> list[str]:
    return registry("eval_tasks").names()


def resolve_task(name: str) -> ResolvedTask:
    """The task's files; an unknown name raises :class:`UnknownNameError` listing the known tasks."""
    tasks = registry("eval_tasks")
    if name not in tasks:
        builtin = [t for t in task_names() if t.startswith("vr_")]
        others = [t for t in task_names() if not t.startswith("vr_")]
        extra = f"; tasks from other plugins: {', '.join(others)}" if others else ""
        raise UnknownNameError(f"unknown eval task {name!r}. Known vr_ tasks: {', '.join(builtin) or '(none)'}{extra}")
    task = tasks.get(name)
    path = Path(task.yaml_path)
    if not path.is_absolute():
        from vr_plugins.paths import eval_tasks_dir

        path = eval_tasks_dir() / path
    if not path.is_file():
        raise TaskFileError(f"eval task {name!r} (plugin {tasks.owner(name)!r}): YAML {path} does not exist")
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    key = config.get("handler")
    if not isinstance(key, str) or not key:
        raise TaskFileError(f"eval task {name!r}: {path} has no 'handler:' key")
    return ResolvedTask(name=name, yaml_path=path, handler_key=key, handler_target=str(task.handler))


def resolve_all() -> list[ResolvedTask]:
    return [resolve_task(name) for name in task_names()]
