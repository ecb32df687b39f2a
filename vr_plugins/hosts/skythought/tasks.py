"""What the evaluation code needs from SkyThought itself: a task's handler built from its YAML, the
result-folder hash and pass@k, exactly as ``skythought evaluate`` computes them.

:func:`vr_plugins.eval.local.evaluate_local` calls these, so the CPU runner and the SkyThought CLI build
the same handler and name their result folders the same way.
"""

from __future__ import annotations

from typing import Any

from vr_plugins.hosts._version_guard import require_tested
from vr_plugins.hosts.skythought import DIST, TESTED_VERSIONS


def load_handler(name: str):
    """An instance of the task's handler class built from its YAML (what ``skythought evaluate`` builds)."""
    from vr_plugins.eval.tasks import resolve_task
    from vr_plugins.hosts.skythought.compat import apply_shims
    from vr_plugins.types import resolve

    task = resolve_task(name)
    require_tested(DIST, TESTED_VERSIONS, f"eval task {name!r}")  # the handlers subclass 0.1.0 internals
    apply_shims()  # skythought.evals.tasks needs the Python 3.11 shims
    handler_cls = resolve(task.handler_target)
    from skythought.evals.tasks import TaskConfig

    return handler_cls(TaskConfig.from_yaml(str(task.yaml_path)))


def run_hash(run_config: dict[str, Any]) -> str:
    """SkyThought's deterministic hash of a run configuration (the suffix of its result folder names)."""
    from skythought.evals.util.cli_util import get_deterministic_hash

    return get_deterministic_hash(run_config)


def pass_at_k(n: int, scores: dict[str, list[int]]) -> dict[str, float]:
    """SkyThought's pass@k table for ``n`` samples per problem."""
    from skythought.evals.util.metrics import pass_at_k as upstream

    return upstream(n, scores)
