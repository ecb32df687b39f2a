"""The pipeline config's ``vllm:`` and ``envs:`` blocks: vLLM engine settings and which environment runs
which stage.

- ``vllm:`` settings reach every vLLM command: ``--engine-args`` of the data steps (score's two engines
  share the memory fraction: half each) and ``--backend-args`` of ``skythought evaluate`` (a Python dict
  literal: SkyThought reads it with ``ast.literal_eval``).
- ``envs:``: trainings run in the LLaMA-Factory environment, vLLM data steps and ``skythought evaluate``
  in the vLLM one. Empty values mean: the running interpreter's environment, and ``.venv-vllm`` beside it
  (the two that ``make setup`` builds). The printed commands stay the same words; the stage header of a
  dry run names the environment, and the runner starts ``<env>/bin/<command>``.
"""

from __future__ import annotations

import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VLLM_DATA_COMMANDS = ("sample", "score", "rollout")


@dataclass
class VLLMConfig:
    gpu_memory_utilization: float | None = None  #: fraction of GPU memory per process (score: half per engine)
    max_model_len: int | None = None
    enforce_eager: bool | None = None  #: no CUDA graphs / torch.compile (fast start-up; required on CPU tests)
    enable_chunked_prefill: bool | None = None
    tensor_parallel_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  #: any other vLLM EngineArgs field

    def engine_args(self) -> dict[str, Any]:
        named = {k: getattr(self, k) for k in ("gpu_memory_utilization", "max_model_len", "enforce_eager",
                                               "enable_chunked_prefill", "tensor_parallel_size")}
        return {**{k: v for k, v in named.items() if v is not None}, **self.extra}


@dataclass
class EnvsConfig:
    llamafactory: str = ""  #: environment (venv folder) of the trainings; "" = the one running the pipeline
    vllm: str = ""  #: environment of vLLM data steps and skythought evaluate; "" = .venv-vllm beside it


def env_dir(config, role: str) -> Path:
    value = getattr(config.envs, role)
    if value:
        return Path(value)
    here = Path(sys.prefix)
    return here if role == "llamafactory" else here.parent / ".venv-vllm"


def finish(config, source: Path) -> None:
    """Resolve ``envs`` paths relative to the config file; refuse a vllm block that contradicts the rest."""
    from vr_plugins.pipeline.errors import ConfigError

    for role in ("llamafactory", "vllm"):
        value = getattr(config.envs, role)
        if value and not Path(value).is_absolute():
            setattr(config.envs, role, str((Path(source).resolve().parent / value).resolve()))
    tp = config.vllm.tensor_parallel_size
    if tp is not None and config.tensor_parallel_size not in (1, tp):
        raise ConfigError(f"{source}: vllm.tensor_parallel_size {tp} and tensor_parallel_size "
                          f"{config.tensor_parallel_size} disagree; set one")
    if "model" in config.vllm.extra:
        raise ConfigError(f"{source}: vllm.extra.model: the model is given by the pipeline, not the vllm block")


def apply(config, stages):
    """Add the vllm block to the vLLM commands and mark each step with the environment it runs in."""
    args = config.vllm.engine_args()
    for stage in stages:
        envs = set()
        for step in stage.steps:
            words = [str(w) for w in step.argv[:2]]
            if words[:1] == ["llamafactory-cli"]:
                step.venv = str(env_dir(config, "llamafactory"))
            elif words[:1] == ["vr-tools"] and words[1:] and words[1] in VLLM_DATA_COMMANDS \
                    and config.backend == "vllm":
                step.venv = str(env_dir(config, "vllm"))
                if args:
                    mine = dict(args)
                    if words[1] == "score" and "gpu_memory_utilization" in mine:
                        mine["gpu_memory_utilization"] = mine["gpu_memory_utilization"] / 2
                    step.argv += ["--engine-args", json.dumps(mine, sort_keys=True)]
            elif words == ["skythought", "evaluate"]:
                step.venv = str(env_dir(config, "vllm"))
                if args and "--backend-args" in step.argv:
                    i = step.argv.index("--backend-args") + 1
                    step.argv[i] = python_literal({**_backend_args(str(step.argv[i])), **args})
            if getattr(step, "venv", None) and Path(step.venv) != Path(sys.prefix):
                envs.add(step.venv)
        if envs:
            stage.description = (stage.description + " " if stage.description else "") + f"(runs in {', '.join(sorted(envs))})"
    return stages


def python_literal(args: dict) -> str:
    """A dict as a Python literal with double quotes (``True``, not JSON's ``true``), for ast.literal_eval."""
    def one(v):
        return {True: "True", False: "False"}[v] if isinstance(v, bool) else "None" if v is None else json.dumps(v)
    return "{" + ", ".join(f"{json.dumps(str(k))}: {one(v)}" for k, v in args.items()) + "}"


def _backend_args(text: str) -> dict:
    """SkyThought's two forms of --backend-args: a dict literal or ``k=v,k=v`` (values literal or text)."""
    try:
        value = ast.literal_eval(text)
        if isinstance(value, dict):
            return value
    except (ValueError, SyntaxError):
        pass
    out = {}
    for item in filter(None, text.split(",")):
        key, _, raw = item.partition("=")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def executable(venv: str | None, word: str) -> str:
    """``<venv>/bin/<word>`` when a step names its environment, else the word (the runner finds it)."""
    if venv and "/" not in word:
        path = Path(venv) / "bin" / word
        if not path.exists():
            from vr_plugins.data.vllm_engine import SETUP_COMMAND
            from vr_plugins.pipeline.errors import ConfigError

            raise ConfigError(f"{word} is not installed in {venv}, the environment this stage runs in (config "
                              f"key envs:). Build the vLLM environment with {SETUP_COMMAND}, or point envs.vllm / "
                              f"envs.llamafactory at an environment that has it.")
        return str(path)
    return word
