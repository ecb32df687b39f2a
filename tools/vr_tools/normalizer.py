"""``vr-tools normalizer``: compute the constant loss normaliser C for a recipe and dataset."""

import json

import click


@click.command(name="normalizer")
@click.option("--dataset", required=True, help="Dataset name in DATASET_DIR/dataset_info.json.")
@click.option("--dataset-dir", required=True, type=click.Path(file_okay=False), help="Folder with dataset_info.json.")
@click.option("--model", required=True, help="Base model or tokenizer folder (the recipe's tokenizer).")
@click.option("--recipe", required=True, type=click.Path(dir_okay=False), help="The LLaMA-Factory training YAML.")
@click.option("--num-gpus", type=click.IntRange(min=1), default=None, help="Data-parallel world size (default 1).")
@click.option("--max-examples", type=click.IntRange(min=1), default=None, help="Count only the first rows (estimate).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (machine-readable) instead of text.")
def command(dataset, dataset_dir, model, recipe, num_gpus, max_examples, as_json):
    """C = mean supervised tokens per training row (after cutoff, with the recipe's template) x global batch.

    Prints C and the YAML line to paste into the recipe. Streams the dataset.
    """
    from vr_plugins.normalizer import compute_constant_normalizer

    result = compute_constant_normalizer(dataset, dataset_dir, model, recipe, num_gpus=num_gpus,
                                         max_examples=max_examples)
    if as_json:
        click.echo(json.dumps(result.to_dict(), sort_keys=True))
        return
    if num_gpus is None:
        click.echo("note: --num-gpus not given, assuming 1 GPU; C scales with the number of GPUs", err=True)
    click.echo(f"rows counted            {result.n_examples}{' (packed rows)' if result.packing else ''}")
    click.echo(f"mean supervised tokens  {result.mean_tokens:.3f}")
    click.echo(
        f"global batch size       {result.global_batch_size} = {result.per_device_batch_size} per device x "
        f"{result.gradient_accumulation_steps} grad-accum x {result.num_gpus} GPUs"
    )
    click.echo(f"C                       {result.normalizer:.6f}")
    click.echo("")
    click.echo(result.yaml_line())
