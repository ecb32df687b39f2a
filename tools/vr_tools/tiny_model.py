"""``vr-tools tiny-model``: build the embedded tiny model locally (random weights; no hub access)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command(name="tiny-model")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output directory (a local checkpoint).")
@click.option("--tokenizer", type=click.Choice(["bpe", "qwen"]), default="bpe", show_default=True,
              help="bpe: small BPE trained on --corpus; qwen: the real Qwen2.5 vocabulary.")
@click.option("--corpus", type=click.Path(exists=True, path_type=Path), default=None,
              help="JSONL/Parquet whose text trains the bpe tokenizer (with the prompts and markers).")
@click.option("--vocab-size", default=1024, show_default=True, help="bpe vocabulary size.")
@click.option("--hidden-size", default=64, show_default=True)
@click.option("--layers", default=2, show_default=True)
@click.option("--heads", default=4, show_default=True,
              help="attention heads (head size = hidden size / heads; vLLM's CPU attention needs >= 32).")
@click.option("--seed", default=0, show_default=True)
def command(out, tokenizer, corpus, vocab_size, hidden_size, layers, heads, seed):
    """Save a random-weight tiny Qwen2 causal LM and its tokenizer in OUT."""
    from vr_plugins.tiny import TinyModelConfig, build_tiny_model, corpus_texts

    texts = corpus_texts(corpus) if corpus else None
    if heads < 1 or hidden_size % heads:
        raise click.BadParameter(f"--hidden-size {hidden_size} is not a multiple of --heads {heads}", param_hint="--heads")
    config = TinyModelConfig(hidden_size=hidden_size, num_hidden_layers=layers, seed=seed,
                             intermediate_size=2 * hidden_size, num_attention_heads=heads,
                             num_key_value_heads=2 if heads % 2 == 0 else 1)
    path = build_tiny_model(out, tokenizer=tokenizer, config=config, texts=texts, vocab_size=vocab_size)
    click.echo(str(path))
