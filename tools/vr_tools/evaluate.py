"""``vr-tools evaluate``: a registered vr_* task on this machine with transformers (thin shell).

The same task handler as ``skythought evaluate --task`` loads the data, builds the prompts and grades;
only generation differs (transformers instead of vLLM), so it runs on CPU. Results are written in
SkyThought's result-folder shape, which ``vr-tools eval-summary`` reads.
"""

from __future__ import annotations

from pathlib import Path

import click

from vr_plugins.options import EvaluateOptions
from vr_tools._options import from_field


@click.command(name="evaluate")
@click.option("--task", required=True, help="A registered task (vr-tools plugins lists them), e.g. vr_math500.")
@click.option("--model", required=True, help="Local model folder with its tokenizer.")
@from_field(EvaluateOptions, "n")
@from_field(EvaluateOptions, "temperature")
@from_field(EvaluateOptions, "top_p")
@from_field(EvaluateOptions, "max_new_tokens")
@click.option("--data-dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Read DIR/<task>.jsonl instead of the hub (default: $VR_EVAL_DATA_DIR).")
@from_field(EvaluateOptions, "start")
@from_field(EvaluateOptions, "end")
@from_field(EvaluateOptions, "seed")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder that receives the result folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing result folder of the same configuration.")
def command(task, model, n, temperature, top_p, max_new_tokens, data_dir, start, end, seed, out, overwrite):
    """Evaluate MODEL on TASK and print the accuracy."""
    import json

    from vr_plugins.eval.local import evaluate_local
    from vr_plugins.eval.summary import SUMMARY_FILENAME

    folder = evaluate_local(task, model, n=n, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                            out_dir=out, start=start, end=end, seed=seed, data_dir=data_dir, overwrite=overwrite)
    summary = json.loads((Path(folder) / SUMMARY_FILENAME).read_text())
    click.echo(f"{task}  {Path(model).name}  accuracy {summary['accuracy']:.4f}  (n={n})  -> {folder}")
