"""Per-token log-probabilities of given token ids, without a [tokens x vocab] float32 tensor.

The reference scores one sequence at a time with ``log_softmax(logits.float())`` over the whole
vocabulary: about 50 GB transient for one 32k-token sequence at a 152k vocabulary. Here the decoder
runs once to its final hidden states; only the positions that are scored go through ``lm_head``, in
chunks of ``chunk_tokens`` rows, and each chunk is reduced to ``logit[target] - logsumexp(logits)``
at once. The peak is one chunk of logits (chunk_tokens x vocab), independent of the sequence length.

Sequences are packed into batches by a token budget (batch size x longest sequence <= budget), longest
first, right-padded with an attention mask.

Models: logits must be ``lm_head(final hidden state)`` (Qwen2/3, Llama, Mistral, ...); Gemma-2 style
``final_logit_softcapping`` and Granite style ``logits_scaling`` are applied when the config has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np


@dataclass(frozen=True)
class ScoreRequest:
    """Score ``ids[score_from:]``, each token given everything before it (``score_from`` >= 1)."""

    ids: tuple[int, ...]
    score_from: int


def chunked_target_logprobs(hidden, weight, targets, chunk_tokens: int = 512, bias=None, softcap=None, scale=None):
    """log softmax(hidden @ weight.T)[targets] row by row, in chunks; returns float32 [N].

    hidden: [N, H] (model dtype); weight: [V, H]; targets: [N] token ids.
    """
    import torch

    out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    for start in range(0, hidden.shape[0], chunk_tokens):
        end = min(start + chunk_tokens, hidden.shape[0])
        logits = torch.nn.functional.linear(hidden[start:end], weight, bias).float()
        if scale:
            logits = logits / scale
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        target = logits.gather(-1, targets[start:end].unsqueeze(-1)).squeeze(-1)
        out[start:end] = target - torch.logsumexp(logits, dim=-1)
        del logits
    return out


def pack_by_budget(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Indices grouped into batches, longest first, with len(batch) * longest <= token_budget.

    A sequence longer than the budget forms a batch of its own.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= token_budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


class HFScorer:
    """Chunked log-probs with a transformers causal LM (see the module docstring)."""

    def __init__(self, model, pad_id: int, token_budget: int = 16384, chunk_tokens: int = 512):
        self.model = model
        self.pad_id = pad_id
        self.token_budget = token_budget
        self.chunk_tokens = chunk_tokens
        config = model.config
        self.softcap = getattr(config, "final_logit_softcapping", None)
        self.scale = getattr(config, "logits_scaling", None)
        self.tokens = 0

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        """float32 log-probs of ``ids[score_from:]`` for each request, in request order."""
        results: list[np.ndarray | None] = [None] * len(requests)
        for batch in pack_by_budget([len(r.ids) for r in requests], self.token_budget):
            for i, values in zip(batch, self._score_batch([requests[i] for i in batch])):
                results[i] = values
        self.tokens += sum(len(r.ids) for r in requests)
        return results  # type: ignore[return-value]

    def _score_batch(self, requests: list[ScoreRequest]) -> list[np.ndarray]:
        import torch

        for r in requests:
            if not 1 <= r.score_from <= len(r.ids):
                raise ValueError(f"score_from {r.score_from} outside 1..{len(r.ids)}")
        device = self.model.device
        width = max(len(r.ids) for r in requests)
        input_ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(requests), width), dtype=torch.long)
        rows, cols, targets = [], [], []
        for b, r in enumerate(requests):
            input_ids[b, : len(r.ids)] = torch.tensor(r.ids)
            mask[b, : len(r.ids)] = 1
            positions = range(r.score_from - 1, len(r.ids) - 1)  # hidden state at t predicts token t + 1
            rows += [b] * len(positions)
            cols += list(positions)
            targets += list(r.ids[r.score_from:])
        with torch.inference_mode():
            hidden = self.model.base_model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                           use_cache=False).last_hidden_state
            picked = hidden[torch.tensor(rows, device=device), torch.tensor(cols, device=device)]
            del hidden
            head = self.model.get_output_embeddings()
            values = chunked_target_logprobs(picked, head.weight, torch.tensor(targets, device=device),
                                             self.chunk_tokens, getattr(head, "bias", None), self.softcap, self.scale)
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

    Not run in this project's CI (no GPU): written against vLLM's documented Python API.

    Memory caveats: vLLM computes prompt log-probs as a full float32 log-softmax over the vocabulary for
    every prefill chunk (``max_num_batched_tokens`` x vocab x 4 bytes, ~1.2 GB per 2k tokens at 152k
    vocab) outside its KV-cache budget, so leave headroom (``gpu_memory_utilization`` default 0.45
    here, two engines share a GPU: prior and posterior). Prefix caching is disabled: cached prefixes
    would return no prompt log-probs. Values are computed on the raw logits (no temperature).
    """

    def __init__(self, model_path: str, dtype: str = "auto", tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.45, max_model_len: int | None = None):
        from vllm import LLM  # imported here: never needed on CPU

        self.llm = LLM(model=model_path, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                       gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                       enable_prefix_caching=False, generation_config="vllm", seed=0)
        self.tokens = 0

    def score(self, requests: Sequence[ScoreRequest]) -> list[np.ndarray]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        # 1 = the top token plus the given one (the given token is always included); 0 was rejected by
        # some vLLM versions
        params = SamplingParams(max_tokens=1, prompt_logprobs=1, detokenize=False, temperature=0.0)
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=list(r.ids)) for r in requests], params,
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
