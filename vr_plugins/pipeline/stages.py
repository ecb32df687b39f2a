"""The pipeline as a list of stages, each a list of plain commands (``vr-tools``, ``llamafactory-cli``,
``skythought``): the same commands ``--dry-run`` prints for a user to run by hand or on a cluster.

Values only known at run time (the loss normaliser C) are :class:`FromJson` placeholders, read when the
command runs and printed as ``$(...)`` in a dry run.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from vr_plugins.formats import POSTERIOR_SHORT_NAMES, REASONING
import yaml

from vr_plugins.eval.protocol import Protocol, build_commands, reasoning_env
from vr_plugins.paths import recipe, recipes_dir
from vr_plugins.pipeline.config import PRIOR_SAMPLING, PipelineConfig
from vr_plugins.pipeline.reference_data import POSTERIOR_DATASET, REFERENCE_DATASET
from vr_plugins.registry import registry
from vr_plugins.rundir import columns as C


@dataclass(frozen=True)
class FromJson:
    """A command-line value read from a JSON file written by an earlier command."""

    path: Path
    key: str
    prefix: str = ""

    def resolve(self) -> str:
        try:
            return self.prefix + str(json.loads(self.path.read_text())[self.key])
        except (OSError, KeyError, json.JSONDecodeError) as exc:
            raise RuntimeError(f"{self.path}: cannot read {self.key!r} ({exc})") from exc

    def shell(self) -> str:
        return f'{self.prefix}"$(python -c \'import json;print(json.load(open("{self.path}"))["{self.key}"])\')"'


@dataclass
class Step:
    argv: list
    env: dict[str, str] = field(default_factory=dict)
    stdout_to: Path | None = None  #: capture stdout into this file (atomically)
    #: how a launcher spreads it (vr_plugins/pipeline/launch.py): "single" (one process, node 0), "train"
    #: (torchrun on every node), "gpu" / "cpu" (a data step: one shard per GPU group / per task), "eval"
    #: (one task per model and benchmark). Not part of the fingerprint: the commands are the same.
    role: str = "single"
    venv: str | None = None  #: environment whose bin/ runs argv[0] (pipeline/engines.py); not printed

    def resolved(self) -> list[str]:
        from vr_plugins.pipeline.engines import executable

        words = [a.resolve() if isinstance(a, FromJson) else str(a) for a in self.argv]
        return [executable(self.venv, words[0]), *words[1:]]

    def shell(self, with_env_path: bool = False) -> str:
        """The step as one shell line. ``with_env_path``: the command as ``<venv>/bin/<command>`` when the step
        names its environment (launcher scripts run it on another node, where no runner picks the env)."""
        env = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in self.env.items())
        argv = list(self.argv)
        if with_env_path and self.venv and "/" not in str(argv[0]):
            argv[0] = str(Path(self.venv) / "bin" / str(argv[0]))
        words = [a.shell() if isinstance(a, FromJson) else shlex.quote(str(a)) for a in argv]
        line = " ".join(([env] if env else []) + words)
        return f"{line} > {shlex.quote(str(self.stdout_to))}" if self.stdout_to else line


@dataclass
class Stage:
    name: str
    steps: list[Step]
    outputs: list[Path]  #: files whose existence (with the recorded fingerprint) means "done"
    description: str = ""
    work_time: FromJson | None = None  #: seconds of actual work the stage records (trainings: train_runtime)


def _model_dir(run: Path, name: str) -> Path:
    return run / "models" / name


def dataset_name(estimator: str, mix: bool) -> str:
    return f"{estimator}-mix" if mix else estimator


def _installed_path(value):
    """Recipes name their DeepSpeed configs as ``recipes/deepspeed/...`` (relative to a checkout); point
    such values at the installed recipes folder so the command works from any directory and in a wheel."""
    if isinstance(value, str) and value.startswith("recipes/"):
        return str(recipes_dir() / value[len("recipes/"):])
    return value


def training_steps(config: PipelineConfig, run: Path, stage: str, recipe_rel: str, model: str, dataset: str,
                   out: Path, extra: dict | None = None) -> list[Step]:
    """The one command of a training: ``llamafactory-cli train`` with ``constant_loss_normalizer=auto``
    (C computed inside the training process from its dataset, recorded in ``out/vr_normalizer.json``).
    Public because the study trains extra models (its K sweep) exactly like the pipeline's stages."""
    recipe_path = recipe(recipe_rel)
    recipe_keys = yaml.safe_load(recipe_path.read_text()) or {}
    overrides = {"model_name_or_path": model, "dataset": dataset, "dataset_dir": run / C.DATASETS_DIR,
                 "output_dir": out, "overwrite_output_dir": "true", **(extra or {})}
    if _installed_path(recipe_keys.get("deepspeed")) != recipe_keys.get("deepspeed"):
        overrides["deepspeed"] = _installed_path(recipe_keys["deepspeed"])
    overrides.update({k: _installed_path(v) for k, v in config.train.overrides.items()})
    overrides["constant_loss_normalizer"] = "auto"
    train = Step(
        ["llamafactory-cli", "train", recipe_path, *[f"{k}={v}" for k, v in overrides.items()]],
        env={k: str(v) for k, v in config.train.env.items()}, role="train",
    )
    return [train]


