"""Shared pieces of the data-step commands (prepare, sample, score, rollout): options and error mapping."""

from __future__ import annotations

import contextlib

import click


@contextlib.contextmanager
def fail_on_input_errors():
    """Turn bad-input errors of the library into ``Error: ...`` and exit status 2 (no traceback)."""
    from vr_plugins.registry import UnknownNameError
    from vr_plugins.rundir.io import RunDirError

    try:
        yield
    except (RunDirError, UnknownNameError, ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc


def shard_option(f):
    return click.option(
        "--shard", default=None, metavar="i/N",
        help="Process only questions with prompt_idx % N == i. Default: from RANK/WORLD_SIZE (torchrun) or "
        "SLURM_PROCID/SLURM_NTASKS, else the whole run. The shard that finishes last merges all shard files.",
    )(f)


def force_option(f):
    return click.option(
        "--force", is_flag=True,
        help="Run even if the manifest recorded different parameters for this step; the step's old outputs are "
        "deleted first.",
    )(f)


def sampling_options(f):
    """temperature / top_p / max-new-tokens / backend options shared by sample and rollout (the paper's defaults, docs/method.md)."""
    for option in reversed([
        click.option("--temperature", type=float, default=0.7, show_default=True, help="Sampling temperature."),
        click.option("--top-p", type=float, default=1.0, show_default=True, help="Nucleus sampling mass (1.0 = off)."),
        click.option("--max-new-tokens", type=click.IntRange(min=1), default=32764, show_default=True,
                     help="Generation limit per sample (also capped by the model context minus the prompt)."),
        click.option("--backend", type=click.Choice(["hf", "vllm"]), default="hf", show_default=True,
                     help="hf: transformers generate, batched by prompt length (CPU default). vllm: GPU engine."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Sequences per batch and per resumable part, sorted by prompt length. Default: 8 (hf: "
                     "generated together), 1024 (vllm: handed to the engine at once, which schedules them itself)."),
        click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
                     show_default=True, help="Model weights dtype."),
        click.option("--tensor-parallel-size", type=click.IntRange(min=1), default=1, show_default=True,
                     help="vllm backend: GPUs per model replica."),
        click.option("--gpu-memory-utilization", type=float, default=0.9, show_default=True,
                     help="vllm backend: fraction of GPU memory vLLM may take."),
    ]):
        f = option(f)
    return f


def engine_args_option(f):
    return click.option(
        "--engine-args", default=None, metavar="JSON",
        help="vllm backend: extra vllm.LLM engine arguments as a JSON object, e.g. '{\"enforce_eager\": true, "
        "\"max_model_len\": 4096, \"enable_chunked_prefill\": false}'. Keys must be fields of vLLM's EngineArgs.",
    )(f)


def default_batch_size(batch_size, backend: str) -> int:
    return batch_size or (8 if backend == "hf" else 1024)
