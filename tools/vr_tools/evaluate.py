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
@click.option("--model", "models", required=True, multiple=True,
              help="Local model folder with its tokenizer. Repeat it to evaluate several models in one process "
              "(start-up, task data and a shared tokenizer loaded once); each gets its own result folder.")
@from_field(EvaluateOptions, "n")
@from_field(EvaluateOptions, "temperature")
@from_field(EvaluateOptions, "top_p")
@from_field(EvaluateOptions, "max_new_tokens")
@click.option("--data-dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Read DIR/<task>.jsonl instead of the hub (default: $VR_EVAL_DATA_DIR).")
@from_field(EvaluateOptions, "start")
@from_field(EvaluateOptions, "end")
@from_field(EvaluateOptions, "seed")
@click.option("--out", "outs", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Folder that receives the result folder: once for every model, or once per --model, in order.")
@click.option("--overwrite", is_flag=True, help="Replace an existing result folder of the same configuration.")
@click.option("--skip-existing", is_flag=True,
              help="Keep an existing result folder of the same configuration and do not evaluate that model again "
              "(folders are written whole, so an interrupted batch resumes this way).")
def command(task, models, n, temperature, top_p, max_new_tokens, data_dir, start, end, seed, outs, overwrite,
            skip_existing):
    """Evaluate each MODEL on TASK and print its accuracy."""
    from vr_plugins.eval.local import EvalOptionError, evaluate_local_many

    if len(outs) not in (1, len(models)):
        raise EvalOptionError(f"--out was given {len(outs)} times for {len(models)} --model: give it once (one "
                              "folder for every model) or once per --model, in the same order")
    if overwrite and skip_existing:
        raise EvalOptionError("--overwrite and --skip-existing contradict each other: choose one")
    pairs = list(zip(models, outs if len(outs) == len(models) else outs * len(models)))

    evaluated = []

    def done(model, folder, summary):
        evaluated.append(folder)
        click.echo(f"{task}  {Path(model).name}  accuracy {summary['accuracy']:.4f}  (n={n})  -> {folder}")

    folders = evaluate_local_many(task, pairs, n=n, max_new_tokens=max_new_tokens, temperature=temperature,
                                  top_p=top_p, start=start, end=end, seed=seed, data_dir=data_dir,
                                  overwrite=overwrite, skip_existing=skip_existing, on_done=done)
    for folder in folders:
        if folder not in evaluated:
            click.echo(f"{task}  kept (--skip-existing): {folder}")
