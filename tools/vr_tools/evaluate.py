"""``vr-tools evaluate``: a registered vr_* task on this machine with transformers (thin shell).

The same task handler as ``skythought evaluate --task`` loads the data, builds the prompts and grades;
only generation differs (transformers instead of vLLM), so it runs on CPU. Results are written in
SkyThought's result-folder shape, which ``vr-tools eval-summary`` reads.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="evaluate")
@click.option("--task", required=True, help="A registered task (vr-tools plugins lists them), e.g. vr_math500.")
@click.option("--model", required=True, help="Local model folder with its tokenizer.")
@click.option("--n", default=1, show_default=True, help="Samples per problem.")
@click.option("--temperature", default=0.7, show_default=True)
@click.option("--top-p", default=1.0, show_default=True)
@click.option("--max-new-tokens", default=1024, show_default=True)
@click.option("--data-dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Read DIR/<task>.jsonl instead of the hub (default: $VR_EVAL_DATA_DIR).")
@click.option("--start", default=0, show_default=True, help="First problem index.")
@click.option("--end", default=-1, show_default=True, help="Last problem index (exclusive; -1 = all).")
@click.option("--seed", default=41, show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder that receives the result folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing result folder of the same configuration.")
def command(task, model, n, temperature, top_p, max_new_tokens, data_dir, start, end, seed, out, overwrite):
    """Evaluate MODEL on TASK and print the accuracy."""
    import json

    from vr_plugins.eval.local import evaluate_local
    from vr_plugins.eval.summary import SUMMARY_FILENAME
    from vr_plugins.registry import UnknownNameError

    try:
        folder = evaluate_local(task, model, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                top_p=top_p, out_dir=out, start=start, end=end, seed=seed, data_dir=data_dir,
                                overwrite=overwrite)
    except (UnknownNameError, FileExistsError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    summary = json.loads((Path(folder) / SUMMARY_FILENAME).read_text())
    click.echo(f"{task}  {Path(model).name}  accuracy {summary['accuracy']:.4f}  (n={n})  -> {folder}")
