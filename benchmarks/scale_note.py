"""The scale note of docs/benchmarks.md: how each step's cost grows with its work, and the paper-scale projection.

Rendered by ``run_all.py`` from the results of the same ``make bench`` run. Every number is labelled:
MEASURED (this run, this machine), or ARITHMETIC (a formula over measured numbers and the stated
assumptions). Nothing here is measured on a GPU: this machine has none.
"""

from __future__ import annotations

import math
import re

#: the paper's run: questions x traces per question x rollouts per trace, at up to 32k tokens
QUESTIONS, TRACES, ROLLOUTS, CONTEXT = 16_710, 8, 8, 32_768
#: ASSUMPTIONS of the projection (not measured here); change them and re-run run_all.py
MODEL_PARAMS = 8.0e9  # Qwen3-8B-Base
LAYERS, HIDDEN = 36, 4096
MEAN_PROMPT, MEAN_TRACE, MEAN_ROLLOUT = 300, 4_000, 1_000  # tokens
GPUS, GPU_FLOPS, MFU = 8, 989e12, 0.40  # one H100 node, dense bf16 peak, assumed utilisation
DECODE_TOKENS_PER_S_PER_GPU = 2_500  # assumed vLLM decode throughput of an 8B model at large batch


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def _exponent(n1, t1, n2, t2) -> float:
    return math.log(t2 / t1) / math.log(n2 / n1)


def _scoring_points(records) -> list[tuple[int, float, float, float]]:
    """(trace tokens, ours median wall s, minimum-work median wall s, ratio median) per length of
    bench_scoring's whole-process comparison."""
    out = []
    for r in records.get("bench_scoring", []):
        m = re.search(r"one (\d+)-token trace", r["name"])
        if r.get("kind") == "comparison" and m:
            walls = r["values"]["wall_s"]
            out.append((int(m.group(1)), _median(walls[r["ours"]]), _median(walls[r["baseline"]]),
                        _median(r["ratios"]["wall_s"])))
    return sorted(out)


def _training_points(records) -> list[tuple[int, float, float]]:
    """(cutoff, step s, peak RSS MiB) of our loss, from bench_train."""
    out = []
    for r in records.get("bench_train", []):
        m = re.search(r"cutoff (\d+)", r["name"])
        if not m:
            continue
        if r.get("kind") == "comparison":
            ours = r["ours"]
            out.append((int(m.group(1)), _median(r["values"]["step_s"][ours]), _median(r["values"]["peak_rss_mib"][ours])))
        else:
            out.append((int(m.group(1)), r["values"]["step_s"], r["values"]["peak_rss_mib"]))
    return sorted(out)


def _build_points(records) -> list[tuple[int, str, float]]:
    out = []
    for r in records.get("bench_build", []):
        m = re.search(r"(\d[\d,]*) questions", r["name"])
        if r.get("kind") == "comparison" and m:
            out.append((int(m.group(1).replace(",", "")), r["name"].split(" build")[0],
                        _median(r["values"]["seconds"][r["ours"]])))
    return sorted(out)


def _flops_per_token(context: float) -> float:
    """Forward FLOPs of one token: 2 x parameters + attention over ``context`` tokens (4 x layers x hidden x context)."""
    return 2 * MODEL_PARAMS + 4 * LAYERS * HIDDEN * context


def _hours(flops: float) -> float:
    return flops / (GPUS * GPU_FLOPS * MFU) / 3600


