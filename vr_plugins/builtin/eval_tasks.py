"""Built-in eval tasks: the paper's benchmarks as SkyThought tasks (YAMLs in ``eval_tasks/``).

``yaml_path`` is relative to the installed ``eval_tasks/`` folder (:func:`vr_plugins.paths.eval_tasks_dir`);
a third-party plugin may register an absolute path instead.
"""

from vr_plugins.hookspecs import hookimpl
from vr_plugins.types import EvalTask

_HANDLERS = "vr_plugins.hosts.skythought.handlers"

#: name, handler class, what the benchmark is (dataset, split, size)
BUILTIN_EVAL_TASKS = (
    ("vr_math500", "VRMathTaskHandler", "MATH-500 (qq8933/MATH500, test, 500)"),
    ("vr_aime24", "VRMathTaskHandler", "AIME 2024 (AI-MO/aimo-validation-aime, train, url~2024, 30)"),
    ("vr_aime25", "VRMathTaskHandler", "AIME 2025 (zhouxiangxin/AIME2025, train, 30)"),
    ("vr_amc23", "VRMathTaskHandler", "AMC 2023 (AI-MO/aimo-validation-amc, train, url~2023, 40)"),
    ("vr_olympiadbench_math_en", "VRMathTaskHandler",
     "OlympiadBench math, English (Hothan/OlympiadBench OE_TO_maths_en_COMP, train, 675)"),
    ("vr_gpqa_diamond", "VRGPQADiamondTaskHandler", "GPQA-Diamond (Idavidrein/gpqa gpqa_diamond, train, 198; gated)"),
    ("vr_mmlu_pro", "VRMMLUProTaskHandler", "MMLU-Pro (TIGER-Lab/MMLU-Pro, test, 12,032)"),
    ("vr_livecodebench_easy", "VRLiveCodeBenchTaskHandler",
     "LiveCodeBench easy (livecodebench/code_generation_lite release_v2)"),
    ("vr_livecodebench_medium", "VRLiveCodeBenchTaskHandler",
     "LiveCodeBench medium (livecodebench/code_generation_lite release_v2)"),
    ("vr_livecodebench_hard", "VRLiveCodeBenchTaskHandler",
     "LiveCodeBench hard (livecodebench/code_generation_lite release_v2)"),
)


@hookimpl
def register_eval_tasks(register):
    for name, handler, description in BUILTIN_EVAL_TASKS:
        register(EvalTask(name=name, yaml_path=f"{name}.yaml", handler=f"{_HANDLERS}:{handler}", description=description))
