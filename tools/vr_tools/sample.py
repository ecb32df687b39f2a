"""``vr-tools sample``: thin shell over :func:`vr_plugins.data.sampling.sample`."""

import click

from vr_plugins.options import SampleOptions, default_batch_size
from vr_tools._data_cli import engine_args_option, force_option, sampling_options, shard_option
from vr_tools._options import from_field


@click.command(name="sample")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False), help="Run directory with questions.parquet; "
              "writes RUN/posterior/seed-<k>.parquet.")
@click.option("--model", required=True, help="Posterior model q (local Hugging Face folder with its tokenizer).")
@from_field(SampleOptions, "template")
@from_field(SampleOptions, "seeds")
@sampling_options
@from_field(SampleOptions, "max_model_len")
@from_field(SampleOptions, "vllm_mode")
@engine_args_option
@shard_option
@force_option
def command(run_dir, model, template, seeds, temperature, top_p, max_new_tokens, backend, batch_size, dtype,
            tensor_parallel_size, gpu_memory_utilization, max_model_len, vllm_mode, engine_args, shard, force):
    """Sample K thinking traces per question from the posterior q (docs/method.md, step 3).

    Resumable: re-running skips finished (prompt, seed) pairs. Sharded with --shard or RANK/WORLD_SIZE.
    """
    from vr_plugins.data.common import parse_seeds
    from vr_plugins.data.generation import SamplingParams
    from vr_plugins.data.sampling import sample
    from vr_plugins.rundir.shards import parse_shard

    from vr_plugins.data.vllm_engine import parse_engine_args

    report = sample(
        run_dir, model, template=template, seeds=parse_seeds(seeds),
        params=SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens),
        backend=backend, shard=parse_shard(shard), batch_size=default_batch_size(batch_size, backend), force=force, dtype=dtype,
        max_model_len=max_model_len, tensor_parallel_size=tensor_parallel_size,
        gpu_memory_utilization=gpu_memory_utilization, engine_args=parse_engine_args(engine_args), vllm_mode=vllm_mode,
    )
    rate = report.tokens / report.seconds if report.seconds else 0.0
    click.echo(f"sampled {report.generated} traces ({report.skipped} already done), {report.tokens} tokens, "
               f"{rate:.1f} tok/s")
    for path in report.outputs:
        click.echo(f"  {path}")