def render_scale_note(records: dict, printed: dict[str, list[str]] | None = None) -> list[str]:
    lines = ["## Scale note: cost against work, and the paper's run on one H100 node", "",
             "How each step's cost grows with its work, MEASURED by the benchmarks above at two or three sizes "
             "(growth exponent k in cost ~ work^k between the sizes), then the projection for the paper's "
             f"{QUESTIONS:,} questions x {TRACES} traces x {ROLLOUTS} rollouts at up to {CONTEXT:,} tokens on one "
             f"node of {GPUS} H100. The projection is ARITHMETIC: FLOPs = tokens x (2 x parameters + attention), at "
             f"{MFU:.0%} of the {GPU_FLOPS / 1e12:.0f} TFLOP/s dense bf16 peak, for an {MODEL_PARAMS / 1e9:.0f}B "
             f"model ({LAYERS} layers, hidden {HIDDEN}); assumed mean lengths: prompt {MEAN_PROMPT}, trace "
             f"{MEAN_TRACE:,}, rollout {MEAN_ROLLOUT:,} tokens; decode at an assumed {DECODE_TOKENS_PER_S_PER_GPU:,} "
             "tokens/s per GPU (vLLM). These assumptions are constants at the top of `benchmarks/scale_note.py`. "
             "What the CPU measurements carry over is the ratio of our code to the minimum work and how memory "
             "grows, not absolute times.", "",
             "| step | work | measured here (MEASURED) | growth k | paper-scale projection (ARITHMETIC) |",
             "| --- | --- | --- | ---: | --- |"]
    n_traces = QUESTIONS * TRACES
    # scoring
    pts = _scoring_points(records)
    if pts:
        cells = "; ".join(f"{n:,}-token trace: {t:.1f} s, minimum work {w:.1f} s (ratio median {r:.2f})"
                          for n, t, w, r in pts)
        k = (f"{_exponent(pts[0][0], pts[0][1], pts[-1][0], pts[-1][1]):.2f} (ours), "
             f"{_exponent(pts[0][0], pts[0][2], pts[-1][0], pts[-1][2]):.2f} (minimum work)") if len(pts) > 1 else "-"
        overhead = max(1.0, max(r for *_, r in pts))
        tokens = n_traces * 2 * (MEAN_PROMPT + MEAN_TRACE)  # prior and posterior
        hours = _hours(tokens * _flops_per_token((MEAN_PROMPT + MEAN_TRACE) / 2)) * overhead
        lines.append(f"| score (hf) | tokens per trace | {cells} | {k} | {tokens / 1e9:.2f} G tokens through 2 models: "
                     f"{hours:.1f} h (x{overhead:.2f}, the largest measured ratio to the minimum work) |")
    # training
    pts = _training_points(records)
    if pts:
        cells = "; ".join(f"cutoff {n:,}: {t:.1f} s/step, {m:,.0f} MiB peak" for n, t, m in pts)
        k = f"{_exponent(pts[0][0], pts[0][1], pts[-1][0], pts[-1][1]):.2f}" if len(pts) > 1 else "-"
        slope = (pts[-1][2] - pts[0][2]) / ((pts[-1][0] - pts[0][0]) / 1024) if len(pts) > 1 else float("nan")
        vocab = 151_665
        default_gib = CONTEXT * vocab * 4 * 3 / 2**30  # fp32 logits, log-softmax, gradient
        ours_gib = (1024 * vocab * 4 + vocab * HIDDEN * 4) / 2**30  # one chunk + float32 lm_head gradient
        rows = QUESTIONS * 2  # the final "-mix" dataset: originals + selected traces
        tokens = rows * (MEAN_PROMPT + MEAN_TRACE) * 3  # 3 epochs
        hours = _hours(tokens * 3 * _flops_per_token((MEAN_PROMPT + MEAN_TRACE) / 2))  # forward + backward = 3x
        lines.append(f"| train (our loss) | tokens per sequence | {cells}; memory grows {slope:,.0f} MiB per 1k tokens "
                     f"| {k} (time) | loss memory per 32k sequence: {ours_gib:.1f} GiB (one 1,024-row chunk + fp32 "
                     f"lm_head gradient) vs {default_gib:.0f} GiB for the logits loss; final training (3 epochs of "
                     f"{rows:,} rows): {hours:.1f} h |")
    pts = _build_points(records)
    if pts:
        cells = "; ".join(f"{name} at {n:,} questions: {t:.1f} s" for n, name, t in pts)
        lines.append(f"| build | questions x traces x rollouts | {cells} | - | measured at the paper's size: as measured |")
    decode = n_traces * MEAN_TRACE + n_traces * ROLLOUTS * MEAN_ROLLOUT
    hours = decode / (GPUS * DECODE_TOKENS_PER_S_PER_GPU) / 3600
    lines.append(f"| sample + rollout (vLLM) | generated tokens | not measured here (no GPU) | - | {decode / 1e9:.2f} G "
                 f"generated tokens: {hours:.1f} h at the assumed decode rate |")
    verify = _verify_rate(records, (printed or {}).get("bench_verify", []))
    n_checks = n_traces * ROLLOUTS
    if verify:
        lines.append(f"| verify (math) | rollouts | {verify:.1f} checks/s on 2 workers (bench_verify, this run; one "
                     f"size only) | assumed 1 (one check per rollout) | {n_checks:,} checks: "
                     f"{n_checks / verify / 3600:.1f} h on 2 workers, {n_checks / verify / 3600 * 2 / 64:.2f} h on 64 "
                     "cores |")
    lines += ["", "Growth k near 1 means cost proportional to work. The scoring times are whole processes (imports "
              "and model loading included) on a machine whose load changed during the run (see the load averages "
              "above), so their k mixes the fixed start-up cost and that noise with the work; the training "
              "time's k is above 1 partly because the 8k and 16k runs are one step each, warm-up included, while "
              "the 4k runs average two. The "
              "scorer's and the loss's memory do not grow with the vocabulary times the length (one chunk of rows "
              "at a time); what grows is the trunk's activations, linear in tokens.", ""]
    return lines


def _verify_rate(records, printed: list[str]) -> float | None:
    """Our math checks/s: from bench_verify's harness records, else from its printed ``math`` block."""
    for r in records.get("bench_verify", []):
        if r.get("kind") == "comparison" and "math" in r["name"].lower():
            key = next(iter(r["values"]))
            return _median(r["values"][key][r["ours"]])
    in_math = False
    for line in printed:
        if line.startswith("math"):
            in_math = True
        m = re.match(r"\s+ours\s+([\d.]+) checks/s", line)
        if in_math and m:
            return float(m.group(1))
    return None
