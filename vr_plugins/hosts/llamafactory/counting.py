"""Supervised-token counts per training row, through LLaMA-Factory's own data pipeline.

The normaliser must count exactly what the trainer will supervise: the recipe's template, cutoff_len
(which truncates prompt and response proportionally), packing and dataset formats. So the counts come
from LLaMA-Factory's ``get_dataset`` in streaming mode, not from a re-implementation: a local file is
loaded into a memory-mapped Arrow table (disk, not RAM) and iterated; tokenisation and packing run one
batch at a time; the shuffle buffer is set to 1.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Any
from collections.abc import Iterator

#: recipe keys that would start distributed or accelerator machinery, irrelevant for counting
_DROP = ("deepspeed", "ddp_backend", "fsdp", "fsdp_config", "eval_dataset", "tokenized_path")


def counting_args(recipe: dict[str, Any], dataset: str, dataset_dir: str, model: str, output_dir: str) -> dict[str, Any]:
    args = {k: v for k, v in recipe.items() if k not in _DROP}
    args.update(
        model_name_or_path=str(model),
        dataset=dataset,
        dataset_dir=str(dataset_dir),
        output_dir=output_dir,
        streaming=True,
        buffer_size=1,
        val_size=0.0,
        do_train=True,
        do_eval=False,
        bf16=False,
        fp16=False,
        report_to="none",
        overwrite_cache=True,
        dataloader_num_workers=1,  # LLaMA-Factory streams a local file as that many shards (0 = empty)
    )
    return args


@contextlib.contextmanager
def stdout_to_stderr():
    """LLaMA-Factory prints examples and logs to stdout; keep stdout clean for the caller (``--json``)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def supervised_token_counts(
    recipe: dict[str, Any], dataset: str, dataset_dir: str, model: str, max_rows: int | None = None
) -> Iterator[int]:
    """Yield, per training row (an example, or a packed row), its number of supervised target tokens."""
    from transformers import HfArgumentParser

    import llamafactory.hparams.parser as parser_module
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.extras.constants import IGNORE_INDEX
    from llamafactory.model import load_tokenizer

    with tempfile.TemporaryDirectory() as output_dir, stdout_to_stderr():
        parser = HfArgumentParser(parser_module._TRAIN_ARGS)
        model_args, data_args, training_args, finetuning_args, _ = parser.parse_dict(
            counting_args(recipe, dataset, dataset_dir, model, output_dir), allow_extra_keys=True
        )
        if data_args.packing is None:  # what get_train_args does
            data_args.packing = finetuning_args.stage == "pt"
        model_args.model_max_length = data_args.cutoff_len
        tokenizer_module = load_tokenizer(model_args)
        template = get_template_and_fix_tokenizer(tokenizer_module["tokenizer"], data_args)
        module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
        for n, row in enumerate(module["train_dataset"]):
            if max_rows is not None and n >= max_rows:
                return
            labels = row["labels"]
            yield sum(1 for label in labels[1:] if label != IGNORE_INDEX)


def processed_dataset_counts(dataset, ignore_index: int = -100, batch_rows: int = 1024) -> tuple[int, int]:
    """(rows, supervised target tokens) of a tokenised training dataset, as :func:`supervised_token_counts`
    counts them (``labels[1:] != IGNORE_INDEX`` per row), computed column-wise in Arrow: the labels are
    never turned into Python lists."""
    import pyarrow.compute as pc

    rows = tokens = 0
    for table in dataset.with_format("arrow").iter(batch_size=batch_rows):
        labels = table.column("labels")
        rows += len(labels)
        for chunk in labels.chunks:
            targets = pc.list_flatten(pc.list_slice(chunk, 1))
            tokens += int(pc.sum(pc.not_equal(targets, ignore_index)).as_py() or 0)
    return rows, tokens
