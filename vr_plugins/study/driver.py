"""Runs the study: per seed, the two pipelines (through ``vr_plugins.pipeline``) and the extra arms.

Layout of ``OUT``::

    OUT/study.json                 the StudyConfig (a different one is refused: use another --out)
    OUT/data/                      train.jsonl (Bespoke layout), eval/vr_math500.jsonl (held-out),
                                   pretrain/ (the base model's pretraining corpus, a LLaMA-Factory dataset)
    OUT/init/                      random-weight model (tokenizer trained on the task corpus)
    OUT/base/                      init pretrained on data/pretrain (llamafactory-cli train, stage pt):
                                   one base model for every seed, as the paper has one pretrained LLM
    OUT/seed<s>/q_b.yaml, q_a.yaml pipeline configs (run them by hand with vr-tools pipeline)
    OUT/seed<s>/q_b/, q_a/         pipeline run directories (models/, eval/, logs/, ...)
    OUT/seed<s>/q_prior/           the RFT baseline's pipeline (traces sampled from pi_0)
    OUT/seed<s>/q_b/k<k>/          K sweep: gml on the first k traces (symlinks to q_b's files)
    OUT/seed<s>/q_b/eval/k<k>-gml  its evaluation
    OUT/seed<s>/q_b/eval/curve/    evaluations of intermediate checkpoints (learning curve)
    OUT/results.json, results.md, *.png   aggregated results

Everything is resumable the pipeline's way: a finished stage (pipeline or extra) is skipped on re-run.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from vr_plugins.options import SAMPLING
from vr_plugins.pipeline.config import PRIOR_SAMPLING, ConfigError, load_config
from vr_plugins.pipeline.runner import execute_stages, run_pipeline
from vr_plugins.paths import recipe
from vr_plugins.pipeline.stages import Stage, Step, dataset_name, training_steps
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.io import write_text_atomic
from vr_plugins.study.arms import StudyConfig, curve_label, curve_steps, pipeline_config, task_spec
from vr_plugins.study.task import EVAL_TASK, PRETRAIN_DATASET, PRETRAIN_DIR, generate

EXTRA_STATE = "study_stages.json"


def _check_out(config: StudyConfig, out: Path, write: bool = True) -> None:
    """Refuse a study folder made with other settings (seeds may be added); record the settings."""
    path = out / "study.json"
    new = json.loads(json.dumps(config.to_dict()))
    if path.exists():
        old = json.loads(path.read_text())
        keys = sorted((set(old) | set(new)) - {"seeds"})
        pairs = [(k, old.get(k, "(absent)"), new.get(k, "(absent)")) for k in keys]
        differ = [(k, then, now) for k, then, now in pairs if then != now]
        if differ:
            detail = "; ".join(f"{k}: {then!r} there, {now!r} now" for k, then, now in differ)
            raise ConfigError(f"{path}: {out} was created by different study settings ({detail}); use another --out")
        new["seeds"] = sorted(set(old["seeds"]) | set(new["seeds"]))
    if write:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(json.dumps(new, indent=2, sort_keys=True) + "\n", path)


def _write_config(path: Path, data: dict) -> None:
    text = yaml.safe_dump(data, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        write_text_atomic(text, path)


def evaluation_stage(config: StudyConfig, jobs: list[tuple[Path, Path]], data_dir: Path) -> Stage:
    """Every evaluation of one seed in one ``vr-tools evaluate`` process: the process start-up, the task and
    the shared tokenizer are paid once instead of once per model. ``--skip-existing``: result folders are
    written whole, so an interrupted stage resumes with the models it had not finished. Sampled like the
    pipeline's evaluation (:data:`vr_plugins.options.SAMPLING`)."""
    argv = ["vr-tools", "evaluate", "--task", EVAL_TASK, "--n", str(config.eval_samples),
            "--temperature", str(SAMPLING.temperature), "--top-p", str(SAMPLING.top_p), "--max-new-tokens",
            str(config.think_tokens + config.answer_tokens), "--skip-existing"]
    for model, out in jobs:
        argv += ["--model", model, "--out", out]
    return Stage("evaluate", [Step(argv, env={"VR_EVAL_DATA_DIR": str(data_dir)}, role="eval")],
                 [out for _, out in jobs], f"{len(jobs)} models of this seed, one process")