#: where LLaMA-Factory records a finished training's metrics (``train_runtime``: seconds in the train loop)
TRAIN_RESULTS = "train_results.json"


def training_stage(name: str, steps: list[Step], out: Path, description: str) -> Stage:
    return Stage(name, steps, [out / "config.json"], description, work_time=FromJson(out / TRAIN_RESULTS, "train_runtime"))


def _needs_verification(config: PipelineConfig) -> bool:
    return any(registry("estimators").get(e).needs_verification for e in config.estimators)


def _backend(config: PipelineConfig) -> list[str]:
    args = ["--backend", config.backend]
    if config.backend == "vllm" and config.tensor_parallel_size != 1:
        args += ["--tensor-parallel-size", str(config.tensor_parallel_size)]
    return args


def build_stages(config: PipelineConfig, run: Path) -> list[Stage]:
    run = Path(run).resolve()
    K = config.num_traces
    seeds = f"0-{K - 1}"
    prior = config.posterior_template == PRIOR_SAMPLING  # traces from pi_0 itself (RFT baseline)
    template = REASONING.name if prior else config.posterior_template
    base = str(_model_dir(run, "base")) if config.base_model == "tiny" else config.base_model
    initial = config.train.skip_initial or str(_model_dir(run, "initial"))
    posterior = initial if prior else config.train.skip_posterior or str(_model_dir(run, "posterior"))
    stages: list[Stage] = []

    if config.base_model == "tiny":
        stages.append(Stage("base_model", [Step(["vr-tools", "tiny-model", "--out", base, "--corpus", config.dataset.path])],
                            [Path(base) / "config.json"], "build the embedded tiny model"))
    prepare = ["vr-tools", "prepare", "--dataset", config.dataset.path, "--run-dir", run]
    if config.dataset.format != "auto":
        prepare += ["--format", config.dataset.format]
    if config.dataset.limit:
        prepare += ["--limit", str(config.dataset.limit)]
    stages.append(Stage("prepare", [Step(prepare), Step(["vr-tools", "reference-data", "--run-dir", run])],
                        [run / C.QUESTIONS_FILE, run / C.DATASETS_DIR / C.DATASET_INFO_FILE]))
    if not config.train.skip_initial:
        stages.append(training_stage("train_initial", training_steps(config, run, "initial", config.train.initial, base,
                                                                     REFERENCE_DATASET, Path(initial)),
                                     Path(initial), "SFT of the base model on the reference traces"))
    if not config.train.skip_posterior and not prior:
        stages.append(training_stage("train_posterior", training_steps(config, run, "posterior", config.train.posterior,
                                                                       base, POSTERIOR_DATASET, Path(posterior),
                                                                       {"template": POSTERIOR_SHORT_NAMES[template]}),
                                     Path(posterior), f"SFT of the posterior q (template {template})"))
    s = config.sampling
    stages.append(Stage("sample", [Step(["vr-tools", "sample", "--run-dir", run, "--model", posterior, "--template",
                                         template, "--seeds", seeds, *_backend(config), "--temperature",
                                         str(s.temperature), "--top-p", str(s.top_p), "--max-new-tokens",
                                         str(s.max_new_tokens)], role="gpu")],
                        [run / C.POSTERIOR_DIR / C.seed_file_name(k) for k in range(K)]))
    stages.append(Stage("score", [Step(["vr-tools", "score", "--run-dir", run, "--prior", initial, "--posterior",
                                        posterior, "--template", template, *_backend(config)], role="gpu")],
                        [run / C.SCORES_DIR / C.seed_file_name(k) for k in range(K)]))
    if _needs_verification(config):
        r = config.rollout_sampling
        stages.append(Stage("rollout", [Step(["vr-tools", "rollout", "--run-dir", run, "--model", initial, "--n",
                                              str(config.num_rollouts), *_backend(config),
                                              "--temperature", str(r.temperature), "--top-p", str(r.top_p),
                                              "--max-new-tokens", str(r.max_new_tokens)], role="gpu")],
                            [run / C.ROLLOUTS_DIR / C.seed_file_name(k) for k in range(K)]))
        verify = ["vr-tools", "verify", "--run-dir", run, "--timeout", str(config.verify.timeout)]
        if config.verify.workers:
            verify += ["--workers", str(config.verify.workers)]
        stages.append(Stage("verify", [Step(verify, role="cpu")], [run / C.VERIFIED_DIR / C.seed_file_name(k) for k in range(K)]))
    finals = {}
    for estimator in config.estimators:
        name = dataset_name(estimator, config.mix)
        out = run / C.DATASETS_DIR / f"{name}.parquet"
        argv = ["vr-tools", "build", "--run-dir", run, "--estimator", estimator, "--max-think-tokens",
                str(config.max_think_tokens), "--out", out]
        if not config.mix:
            argv.append("--no-mix")
        stages.append(Stage(f"build_{estimator}", [Step(argv)], [out]))
        final = _model_dir(run, f"final-{estimator}")
        finals[estimator] = final
        start = base if config.train.final_from == "base" else initial
        training = training_steps(config, run, f"final-{estimator}", config.train.final, start, name, final)
        stages.append(training_stage(f"train_final_{estimator}", training, final,
                                     f"SFT of the {config.train.final_from} model on the {estimator} dataset"))
    if config.eval.models:  # none: the caller evaluates (the study does, all models of a seed in one process)
        stages.append(_evaluate(config, run, initial, posterior, finals))
    from vr_plugins.pipeline.engines import apply

    return apply(config, stages)


