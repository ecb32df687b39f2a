"""The output layer applied in row chunks: log softmax(hidden @ W.T)[target] without a [tokens x vocab] tensor.

Both the scorer (no grad) and the training loss (autograd, :mod:`vr_plugins.losses`) need, for N rows of
final hidden states, ``logit[target] - logsumexp(logits)`` over a vocabulary of V (152k for Qwen). The
naive equivalent is ``torch.log_softmax((hidden @ W.T).float(), -1).gather(-1, target)``: it holds N x V
float32 logits plus a second N x V tensor for the log-softmax. Here rows go through the output layer
``chunk`` at a time into ONE reused float32 buffer [chunk, V], reduced in place (max, subtract, exp, sum),
so the peak is chunk x V x 4 bytes whatever N is, and no per-chunk allocation happens (on CPU a fresh
310 MB tensor per chunk costs page faults as large as the arithmetic).

Precision: the multiply runs in the weights' dtype (float32 on CPU; bf16 on GPU, where the tensor cores
accumulate in float32) and the reduction in float32. That is exactly what the naive method computes: a
model's logits come out of lm_head in the model's dtype and are upcast afterwards. With float32 weights
the result equals the naive float32 log-softmax to 1e-5 (tested); with bf16 weights it equals the naive
method on the same bf16 model to 1e-5 and differs from a float32 copy of the model by the bf16 rounding
of the logits (about 0.4% of a logit, tested at 0.05 nats per token on random weights).
"""

from __future__ import annotations

#: default rows per chunk: 512 x 151,665 x 4 B = 311 MB of float32 logits
DEFAULT_CHUNK = 512


class ChunkBuffers:
    """One float32 [chunk, V] buffer (and a [chunk, V] one in the weights' dtype when that is not float32),
    allocated on first use and reused by every later call with the same device and sizes."""

    def __init__(self, chunk: int):
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.chunk = chunk
        self._logits = None
        self._low = None

    def get(self, rows: int, vocab: int, dtype, device):
        """(float32 [rows, V] view, weights-dtype [rows, V] view or None)."""
        import torch

        if self._logits is None or self._logits.shape[1] != vocab or self._logits.device != device:
            self._logits = torch.empty(self.chunk, vocab, dtype=torch.float32, device=device)
            self._low = None
        if dtype != torch.float32 and (self._low is None or self._low.dtype != dtype):
            self._low = torch.empty(self.chunk, vocab, dtype=dtype, device=device)
        return self._logits[:rows], (self._low[:rows] if dtype != torch.float32 else None)


def logits_into(out, low, hidden, weight, bias=None, softcap=None, scale=None):
    """``out`` (float32 [n, V]) := (hidden @ weight.T + bias) / scale, soft-capped; in place, returns ``out``.

    hidden: [n, H] in the weights' dtype; weight: [V, H]; low: [n, V] scratch in the weights' dtype or None.
    """
    import torch

    if low is None:
        torch.mm(hidden, weight.t(), out=out)
    else:
        torch.mm(hidden, weight.t(), out=low)
        out.copy_(low)
    if bias is not None:
        out.add_(bias)
    if scale:
        out.div_(scale)
    if softcap:
        out.div_(softcap).tanh_().mul_(softcap)
    return out


def log_normalizer_(logits):
    """logsumexp over the last axis, float32 [n]; DESTROYS ``logits`` (it holds exp(logits - max) after)."""
    import torch

    peak = logits.amax(dim=-1, keepdim=True)  # [n, 1]
    logits.sub_(peak).exp_()
    return torch.log(logits.sum(dim=-1)).add_(peak.squeeze(-1))


def target_logprobs(hidden, weight, targets, buffers: ChunkBuffers, bias=None, softcap=None, scale=None):
    """log softmax(hidden @ weight.T)[targets] row by row; float32 [N]. No grad.

    hidden: [N, H]; weight: [V, H]; targets: [N] token ids. Naive equivalent: see the module docstring.
    """
    import torch

    n_rows, vocab = hidden.shape[0], weight.shape[0]
    out = torch.empty(n_rows, dtype=torch.float32, device=hidden.device)
    with torch.no_grad():
        for start in range(0, n_rows, buffers.chunk):
            end = min(start + buffers.chunk, n_rows)
            logits, low = buffers.get(end - start, vocab, weight.dtype, hidden.device)
            logits_into(logits, low, hidden[start:end], weight, bias, softcap, scale)
            picked = logits.gather(1, targets[start:end, None]).squeeze(1)  # [n] before the buffer is reused
            out[start:end] = picked - log_normalizer_(logits)
    return out


def chunk_bytes(chunk: int, vocab: int, weight_bytes: int) -> int:
    """Bytes of the buffers :class:`ChunkBuffers` allocates (float32, plus the weights' dtype when smaller)."""
    return chunk * vocab * (4 + (weight_bytes if weight_bytes != 4 else 0))
