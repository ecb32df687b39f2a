"""The options of every data step, declared once: default, type, help text and allowed values.

Each step has a frozen dataclass whose fields carry their help in ``metadata`` (TRL's style), so the
``vr-tools`` options (:mod:`vr_tools._options` turns a field into a ``click.option``), the pipeline
config (:mod:`vr_plugins.pipeline.config`), the study (:mod:`vr_plugins.study`) and the library's own
parameter objects (:class:`vr_plugins.data.generation.SamplingParams`) read their defaults from here and
cannot drift apart; ``tests/test_options.py`` checks that the command line, and the keyword defaults
of the step functions (``vr_plugins.data.sampling.sample``, ...), still agree.

Metadata keys: ``help`` (the option's help text), ``choices`` (allowed values: a ``click.Choice``),
``min`` (lower bound: a ``click.IntRange`` / ``click.FloatRange``), ``metavar``, ``show_default``
(default: shown unless the default is None).

The estimators' options (the length cap, acc's fallback families, snis' weights) are declared the same
way next to the estimators, in :mod:`vr_plugins.estimators.options`.

This module imports nothing heavy: every command imports it at start-up.
"""

from __future__ import annotations

from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

#: model weight dtypes of the hf/vllm backends
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: generation and scoring backends
BACKENDS = ("hf", "vllm")


def option(default: Any, help: str, *, choices: tuple | None = None, min: int | float | None = None,  # noqa: A002
           metavar: str | None = None, show_default: bool | None = None) -> Any:
    """A dataclass field with its command-line metadata (``field(default=..., metadata={...})``)."""
    metadata = {"help": help}
    for key, value in (("choices", choices), ("min", min), ("metavar", metavar), ("show_default", show_default)):
        if value is not None:
            metadata[key] = value
    return field(default=default, metadata=metadata)


def option_field(cls: type, name: str) -> Field:
    """The field ``name`` of the options dataclass ``cls`` (KeyError naming the known fields otherwise)."""
    by_name = {f.name: f for f in fields(cls)}
    if name not in by_name:
        raise KeyError(f"{cls.__name__} has no option {name!r}; known: {', '.join(by_name)}")
    return by_name[name]


def option_default(cls: type, name: str) -> Any:
    f = option_field(cls, name)
    return f.default_factory() if f.default_factory is not MISSING else f.default


# --- prepare ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrepareOptions:
    """``vr-tools prepare``: how the input dataset is read into RUN/questions.parquet."""

    format: str = option("auto", "Input layout; auto picks bespoke when a 'conversations' column exists, generic when "
                         "'question' does.", choices=("auto", "bespoke", "generic"))
    source_family: str = option("auto", "Family written into 'source' for rows that carry none (Bespoke rows; generic "
                                "rows without a source value). 'auto' guesses per Bespoke row: code questions -> apps, "
                                "everything else -> numina.")
    split: str = option("train", "Split to load when --dataset is a hub id.")
    limit: int | None = option(None, "Use only the first N input rows (quick subsets).", min=1)
    strict: bool = option(False, "Fail (writing nothing) if any row cannot be parsed, instead of skipping it.")


# --- generation (sample, rollout) ------------------------------------------------------------------
@dataclass(frozen=True)
class SamplingOptions:
    """The sampling parameters of sample and rollout: the paper's defaults (docs/method.md, step 3)."""

    temperature: float = option(0.7, "Sampling temperature.")
    top_p: float = option(1.0, "Nucleus sampling mass (1.0 = off).")
    max_new_tokens: int = option(32764, "Generation limit per sample (also capped by the model context minus the "
                                 "prompt).", min=1)


@dataclass(frozen=True)
class GenerationOptions:
    """How sample and rollout run the model: backend, batching, dtype and the vLLM engine's share of the GPU."""

    backend: str = option("hf", "hf: transformers generate, batched by prompt length (CPU default). vllm: GPU engine.",
                          choices=BACKENDS)
    batch_size: int | None = option(None, "Sequences per batch and per resumable part, sorted by prompt length. "
                                    "Default: 8 (hf: generated together), 1024 (vllm: handed to the engine at once, "
                                    "which schedules them itself).", min=1)
    dtype: str = option("auto", "Model weights dtype.", choices=DTYPES)
    tensor_parallel_size: int = option(1, "vllm backend: GPUs per model replica.", min=1)
    gpu_memory_utilization: float = option(0.9, "vllm backend: fraction of GPU memory vLLM may take.")


#: ``GenerationOptions.batch_size`` when not given, per backend
DEFAULT_BATCH_SIZES = {"hf": 8, "vllm": 1024}


def default_batch_size(batch_size: int | None, backend: str) -> int:
    """The batch size a generation step uses: the given one, else the backend's (``DEFAULT_BATCH_SIZES``)."""
    return batch_size or DEFAULT_BATCH_SIZES["hf" if backend == "hf" else "vllm"]


@dataclass(frozen=True)
class SampleOptions:
    """``vr-tools sample`` beyond the shared sampling and generation options."""

    template: str = option("a", "Posterior prompt template: a, b, or any registered template name (vr-tools plugins).")
    seeds: str = option("0-7", "Seeds, one output file each: '0-7', '0,3,5', '0-3,6'.")
    max_model_len: int | None = option(None, "Context length; default: the model config's max_position_embeddings. "
                                       "Prompts at least this long are an error.", min=2)
    vllm_mode: str = option("per-seed", "vllm backend: per-seed = one request per (prompt, seed) pass, one seed file "
                            "at a time; n = one request per prompt with n = number of seeds (shares the prefill; "
                            "sample j goes to the j-th seed).", choices=("per-seed", "n"))