def eval_protocol(config: PipelineConfig) -> Protocol:
    """The config's ``eval:`` section as an evaluation protocol: its n per task, sampling, dtype."""
    e = config.eval
    return Protocol(tasks=dict(e.tasks), temperature=e.temperature, top_p=e.top_p, max_tokens=e.max_new_tokens,
                    dtype=e.dtype)


def _evaluate(config: PipelineConfig, run: Path, initial: str, posterior: str, finals: dict[str, Path]) -> Stage:
    models: dict[str, str] = {}
    if "initial" in config.eval.models:
        models["initial"] = initial
    if "posterior" in config.eval.models:
        models["posterior"] = posterior
    if "final" in config.eval.models:
        models.update({f"final-{e}": str(p) for e, p in finals.items()})
    e = config.eval
    data_env = {"VR_EVAL_DATA_DIR": e.data_dir} if e.data_dir else {}
    protocol = eval_protocol(config)
    steps, outputs = [], []
    if e.backend == "local":
        # one process per task evaluates every model (start-up, task data and tokenizer loaded once); the
        # reasoning template and the stop string are vr-tools evaluate's defaults
        for task, n in e.tasks.items():
            pairs = [(model, run / "eval" / label / task) for label, model in models.items()]
            argv = ["vr-tools", "evaluate", "--task", task, "--n", str(n), "--temperature", str(e.temperature),
                    "--top-p", str(e.top_p), "--max-new-tokens", str(e.max_new_tokens), "--overwrite"]
            for model, out in pairs:
                argv += ["--model", model, "--out", out]
            steps.append(Step(argv, env=dict(data_env), role="eval"))
            outputs += [out for _, out in pairs]
    else:
        for label, model in models.items():
            for task in e.tasks:
                out = run / "eval" / label / task
                # the paper's protocol line (recipes/eval/paper_protocol.py prints the same)
                [argv] = build_commands(protocol, model, str(out), tasks=[task], tp=e.tensor_parallel_size)
                env = {**data_env, **reasoning_env(model, local=True)}
                steps.append(Step(argv, env=env, role="eval"))
                outputs.append(out)
    summary = run / "eval" / "summary.md"
    steps.append(Step(["vr-tools", "eval-summary", *outputs, "--out", summary]))
    return Stage("evaluate", steps, [summary], "evaluate every model on every task, then one table")
