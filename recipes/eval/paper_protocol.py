#!/usr/bin/env python
"""The paper's evaluation protocol (docs/method.md section 2), one `skythought evaluate` run per benchmark.

    python recipes/eval/paper_protocol.py --model zhouxiangxin/Variational-Reasoning-8B-Acc --result-dir eval_results
    python recipes/eval/paper_protocol.py --model /ckpt/final-gml --result-dir eval_results --tasks vr_aime24,vr_math500
    python recipes/eval/paper_protocol.py --model M --result-dir D --dry-run      # print the commands only

Every run: vLLM, float32, temperature 0.7, top_p 1.0, max_tokens 38,912, stop at the end-of-solution
marker (vr_plugins.formats.STOP_STRING), all passed explicitly because SkyThought 0.1.0's
--sampling-params replaces its defaults. Tensor parallelism 4 for the 32B models, 1 otherwise (--tp
overrides). The metric is accuracy averaged over the n samples per problem (avg@n); the table of all
tasks and the mean is printed at the end (also: vr-tools eval-summary eval_results).
"""

from vr_plugins.eval.protocol import Protocol, main

PAPER = Protocol(
    tasks={
        "vr_aime24": 32,
        "vr_aime25": 32,
        "vr_amc23": 32,
        "vr_math500": 2,
        "vr_olympiadbench_math_en": 2,
        "vr_livecodebench_easy": 8,
        "vr_livecodebench_medium": 8,
        "vr_livecodebench_hard": 8,
        "vr_gpqa_diamond": 8,
        "vr_mmlu_pro": 1,
    },
    temperature=0.7,
    top_p=1.0,
    max_tokens=38912,
    dtype="float32",
    tensor_parallel={"32B": 4},
)

if __name__ == "__main__":
    raise SystemExit(main(PAPER))
