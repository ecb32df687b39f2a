"""The study's settings (the powered, full and tiny presets, one variant), its arms, and its pipeline configs.

The study has one data set and one base model (random weights pretrained on the pretraining corpus with
``recipes/study/pretrain.yaml``), shared by every seed. One seed of the study is then:

- pipeline ``q_b`` (posterior template B): trains pi_0 (SFT on the reference traces) and q_b, samples,
  scores, rolls out, verifies, builds gml / acc / snis / rft and trains one final model per estimator
  from the base model (``train.final_from: base``, the paper's "-mix" setup);
- pipeline ``q_a`` (template A): reuses the same pi_0 (``train.skip_initial``), trains q_a and its finals;
- pipeline ``q_prior`` (``posterior_template: prior``): the paper's RFT baseline, traces sampled from pi_0
  itself and kept when pi_0's continuation is verified correct (estimator ``rft``);
- optional ``K`` sweep: gml on the first k of the K traces of ``q_b`` (same final recipe);
- a learning curve: the checkpoints every ``curve_every`` steps of the ``curve_models`` are evaluated too.

The SFT baseline with the final models' budget is pi_0 itself: the study recipes give every SFT training
the same ``max_steps`` from the same base model, so "SFT for the same number of steps as the final model
on the original data" and "the initial model" are one and the same training.

The arm labels below are the names of the evaluation folders and of the rows in the results table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from vr_plugins.options import SAMPLING
from vr_plugins.pipeline.config import PRIOR_SAMPLING
from vr_plugins.study.task import EVAL_TASK, TaskSpec


@dataclass(frozen=True)
class StudyConfig:
    n_train: int = 300
    n_eval: int = 60
    n_pretrain: int = 600  #: questions of the base model's pretraining corpus (disjoint from the others)
    max_start: int = 20  #: TaskSpec: start value 1..max_start, operands 1..max_operand, values in [0, max_value]
    max_operand: int = 9
    max_value: int = 30
    data_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    templates: tuple[str, ...] = ("b", "a")
    estimators: tuple[str, ...] = ("gml", "acc", "snis", "rft")
    estimators_a: tuple[str, ...] = ("gml",)  #: finals trained on template A's traces (budget)
    num_traces: int = 4
    num_rollouts: int = 2
    rft_prior: bool = True  #: the RFT baseline on pi_0's own samples (pipeline q_prior)
    k_sweep: tuple[int, ...] = (1, 2)  #: extra gml finals on the first k traces (K itself is the main arm)
    vocab_size: int = 1024
    hidden_size: int = 64
    layers: int = 2
    recipes: str = "study"  #: recipes/<recipes>/{initial,posterior_a,posterior_b,final}.yaml
    overrides: dict = field(default_factory=dict)  #: recipe keys for every SFT training (e.g. max_steps)
    pretrain_overrides: dict = field(default_factory=dict)  #: recipe keys for recipes/study/pretrain.yaml
    curve_every: int = 50  #: checkpoint interval (steps) of every SFT training; 0 = no learning curve
    curve_points: int = 3  #: how many of those checkpoints are evaluated (steps curve_every, 2x, ...)
    curve_models: tuple[str, ...] = ("initial", "final-gml", "final-rft")  #: q_b models with a curve
    think_tokens: int = 64
    answer_tokens: int = 24
    eval_samples: int = 2
    eval_posteriors: bool = True  #: evaluate the posteriors too (they are not in any comparison)
    threads: int = 1  #: OMP/MKL threads per command (the study runs on a shared CPU)

    def to_dict(self) -> dict:
        return asdict(self)


#: the exploratory design: every arm (both templates, the K sweep, learning curves), three seeds
FULL = StudyConfig()
#: the confirmatory design of ``make study`` (docs/study.md, "The powered study"): only the arms of the two
#: comparisons (pi_0 = the same-budget SFT baseline, gml / acc / snis on q_b, the RFT baseline on pi_0's
#: samples), 150 held-out questions x 4 samples, 12 seeds: the most that fit make study's 90 minutes (the power
#: calculation in docs/study.md asked for 16 at the exploratory study's noise; the measured noise needs 5-9)
POWERED = StudyConfig(n_eval=150, eval_samples=4, seeds=tuple(range(12)), templates=("b",),
                      estimators=("gml", "acc", "snis"), estimators_a=(), k_sweep=(), curve_every=0,
                      eval_posteriors=False)
#: the CI preset: every arm once, on a handful of questions and a 2-layer model (minutes, learns nothing)
TINY = StudyConfig(n_train=12, n_eval=6, n_pretrain=12, seeds=(0,), num_traces=2, num_rollouts=1, k_sweep=(1,),
                   vocab_size=600, hidden_size=32, layers=1, think_tokens=24, answer_tokens=12, recipes="tiny",
                   pretrain_overrides={"max_steps": 2}, curve_every=2, curve_points=1,
                   curve_models=("initial", "final-gml"))


def task_spec(config: StudyConfig) -> TaskSpec:
    return TaskSpec(max_start=config.max_start, max_operand=config.max_operand, max_value=config.max_value)


def curve_steps(every: int, points: int) -> list[int]:
    """The checkpoint steps of the learning curve (``StudyConfig.curve_every`` / ``curve_points``)."""
    return [every * i for i in range(1, points + 1)] if every else []


def training_overrides(config: StudyConfig, seed: int) -> dict:
    """Recipe keys for every SFT training of a seed: the seed, the checkpoints of the learning curve."""
    curve = {"save_strategy": "steps", "save_steps": config.curve_every, "save_only_model": "true"} if config.curve_every else {}
    return {"seed": seed, **curve, **config.overrides}


#: a named variant of the powered design (docs/study.md, "Variants"): the step budget. Every SFT training runs
#: 400 steps instead of 200, so the gml and acc "-mix" finals (300 reference + 300 synthetic rows) see each
#: reference trace about as often as pi_0 does in 200 steps, and pi_0 at 400 steps stays the same-budget SFT
#: baseline; 6 seeds
POWERED_400 = replace(POWERED, seeds=tuple(range(6)), overrides={"max_steps": 400})
PRESETS = {"powered": POWERED, "powered-400": POWERED_400, "full": FULL, "tiny": TINY}  #: ``vr-tools study --preset``


def with_seeds(config: StudyConfig, seeds: tuple[int, ...] | None) -> StudyConfig:
    return replace(config, seeds=tuple(seeds)) if seeds else config


def pipeline_config(config: StudyConfig, seed: int, template: str, data_dir: Path, base_model: Path,
                    initial: Path | None) -> dict:
    """The pipeline YAML (as a dict) for one seed and one posterior template. The sampling is the pipeline's
    (:data:`vr_plugins.options.SAMPLING`), only the lengths are the study's."""
    prior = template == PRIOR_SAMPLING
    estimators = ("rft",) if prior else config.estimators if template == config.templates[0] else config.estimators_a
    posterior_recipe = f"{config.recipes}/posterior_{config.templates[0] if prior else template}.yaml"  # unused for prior
    train = {"initial": f"{config.recipes}/initial.yaml", "posterior": posterior_recipe,
             "final": f"{config.recipes}/final.yaml", "final_from": "base", "overrides": training_overrides(config, seed)}
    if initial is not None:
        train["skip_initial"] = str(initial)
    return {
        "name": f"study-seed{seed}-q{template}",
        "dataset": {"path": str(data_dir / "train.jsonl")},
        "base_model": str(base_model),
        "posterior_template": template,
        "num_traces": config.num_traces,
        "num_rollouts": config.num_rollouts,
        "estimators": list(estimators),
        "mix": True,
        "sampling": {"temperature": SAMPLING.temperature, "top_p": SAMPLING.top_p,
                     "max_new_tokens": config.think_tokens},
        "rollout_sampling": {"temperature": SAMPLING.temperature, "top_p": SAMPLING.top_p,
                             "max_new_tokens": config.answer_tokens},
        "train": train,
        "verify": {"workers": 1, "timeout": 4.0},
        "eval": {"tasks": {EVAL_TASK: config.eval_samples}, "data_dir": str(data_dir / "eval"),
                 "models": [],  # the driver evaluates every model of the seed in one process (eval_jobs)
                 "max_new_tokens": config.think_tokens + config.answer_tokens},
    }


# --- arm labels (rows of the results table) -------------------------------------------------------
INITIAL_ARM = "initial pi_0 (SFT on reference)"
RFT_PRIOR_ARM = "rft (pi_0 samples, K=all)"


def curve_label(model: str, step: int) -> str:
    """The evaluation folder of one checkpoint of the learning curve (``eval/curve/<label>``)."""
    return f"{model}-step{step}"


def posterior_arm(template: str) -> str:
    return f"posterior q_{template}"


def final_arm(estimator: str, template: str, k: int | None = None) -> str:
    return f"{estimator} (q_{template}, K={'all' if k is None else k})"


def arm_labels_expected(config: StudyConfig) -> set[str]:
    """Every arm a finished seed of ``config`` has."""
    labels = {INITIAL_ARM}
    for i, template in enumerate(config.templates):
        if config.eval_posteriors:
            labels.add(posterior_arm(template))
        labels |= {final_arm(e, template) for e in (config.estimators if i == 0 else config.estimators_a)}
    labels |= {final_arm("gml", config.templates[0], k) for k in config.k_sweep if k < config.num_traces}
    if config.rft_prior:
        labels.add(RFT_PRIOR_ARM)
    return labels
