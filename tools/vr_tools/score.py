"""``vr-tools score``: thin shell over :func:`vr_plugins.data.scoring.score`."""

import click

from vr_plugins.options import ScoreOptions
from vr_tools._data_cli import engine_args_option, force_option, shard_option
from vr_tools._options import from_fields


@click.command(name="score")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False),
              help="Run directory with questions.parquet and posterior/seed-<k>.parquet; writes scores/seed-<k>.parquet.")
@click.option("--prior", required=True, help="Prior model pi_0 (local Hugging Face folder with its tokenizer).")
@click.option("--posterior", required=True, help="Posterior model q (same tokenizer as the prior).")
@from_fields(ScoreOptions)
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
