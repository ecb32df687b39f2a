"""An evaluation protocol -> ``skythought evaluate`` command lines, and a small runner for them.

SkyThought 0.1.0's ``--sampling-params`` REPLACES its defaults instead of merging with them (a partial
value leaves vLLM at ``max_tokens=16``), so every sampling parameter is always passed explicitly, as a
dict literal (JSON text, which SkyThought reads with ``ast.literal_eval``; robust to the ``|`` and commas
of the stop string). Local checkpoint paths are added to ``VR_EVAL_REASONING_MODELS`` for the child
process, so they get the reasoning prompt and prefill like the released ids. The paper's numbers live in
``recipes/eval/paper_protocol.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from vr_plugins import formats
from vr_plugins.eval.models import REASONING_MODELS_ENV
from vr_plugins.errors import UserError


class ProtocolTaskError(UserError, ValueError):
    """A task asked of the paper's protocol that the protocol does not have."""


@dataclass(frozen=True)
class Protocol:
    tasks: dict[str, int]  # task name -> samples per problem (n)
    temperature: float
    top_p: float
    max_tokens: int
    dtype: str = "float32"
    stop: tuple[str, ...] = (formats.STOP_STRING,)
    backend: str = "vllm"
    #: model-name substring -> tensor parallel size (first match wins); default 1
    tensor_parallel: dict[str, int] = field(default_factory=dict)

    def sampling_params(self) -> str:
        return json.dumps({"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
                           "stop": list(self.stop)})

    def tensor_parallel_size(self, model: str) -> int:
        for marker, size in self.tensor_parallel.items():
            if marker in model:
                return size
        return 1

    def backend_args(self, model: str, tp: int | None = None) -> str:
        return json.dumps({"tensor_parallel_size": tp or self.tensor_parallel_size(model), "dtype": self.dtype})


def build_commands(protocol: Protocol, model: str, result_dir: str, *, tasks: list[str] | None = None,
                   tp: int | None = None, overwrite: bool = False, skythought: str = "skythought") -> list[list[str]]:
    """One ``skythought evaluate`` argv per task (all tasks of the protocol unless ``tasks``)."""
    chosen = tasks or list(protocol.tasks)
    unknown = [t for t in chosen if t not in protocol.tasks]
    if unknown:
        raise ProtocolTaskError(f"task(s) {', '.join(unknown)} are not in the protocol; known: {', '.join(protocol.tasks)}")
    commands = []
    for task in chosen:
        argv = [
            skythought, "evaluate", "--task", task, "--model", model, "--backend", protocol.backend,
            "--backend-args", protocol.backend_args(model, tp), "--sampling-params", protocol.sampling_params(),
            "--n", str(protocol.tasks[task]), "--result-dir", result_dir,
        ]
        if overwrite:
            argv.append("--overwrite")
        commands.append(argv)
    return commands


def reasoning_env(model: str, local: bool | None = None) -> dict[str, str]:
    """The assignment printed in front of an evaluation line that gives ``model`` the reasoning prompt and
    prefill: a local checkpoint (``local=None``: an absolute, ``./`` or ``~`` path, or one that exists, as
    :mod:`vr_plugins.eval.models` decides) is listed in ``VR_EVAL_REASONING_MODELS`` by its real path;
    ``local=True`` lists any model (the pipeline's own checkpoints), ``local=False`` none."""
    from vr_plugins.eval.models import _looks_local

    if local is None:
        local = _looks_local(model)
    if not local:
        return {}
    expanded = os.path.expanduser(model)
    return {REASONING_MODELS_ENV: os.path.realpath(expanded) if _looks_local(model) else model}


def command_line(env: dict[str, str], argv: list[str]) -> str:
    """One copy-pasteable shell line: the environment assignments, then the command."""
    return " ".join([*(f"{k}={shlex.quote(str(v))}" for k, v in env.items()), shlex.join(argv)])


def child_env(model: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the SkyThought process: the printed :func:`reasoning_env` added to ``base``."""
    env = dict(os.environ if base is None else base)
    for key, value in reasoning_env(model).items():
        entries = [e for e in env.get(key, "").split(os.pathsep) if e]
        env[key] = os.pathsep.join([*entries, value])
    return env


def main(protocol: Protocol, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run an evaluation protocol with `skythought evaluate`.")
    parser.add_argument("--model", action="append", required=True, help="model id or local checkpoint (repeatable)")
    parser.add_argument("--result-dir", required=True, help="SkyThought --result-dir")
    parser.add_argument("--tasks", default=None, help=f"comma-separated subset of: {', '.join(protocol.tasks)}")
    parser.add_argument("--tp", type=int, default=None, help="tensor parallel size (default: by model size)")
    parser.add_argument("--overwrite", action="store_true", help="pass --overwrite to skythought")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    failed = []
    for model in args.model:
        for command in build_commands(protocol, model, args.result_dir, tasks=tasks, tp=args.tp, overwrite=args.overwrite):
            print(command_line(reasoning_env(model), command), flush=True)
            if not args.dry_run and subprocess.run(command, env=child_env(model)).returncode != 0:
                failed.append(f"{model} {command[3]}")
    if failed:
        print(f"failed: {'; '.join(failed)}", file=sys.stderr)
        return 1
    if not args.dry_run:
        from vr_plugins.eval.summary import collect, format_markdown

        print(format_markdown(collect([Path(args.result_dir)])), end="")
    return 0