def eval_jobs(config: StudyConfig, seed_dir: Path) -> list[tuple[Path, Path]]:
    """(model, result folder) of every model of one seed: the pipelines' models (pi_0, the posteriors, the
    finals of each template and the RFT baseline), the K sweep and the learning-curve checkpoints."""
    def job(run: Path, model: str, label: str | None = None) -> tuple[Path, Path]:
        return run / "models" / model, run / "eval" / (label or model) / EVAL_TASK

    run_b = seed_dir / f"q_{config.templates[0]}"
    jobs = [job(run_b, "initial")]
    for i, template in enumerate(config.templates):
        run = seed_dir / f"q_{template}"
        if config.eval_posteriors:
            jobs.append(job(run, "posterior"))
        jobs += [job(run, f"final-{e}") for e in (config.estimators if i == 0 else config.estimators_a)]
    if config.rft_prior:
        jobs.append(job(seed_dir / f"q_{PRIOR_SAMPLING}", "final-rft"))
    jobs += [(run_b / f"k{k}" / "models" / "final-gml", run_b / "eval" / f"k{k}-gml" / EVAL_TASK)
             for k in config.k_sweep if k < config.num_traces]
    for model in config.curve_models:
        for step in curve_steps(config.curve_every, config.curve_points):
            jobs.append((run_b / "models" / model / f"checkpoint-{step}",
                         run_b / "eval" / "curve" / curve_label(model, step) / EVAL_TASK))
    return jobs


def base_stages(config: StudyConfig, out: Path, data_dir: Path) -> list[Stage]:
    """The base model all seeds share: random weights (``vr-tools tiny-model``), then pretraining (stage pt).

    Shared because the paper's arms all start from one pretrained checkpoint; the seeds vary everything
    after it (SFT data order, sampling, evaluation), and the comparison between arms is paired."""
    init, base, seed = out / "init", out / "base", config.data_seed
    build = Step(["vr-tools", "tiny-model", "--out", init, "--corpus", data_dir / "train.jsonl",
                  "--vocab-size", str(config.vocab_size), "--hidden-size", str(config.hidden_size),
                  "--layers", str(config.layers), "--seed", str(seed)])
    keys = {"model_name_or_path": init, "dataset": PRETRAIN_DATASET, "dataset_dir": data_dir / PRETRAIN_DIR,
            "output_dir": base, "overwrite_output_dir": "true", "seed": seed, **config.pretrain_overrides}
    pretrain = Step(["llamafactory-cli", "train", recipe("study/pretrain.yaml"), *[f"{k}={v}" for k, v in keys.items()]])
    return [Stage("init", [build], [init / "config.json"], "random-weight model"),
            Stage("pretrain", [pretrain], [base / "config.json"], "pretraining on data/pretrain")]


def extra_stages(config: StudyConfig, run_b: Path, config_b: Path, data_dir: Path, base: Path) -> list[Stage]:
    """The K sweep (gml on the first k < K traces, a final model trained like the pipeline's), then the one
    evaluation stage of the seed (every model, the curve's checkpoints included)."""
    pipe = load_config(config_b)
    initial = str(run_b / "models" / "initial")
    start = str(base) if pipe.train.final_from == "base" else initial
    stages = []
    for k in config.k_sweep:
        if k >= config.num_traces:
            continue
        sub = run_b / f"k{k}"
        name = dataset_name("gml", True)
        dataset = sub / C.DATASETS_DIR / f"{name}.parquet"
        final = sub / "models" / "final-gml"
        steps = [Step(["vr-tools", "build", "--run-dir", sub, "--estimator", "gml", "--out", dataset])]
        stages.append(Stage(f"k{k}_build", steps, [dataset], f"gml on the first {k} of {config.num_traces} traces"))
        stages.append(Stage(f"k{k}_train", training_steps(pipe, sub, "final-gml", pipe.train.final, start, name, final),
                            [final / "config.json"]))
    return stages + [evaluation_stage(config, eval_jobs(config, run_b.parent), data_dir)]


