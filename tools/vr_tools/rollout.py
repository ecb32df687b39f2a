"""``vr-tools rollout``: thin shell over :func:`vr_plugins.data.rollout.rollout`."""

import click

from vr_plugins.options import RolloutOptions, default_batch_size
from vr_tools._data_cli import engine_args_option, force_option, sampling_options, shard_option
from vr_tools._options import from_field


@click.command(name="rollout")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False),
              help="Run directory with questions.parquet and posterior/seed-<k>.parquet; writes rollouts/seed-<k>.parquet.")
@click.option("--model", required=True, help="Prior model pi_0 (local Hugging Face folder with its tokenizer).")
@from_field(RolloutOptions, "n")
@from_field(RolloutOptions, "seeds")
@sampling_options
@from_field(RolloutOptions, "max_model_len")
@engine_args_option
@shard_option
@force_option
def command(run_dir, model, n, seeds, temperature, top_p, max_new_tokens, backend, batch_size, dtype,
            tensor_parallel_size, gpu_memory_utilization, max_model_len, engine_args, shard, force):
    """Sample answer continuations from pi_0 given (x, z_k), stopping at <|end_of_solution|> (docs/method.md, step 6).

    --batch-size counts sequences: batch-size // n traces are continued together (at least one).
    """
    from vr_plugins.data.common import parse_seeds
    from vr_plugins.data.generation import SamplingParams
    from vr_plugins.data.rollout import rollout
    from vr_plugins.rundir.shards import parse_shard

    from vr_plugins.data.vllm_engine import parse_engine_args

    report = rollout(
        run_dir, model, n=n, seeds=parse_seeds(seeds) if seeds else None,
        params=SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens),
        backend=backend, shard=parse_shard(shard), batch_size=default_batch_size(batch_size, backend), force=force, dtype=dtype,
        max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization, engine_args=parse_engine_args(engine_args),
    )
    rate = report.tokens / report.seconds if report.seconds else 0.0
    click.echo(f"generated {report.generated} rollouts ({report.skipped} already done, {report.truncated_traces} "
               f"truncated traces), {report.tokens} tokens, {rate:.1f} tok/s")
    for path in report.outputs:
        click.echo(f"  {path}")
