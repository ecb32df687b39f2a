"""``vr-tools sample``: thin shell over :func:`vr_plugins.data.sampling.sample`."""

import click

from vr_tools._data_cli import engine_args_option, default_batch_size, fail_on_input_errors, force_option, sampling_options, shard_option


@click.command(name="sample")
@click.option("--run-dir", required=True, type=click.Path(file_okay=False), help="Run directory with questions.parquet; "
              "writes RUN/posterior/seed-<k>.parquet.")
@click.option("--model", required=True, help="Posterior model q (local Hugging Face folder with its tokenizer).")
@click.option("--template", default="a", show_default=True,
              help="Posterior prompt template: a, b, or any registered template name (vr-tools plugins).")
@click.option("--seeds", default="0-7", show_default=True, help="Seeds, one output file each: '0-7', '0,3,5', '0-3,6'.")
@sampling_options
@click.option("--max-model-len", type=click.IntRange(min=2), default=None,
              help="Context length; default: the model config's max_position_embeddings. Prompts at least this long "
              "are an error.")
@click.option("--vllm-mode", type=click.Choice(["per-seed", "n"]), default="per-seed", show_default=True,
              help="vllm backend: per-seed = one request per (prompt, seed) pass, one seed file at a time; n = one "
              "request per prompt with n = number of seeds (shares the prefill; sample j goes to the j-th seed).")
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

    with fail_on_input_errors():
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
