"""``vr-tools score``: thin shell over :func:`vr_plugins.data.scoring.score`."""

import click

from vr_tools._data_cli import engine_args_option, fail_on_input_errors, force_option, shard_option


@click.command(name="score")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False),
              help="Run directory with questions.parquet and posterior/seed-<k>.parquet; writes scores/seed-<k>.parquet.")
@click.option("--prior", required=True, help="Prior model pi_0 (local Hugging Face folder with its tokenizer).")
@click.option("--posterior", required=True, help="Posterior model q (same tokenizer as the prior).")
@click.option("--template", default=None,
              help="Posterior prompt template (a, b or a registered name). Default: the one `sample` recorded in the "
              "manifest, else a (posterior files written by other tools).")
@click.option("--seeds", default=None, help="Seeds to score ('0-7', '0,3'). Default: every posterior/seed-<k>.parquet.")
@click.option("--backend", type=click.Choice(["hf", "vllm"]), default="hf", show_default=True,
              help="hf: chunked log-probs with transformers (never a [tokens x vocab] float32 tensor). vllm: "
              "prompt_logprobs (GPU; see docs/data_steps.md for its memory caveats).")
@click.option("--max-tokens", type=click.IntRange(min=2), default=32000, show_default=True,
              help="Longest sequence scored (capped by the models' context); longer traces are cut to fit and the "
              "row is flagged truncated.")
@click.option("--token-budget", type=click.IntRange(min=1), default=16384, show_default=True,
              help="hf backend, FlashAttention models: tokens per packed forward (sum of its sequences' lengths). "
              "Other models run one unpadded forward per sequence.")
@click.option("--chunk-tokens", type=click.IntRange(min=1), default=512, show_default=True,
              help="hf backend: positions sent through lm_head at once (one reused chunk x vocab float32 buffer "
              "per model).")
@click.option("--rows-per-part", type=click.IntRange(min=1), default=64, show_default=True,
              help="Rows per resumable part (work lost on a kill is at most one part).")
@click.option("--per-token", is_flag=True, help="Also write per-token log-prob lists (list<float32> columns).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
              show_default=True, help="Model weights dtype.")
@click.option("--tensor-parallel-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="vllm backend: GPUs per engine.")
@click.option("--gpu-memory-utilization", type=float, default=0.45, show_default=True,
              help="vllm backend: GPU memory fraction per engine (prior and posterior share the GPU).")
@engine_args_option
@shard_option
@force_option
def command(run_dir, prior, posterior, template, seeds, backend, max_tokens, token_budget, chunk_tokens,
            rows_per_part, per_token, dtype, tensor_parallel_size, gpu_memory_utilization, engine_args, shard, force):
    """Score traces with the prior pi_0 and the posterior q on identical token ids (docs/method.md, steps 4-5).

    Resumable and shardable like every data step.
    """
    from vr_plugins.data.common import parse_seeds
    from vr_plugins.data.scoring import score
    from vr_plugins.rundir.shards import parse_shard

    from vr_plugins.data.vllm_engine import parse_engine_args

    with fail_on_input_errors():
        report = score(
            run_dir, prior, posterior, template=template, seeds=parse_seeds(seeds) if seeds else None,
            backend=backend, shard=parse_shard(shard), max_tokens=max_tokens, token_budget=token_budget,
            chunk_tokens=chunk_tokens, rows_per_part=rows_per_part, per_token=per_token, force=force, dtype=dtype,
            tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization, engine_args=parse_engine_args(engine_args),
        )
    rate = report.tokens / report.seconds if report.seconds else 0.0
    click.echo(f"scored {report.scored} traces ({report.skipped} already done, {report.truncated} truncated), "
               f"{rate:.0f} tok/s")
    for path in report.outputs:
        click.echo(f"  {path}")