def _link_k_subset(run_b: Path, k: int) -> None:
    """A run directory with q_b's questions and only the first k score files (symlinks, no copies)."""
    sub = run_b / f"k{k}"
    (sub / C.SCORES_DIR).mkdir(parents=True, exist_ok=True)
    links = [(sub / C.QUESTIONS_FILE, run_b / C.QUESTIONS_FILE)]
    links += [(sub / C.SCORES_DIR / C.seed_file_name(j), run_b / C.SCORES_DIR / C.seed_file_name(j)) for j in range(k)]
    for link, target in links:
        if not link.exists():
            link.symlink_to(target.resolve())


def run_extra(stages: list[Stage], state_dir: Path, echo: Callable[[str], None]) -> None:
    """The pipeline runner's skip/run/record loop for stages outside a pipeline config."""
    path = state_dir / EXTRA_STATE
    state = {"stages": json.loads(path.read_text())["stages"] if path.exists() else {}}

    def save(current: dict) -> None:
        write_text_atomic(json.dumps(current, indent=2, sort_keys=True) + "\n", path)

    execute_stages(stages, state, save, state_dir / "logs", echo)


def _run_seed(config: StudyConfig, out: Path, seed: int, config_root: Path, dry_run: bool,
              echo: Callable[[str], None]) -> None:
    data_dir, seed_dir, base = out / "data", out / f"seed{seed}", out / "base"
    run_b = seed_dir / f"q_{config.templates[0]}"
    for i, template in enumerate(config.templates + ((PRIOR_SAMPLING,) if config.rft_prior else ())):
        initial = None if i == 0 else run_b / "models" / "initial"
        path = config_root / f"seed{seed}" / f"q_{template}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_config(path, pipeline_config(config, seed, template, data_dir, base, initial))
        echo(f"pipeline {path}")
        run_pipeline(load_config(path), path, seed_dir / f"q_{template}", dry_run=dry_run, echo=echo)
    for k in config.k_sweep:
        if k < config.num_traces and not dry_run:
            _link_k_subset(run_b, k)
    stages = extra_stages(config, run_b, config_root / f"seed{seed}" / f"q_{config.templates[0]}.yaml",
                          data_dir / "eval", base)
    if dry_run:
        for stage in stages:
            echo(f"# stage {stage.name}\n" + "\n".join(step.shell() for step in stage.steps))
    else:
        run_extra(stages, run_b, echo)


def run_study(config: StudyConfig, out: str | os.PathLike, echo: Callable[[str], None] = print,
              dry_run: bool = False, jobs: int = 1) -> Path:
    """Every seed of ``config`` in ``out``; ``jobs`` seeds at a time (each command is a subprocess, so
    threads suffice; set ``config.threads`` x ``jobs`` to the number of cores)."""
    out = Path(out).resolve()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(config.threads))
    _check_out(config, out, write=not dry_run)  # before any work, also for a dry run
    data_dir = out / "data"
    if not dry_run and not (data_dir / "eval" / f"{EVAL_TASK}.jsonl").exists():
        generate(data_dir, config.n_train, config.n_eval, seed=config.data_seed, spec=task_spec(config),
                 n_pretrain=config.n_pretrain)
    # a dry run writes nothing into OUT: its pipeline configs go to a temporary folder
    config_root = Path(tempfile.mkdtemp(prefix="vr-study-dry-")) if dry_run else out
    if dry_run:
        for stage in base_stages(config, out, data_dir):
            echo(f"# stage {stage.name}\n" + "\n".join(step.shell() for step in stage.steps))
    else:
        run_extra(base_stages(config, out, data_dir), out, echo)

    def one(seed: int) -> None:
        _run_seed(config, out, seed, config_root, dry_run, lambda line: echo(f"[seed {seed}] {line}"))

    if jobs <= 1 or dry_run or len(config.seeds) == 1:
        for seed in config.seeds:
            one(seed)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(one, seed) for seed in config.seeds]:
                future.result()  # the first failure is raised (the other seeds still finish their stage)
    return out
