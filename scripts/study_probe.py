"""Learnability probe for the micro-scale study (docs/study.md, "Why a pretrained base").

Why it exists: before spending an hour of CPU on `vr-tools study`, this answers in a few minutes whether a
model of a given size learns the study's task at a given number of steps. It trains with a plain PyTorch
loop (not LLaMA-Factory: the point is speed, and nothing here is reported as a study result), on the
reference traces of a generated task, with the prompt masked, and prints greedy held-out accuracy per
level every --eval-every steps.

    python scripts/study_probe.py --tokenizer runs/study/init --steps 1500                # from scratch
    python scripts/study_probe.py --tokenizer runs/study/init --steps 1500 --no-system    # no system prompt
    python scripts/study_probe.py --model runs/study/base --steps 200 --lr 1e-3           # from the base
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from vr_plugins.formats import ASSISTANT_PREFILL, IM_START, REASONING
from vr_plugins.study import task


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="start from this checkpoint (else: random weights, needs --tokenizer)")
    ap.add_argument("--tokenizer", help="tokenizer folder for a from-scratch model (e.g. runs/study/init)")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--no-system", action="store_true", help="drop the reasoning system prompt (probe only)")
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--max-start", type=int, default=task.TaskSpec.max_start)
    ap.add_argument("--max-operand", type=int, default=task.TaskSpec.max_operand)
    ap.add_argument("--max-value", type=int, default=task.TaskSpec.max_value)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def main() -> None:
    a = _args()
    torch.manual_seed(a.seed)
    spec = task.TaskSpec(a.max_start, a.max_operand, a.max_value)
    data_dir = tempfile.mkdtemp(prefix="vr-probe-")
    task.generate(data_dir, a.n_train, 60, seed=0, spec=spec)
    train = [json.loads(x) for x in (Path(data_dir) / "train.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (Path(data_dir) / "eval" / f"{task.EVAL_TASK}.jsonl").read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(a.model or a.tokenizer)

    def prompt(question: str) -> str:
        text = REASONING.render_prompt(question)
        return text[text.index(f"{IM_START}user"):] if a.no_system else text

    examples = []
    for row in train:
        p = tok(prompt(row["conversations"][0]["value"]))["input_ids"]
        r = tok(row["conversations"][1]["value"].removeprefix(ASSISTANT_PREFILL) + tok.eos_token)["input_ids"]
        examples.append((p + r, [-100] * len(p) + r))
    if a.model:
        model = Qwen2ForCausalLM.from_pretrained(a.model)
    else:
        model = Qwen2ForCausalLM(Qwen2Config(
            vocab_size=len(tok), hidden_size=a.hidden, num_hidden_layers=a.layers, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=2 * a.hidden, tie_word_embeddings=True,  # as vr-tools tiny-model
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    warmup = 0.05 * a.steps + 1
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / a.steps)))

    def evaluate() -> dict[int, int]:
        model.eval()
        tok.padding_side = "left"
        correct = {level: 0 for level in task.LEVELS}
        enc = tok([prompt(e["problem"]) for e in held], return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=72, do_sample=False)
        for e, ids in zip(held, out):
            correct[e["level"]] += f"\\boxed{{{e['answer']}}}" in tok.decode(ids[enc["input_ids"].shape[1]:])
        model.train()
        return correct

    rng, pad, started = random.Random(a.seed), tok.pad_token_id, time.time()
    print(f"{sum(p.numel() for p in model.parameters())} parameters, "
          f"{sum(len(x) for x, _ in examples) / len(examples):.0f} tokens per example")
    for step in range(1, a.steps + 1):
        batch = rng.sample(examples, a.batch)
        width = max(len(x) for x, _ in batch)
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in batch])
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % a.eval_every == 0 or step == a.steps:
            c = evaluate()
            per = " ".join(f"L{level} {n}/{sum(e['level'] == level for e in held)}" for level, n in c.items())
            print(f"step {step} loss {loss.item():.3f} {time.time() - started:.0f}s greedy correct {per}", flush=True)


if __name__ == "__main__":
    main()
