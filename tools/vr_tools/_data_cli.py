"""Shared options of the data-step commands (prepare, sample, score, rollout, verify).

Their defaults and help are declared in :mod:`vr_plugins.options`; bad input is reported by the one
handler in :mod:`vr_tools.cli` (``UserError``), not here.
"""

from __future__ import annotations

import click

from vr_plugins.options import GenerationOptions, SamplingOptions
from vr_tools._options import from_fields


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
    """temperature / top_p / max-new-tokens / backend options shared by sample and rollout (the paper's defaults,
    docs/method.md): :class:`SamplingOptions` then :class:`GenerationOptions`."""
    return from_fields(SamplingOptions)(from_fields(GenerationOptions)(f))


def engine_args_option(f):
    return click.option(
        "--engine-args", default=None, metavar="JSON",
        help="vllm backend: extra vllm.LLM engine arguments as a JSON object, e.g. '{\"enforce_eager\": true, "
        "\"max_model_len\": 4096, \"enable_chunked_prefill\": false}'. Keys must be fields of vLLM's EngineArgs.",
    )(f)