@dataclass(frozen=True)
class RolloutOptions:
    """``vr-tools rollout`` beyond the shared sampling and generation options."""

    n: int = option(8, "Continuations per (question, trace).", min=1)
    seeds: str | None = option(None, "Trace seeds to continue ('0-7', '0,3'). Default: every "
                               "posterior/seed-<k>.parquet.")
    max_model_len: int | None = option(None, "Context length; default: the model config's max_position_embeddings. "
                                       "Longer traces keep their head and are flagged truncated.", min=2)


# --- scoring -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreOptions:
    """``vr-tools score``: how the prior and the posterior score the traces (docs/method.md, steps 4-5)."""

    template: str | None = option(None, "Posterior prompt template (a, b or a registered name). Default: the one "
                                  "`sample` recorded in the manifest, else a (posterior files written by other tools).")
    seeds: str | None = option(None, "Seeds to score ('0-7', '0,3'). Default: every posterior/seed-<k>.parquet.")
    backend: str = option("hf", "hf: chunked log-probs with transformers (never a [tokens x vocab] float32 tensor). "
                          "vllm: prompt_logprobs (GPU; see docs/data_steps.md for its memory caveats).",
                          choices=BACKENDS)
    max_tokens: int = option(32000, "Longest sequence scored (capped by the models' context); longer traces are cut "
                             "to fit and the row is flagged truncated.", min=2)
    token_budget: int = option(16384, "hf backend, FlashAttention models: tokens per packed forward (sum of its "
                               "sequences' lengths). Other models run one unpadded forward per sequence.", min=1)
    chunk_tokens: int = option(512, "hf backend: positions sent through lm_head at once (one reused chunk x vocab "
                               "float32 buffer per model).", min=1)
    rows_per_part: int = option(64, "Rows per resumable part (work lost on a kill is at most one part).", min=1)
    per_token: bool = option(False, "Also write per-token log-prob lists (list<float32> columns).")
    dtype: str = option("auto", "Model weights dtype.", choices=DTYPES)
    tensor_parallel_size: int = option(1, "vllm backend: GPUs per engine.", min=1)
    gpu_memory_utilization: float = option(0.45, "vllm backend: GPU memory fraction per engine (prior and posterior "
                                           "share the GPU).")


# --- verification ------------------------------------------------------------------------------------
#: ``vr-tools verify --math-backend`` values
MATH_BACKENDS = ("vr", "skythought", "math_verify")


@dataclass(frozen=True)
class VerifyOptions:
    """``vr-tools verify``: the checkers' processes and limits."""

    workers: int | None = option(None, "Checker processes. Default: the usable CPU cores (more is allowed, with a "
                                 "warning).", min=1)
    timeout: float = option(5.0, "CPU seconds per math check (the worker's own CPU time, so load does not flip "
                            "grades; a wall-clock backstop of max(60, 20 x this) s also applies) and wall-clock "
                            "seconds per check of plugin verifiers; past it the worker is killed and the rollout "
                            "graded incorrect, timeout.")
    code_timeout: float = option(6.0, "Seconds per test case of a code check (a program's limit is the sum over its "
                                 "tests).")
    memory_mb: int = option(2048, "Address-space limit of each sandboxed program.", min=64)
    math_backend: str = option("vr", "vr: exact numbers + Math-Verify + vetoes (zero known false positives); "
                               "skythought: SkyThought's math_equal (paper parity, known false positives in "
                               "docs/verification.md); math_verify: plain Math-Verify on the last box.",
                               choices=MATH_BACKENDS)
    seeds: str | None = option(None, "Rollout seeds to verify ('0-7', '0,3'). Default: every "
                               "rollouts/seed-<k>.parquet.")


# --- build -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildStepOptions:
    """``vr-tools build`` options that are not an estimator's (those are in :mod:`vr_plugins.estimators.options`)."""

    mix: bool = option(True, "Prepend all original reference examples (source -2): 2N rows for gml/acc.")


# --- evaluation ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluateOptions:
    """``vr-tools evaluate`` (transformers on this machine): samples and sampling of the evaluation."""

    n: int = option(1, "Samples per problem.")
    temperature: float = option(SamplingOptions.temperature, "Sampling temperature.")
    top_p: float = option(SamplingOptions.top_p, "Nucleus sampling mass (1.0 = off).")
    max_new_tokens: int = option(1024, "Generation limit per sample.")
    start: int = option(0, "First problem index.")
    end: int = option(-1, "Last problem index (exclusive; -1 = all).")
    seed: int = option(41, "Seed of the evaluation's sampling.")


#: the defaults as instances, for ``temperature: float = SAMPLING.temperature`` elsewhere
PREPARE = PrepareOptions()
SAMPLING = SamplingOptions()
GENERATION = GenerationOptions()
SAMPLE = SampleOptions()
ROLLOUT = RolloutOptions()
SCORE = ScoreOptions()
VERIFY = VerifyOptions()
BUILD = BuildStepOptions()
EVALUATE = EvaluateOptions()
