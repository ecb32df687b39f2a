"""Collects the study's evaluation folders into one table (mean and spread over seeds) and plots.

Reads only what the runs wrote: ``eval/<label>/<task>/<folder>/results.json`` (per-problem correctness and
the problem's ``level``) and each model's ``trainer_state.json`` (optimizer steps). Accuracy = the mean
correctness over all samples of all held-out problems; "hardest third" = level 3 (three operations).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np

from vr_plugins.eval.summary import RESULTS_FILENAME
from vr_plugins.rundir.io import write_text_atomic
from vr_plugins.pipeline.config import PRIOR_SAMPLING
from vr_plugins.study.intervals import paired_interval, seeds_for_half_width
from vr_plugins.study.arms import INITIAL_ARM, RFT_PRIOR_ARM, curve_label, curve_steps, final_arm, posterior_arm
from vr_plugins.study.task import EVAL_TASK, LEVELS, constant_answer_floor


TARGET_HALF_WIDTH = 0.03  #: the study's target: a 95 % interval no wider than +-3 points
VARIATIONAL = ("gml", "acc", "snis")  #: the estimators compared with the RFT baseline on the hardest third


def _eval_file(eval_dir: Path) -> Path | None:
    found = sorted((eval_dir / EVAL_TASK).glob(f"*/{RESULTS_FILENAME}")) if (eval_dir / EVAL_TASK).exists() else []
    return found[-1] if found else None


def _scores(results_json: Path) -> dict:
    """Overall accuracy, per-level accuracy and problem count from one SkyThought-style results.json."""
    records = json.loads(results_json.read_text())
    by_level: dict[int, list[float]] = {}
    by_problem: dict[str, list] = {}  #: unique_id -> [fraction of correct samples, level] (the paired intervals)
    for key, record in records.items():
        marks = [float(bool(r.get("correctness"))) for r in record["responses"]]
        by_level.setdefault(int(record["level"]), []).extend(marks)
        fraction = sum(marks) / len(marks) if marks else 0.0
        by_problem[str(record.get("unique_id", key))] = [fraction, int(record["level"])]
    flat = [m for marks in by_level.values() for m in marks]
    return {"accuracy": sum(flat) / len(flat) if flat else 0.0, "problems": len(records),
            "by_level": {lvl: sum(m) / len(m) for lvl, m in sorted(by_level.items())}, "by_problem": by_problem}


def _steps(model_dir: Path) -> int | None:
    state = model_dir / "trainer_state.json"
    if not state.exists():
        return None
    return int(json.loads(state.read_text()).get("global_step", 0))


def arm_locations(seed_dir: Path, templates: tuple[str, ...], k_sweep: tuple[int, ...]) -> dict[str, tuple[Path, Path]]:
    """arm label -> (eval folder, model folder). Every model starts from the base model (no step counts add up)."""
    first = seed_dir / f"q_{templates[0]}"
    arms = {INITIAL_ARM: (first / "eval" / "initial", first / "models" / "initial")}
    for t in templates:
        run = seed_dir / f"q_{t}"
        arms[posterior_arm(t)] = (run / "eval" / "posterior", run / "models" / "posterior")
        for final in sorted((run / "eval").glob("final-*")) if (run / "eval").exists() else []:
            estimator = final.name.removeprefix("final-")
            arms[final_arm(estimator, t)] = (final, run / "models" / final.name)
    for k in k_sweep:
        arms[final_arm("gml", templates[0], k)] = (first / "eval" / f"k{k}-gml", first / f"k{k}" / "models" / "final-gml")
    prior = seed_dir / f"q_{PRIOR_SAMPLING}"
    arms[RFT_PRIOR_ARM] = (prior / "eval" / "final-rft", prior / "models" / "final-rft")
    return arms


def collect(out: Path) -> list[dict]:
    """One row per (seed, arm) that has an evaluation."""
    config = json.loads((out / "study.json").read_text())
    templates, k_sweep = tuple(config["templates"]), tuple(config["k_sweep"])
    rows = []
    for seed in config["seeds"]:
        seed_dir = out / f"seed{seed}"
        for arm, (eval_dir, model_dir) in arm_locations(seed_dir, templates, k_sweep).items():
            results = _eval_file(eval_dir)
            if results is None:
                continue
            rows.append({"seed": seed, "arm": arm, "steps": _steps(model_dir), "results": str(results.relative_to(out)),
                         **_scores(results)})
    return rows


def curve_arm(model: str, template: str) -> str:
    """The table row a learning-curve model belongs to ("initial" -> pi_0, "final-gml" -> gml (q_b, K=all))."""
    return INITIAL_ARM if model == "initial" else final_arm(model.removeprefix("final-"), template)


def collect_curve(out: Path, rows: list[dict]) -> list[dict]:
    """(seed, arm, step, accuracy, hardest third) for every evaluated checkpoint, plus each arm's final model."""
    config = json.loads((out / "study.json").read_text())
    template = config["templates"][0]
    finals = {(r["seed"], r["arm"]): r for r in rows}
    curve = []
    for seed in config["seeds"]:
        run = out / f"seed{seed}" / f"q_{template}"
        for model in config["curve_models"]:
            arm = curve_arm(model, template)
            for step in curve_steps(config["curve_every"], config["curve_points"]):
                results = _eval_file(run / "eval" / "curve" / curve_label(model, step))
                if results is not None:
                    scores = _scores(results)
                    curve.append({"seed": seed, "arm": arm, "step": step, "accuracy": scores["accuracy"],
                                  "hard": scores["by_level"].get(LEVELS[-1]), "results": str(results.relative_to(out))})
            final = finals.get((seed, arm))
            if final is not None and final["steps"] is not None:
                curve.append({"seed": seed, "arm": arm, "step": final["steps"], "accuracy": final["accuracy"],
                              "hard": final["by_level"].get(LEVELS[-1]), "results": final["results"]})
    return curve


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(rows: list[dict]) -> list[dict]:
    arms: dict[str, list[dict]] = {}
    for row in rows:
        arms.setdefault(row["arm"], []).append(row)
    table = []
    for arm, group in arms.items():
        mean, sd = _mean_sd([r["accuracy"] for r in group])
        hard = [r["by_level"].get(LEVELS[-1]) for r in group if LEVELS[-1] in r["by_level"]]
        hmean, hsd = _mean_sd(hard) if hard else (float("nan"), 0.0)
        steps = [r["steps"] for r in group if r["steps"] is not None]
        table.append({"arm": arm, "seeds": len(group), "accuracy": mean, "sd": sd, "hard": hmean, "hard_sd": hsd,
                      "steps": statistics.fmean(steps) if steps else None,
                      "by_level": {lvl: statistics.fmean([r["by_level"][lvl] for r in group if lvl in r["by_level"]])
                                   for lvl in LEVELS if any(lvl in r["by_level"] for r in group)}})
    return table


def hardest_third_comparison(rows: list[dict], baselines: tuple[str, ...], arms: tuple[str, ...]) -> list[dict]:
    """Paired per-seed differences on level 3: arm minus baseline, over the seeds that have both.

    Paired because every arm of a seed shares pi_0 and the held-out split: the seed-to-seed swing of pi_0
    cancels, which one seed's unpaired standard error (~6 points at 40 samples) would hide."""
    level = LEVELS[-1]
    by = {(r["seed"], r["arm"]): r["by_level"].get(level) for r in rows}
    out = []
    for baseline in baselines:
        for arm in arms:
            diffs = [by[(seed, arm)] - by[(seed, baseline)] for seed, a in by
                     if a == arm and by.get((seed, baseline)) is not None and by[(seed, arm)] is not None]
            if diffs:
                mean, sd = _mean_sd(diffs)
                out.append({"arm": arm, "baseline": baseline, "seeds": len(diffs), "mean": mean, "sd": sd,
                            "wins": sum(d > 0 for d in diffs), "losses": sum(d < 0 for d in diffs)})
    return out


def comparison_matrix(rows: list[dict], arm: str, baseline: str,
                      level: int | None = None) -> tuple[list[int], np.ndarray]:
    """(seeds, D): D[s, q] = the arm's fraction correct on question q in seed s minus the baseline's, over
    the seeds that have both arms and the questions both were evaluated on (of ``level``, if given)."""
    by = {(r["seed"], r["arm"]): r["by_problem"] for r in rows if "by_problem" in r}
    seeds = sorted(s for s, a in by if a == arm and (s, baseline) in by)
    if not seeds:
        return [], np.zeros((0, 0))
    keys = sorted(set.intersection(*[set(by[(s, arm)]) & set(by[(s, baseline)]) for s in seeds]))
    keys = [k for k in keys if level is None or by[(seeds[0], arm)][k][1] == level]
    diff = np.array([[by[(s, arm)][k][0] - by[(s, baseline)][k][0] for k in keys] for s in seeds])
    return seeds, diff


def paired_comparisons(rows: list[dict], pairs: list[tuple[str, str, int | None]]) -> list[dict]:
    """:func:`intervals.paired_interval` for each (arm, baseline, level or None = all questions) that has
    at least two seeds; each entry also says how many seeds a t interval of +-3 points would need."""
    out = []
    for arm, baseline, level in pairs:
        seeds, diff = comparison_matrix(rows, arm, baseline, level)
        if len(seeds) < 2 or diff.shape[1] == 0:
            continue
        interval = paired_interval(diff)
        out.append({"arm": arm, "baseline": baseline, "level": level, **interval,
                    "seeds_for_3_points": seeds_for_half_width(interval["sd_seed"], TARGET_HALF_WIDTH)})
    return out


def comparisons_markdown(comparisons: list[dict]) -> str:
    lines = ["| arm | baseline | questions | seeds | difference (points) | 95% CI, seeds x questions bootstrap | "
             "95% CI, t over seeds | sd of the per-seed difference | higher / lower | seeds for a ±3 t interval |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        which = "all" if c["level"] is None else f"level {c['level']}"
        need = "-" if c["seeds_for_3_points"] is None else str(c["seeds_for_3_points"])
        lines.append(f"| {c['arm']} | {c['baseline']} | {which} ({c['questions']}) | {c['seeds']} | "
                     f"{100 * c['mean']:+.1f} | [{100 * c['boot_low']:+.1f}, {100 * c['boot_high']:+.1f}] | "
                     f"[{100 * c['t_low']:+.1f}, {100 * c['t_high']:+.1f}] | {100 * c['sd_seed']:.1f} | "
                     f"{c['higher']} / {c['lower']} | {need} |")
    return "\n".join(lines) + "\n"


def study_comparisons(template: str) -> list[tuple[str, str, int | None]]:
    """The study's two questions: every final arm against the same-budget SFT baseline (pi_0) on all
    questions, and the likelihood-weighted estimators (and acc) against the RFT baseline on the hardest third."""
    finals = [final_arm(e, template) for e in (*VARIATIONAL, "rft")] + [RFT_PRIOR_ARM]
    hard = LEVELS[-1]
    return ([(arm, INITIAL_ARM, None) for arm in finals]
            + [(final_arm(e, template), RFT_PRIOR_ARM, hard) for e in VARIATIONAL])


def markdown(table: list[dict]) -> str:
    lines = ["| arm | seeds | optimizer steps (own training) | accuracy (mean ± sd) | level 1 | level 2 | hardest third (level 3, mean ± sd) |",
             "|---|---|---|---|---|---|---|"]
    for t in table:
        lv = t["by_level"]
        steps = "-" if t["steps"] is None else f"{t['steps']:.0f}"
        lines.append(f"| {t['arm']} | {t['seeds']} | {steps} | {100 * t['accuracy']:.1f} ± {100 * t['sd']:.1f} | "
                     f"{100 * lv.get(1, float('nan')):.1f} | {100 * lv.get(2, float('nan')):.1f} | "
                     f"{100 * t['hard']:.1f} ± {100 * t['hard_sd']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(table: list[dict], out: Path, k_full: int, floor: float | None = None,
         curve: list[dict] | None = None) -> list[Path]:
    """Accuracy against optimizer steps (learning curves of the curve models from their evaluated
    checkpoints, the other arms as points at their own budget), and gml accuracy against K."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fig, ax = plt.subplots(figsize=(9.5, 4.5))
    curve_arms = sorted({c["arm"] for c in curve or []})
    for arm in curve_arms:
        by_step: dict[int, list[float]] = {}
        for c in curve:
            if c["arm"] == arm:
                by_step.setdefault(c["step"], []).append(c["accuracy"])
        steps = sorted(by_step)
        stats = [_mean_sd(by_step[s]) for s in steps]
        ax.errorbar(steps, [100 * m for m, _ in stats], yerr=[100 * sd for _, sd in stats], fmt="o-", capsize=3,
                    label=f"{arm} (checkpoints)")
    points = [t for t in table if t["steps"] is not None and t["arm"] not in curve_arms]
    spread = max((t["steps"] for t in points), default=0) * 0.012  # arms with one budget side by side, not stacked
    for i, t in enumerate(points):
        ax.errorbar(t["steps"] + spread * (i + 1), 100 * t["accuracy"], yerr=100 * t["sd"], fmt="sD^vPX*<>"[i % 9],
                    capsize=3, label=t["arm"])
    ax.set_xlim(left=0)
    if floor is not None:
        ax.axhline(100 * floor, color="grey", linestyle=":", label="constant-answer floor")
    ax.set_xlabel("optimizer steps of the arm's training")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("Accuracy against training steps (mean ± sd over seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    written.append(out / "accuracy_vs_steps.png")
    fig.savefig(written[-1], dpi=80)
    plt.close(fig)

    points = []
    for t in table:
        arm = t["arm"]
        if arm.startswith("gml (") and "K=" in arm:
            k = arm.split("K=")[1].rstrip(")")
            points.append((k_full if k == "all" else int(k), t))
    if points:
        first_template = next((t["arm"].split("(")[1].split(",")[0] for _, t in points), "")
        points = sorted(p for p in points if first_template in p[1]["arm"])
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.errorbar([k for k, _ in points], [100 * t["accuracy"] for _, t in points],
                    yerr=[100 * t["sd"] for _, t in points], fmt="o-", capsize=3, label="all levels")
        ax.errorbar([k for k, _ in points], [100 * t["hard"] for _, t in points],
                    yerr=[100 * t["hard_sd"] for _, t in points], fmt="s--", capsize=3, label="hardest third")
        if floor is not None:
            ax.axhline(100 * floor, color="grey", linestyle=":", label="constant-answer floor")
        ax.set_xlabel("K (traces per question)")
        ax.set_ylabel("held-out accuracy (%)")
        ax.set_title(f"gml final model against K ({first_template})")
        ax.set_xticks([k for k, _ in points])
        ax.legend(fontsize=8)
        fig.tight_layout()
        written.append(out / "accuracy_vs_k.png")
        fig.savefig(written[-1], dpi=80)
        plt.close(fig)
    return written


def constant_baseline(out: Path) -> dict:
    """The constant-answer floor of the study folder ``out`` (:func:`task.constant_answer_floor`)."""
    return constant_answer_floor(out / "data" / "train.jsonl", out / "data" / "eval" / f"{EVAL_TASK}.jsonl")


def aggregate(out: str | Path, plots: bool = True) -> tuple[list[dict], list[dict]]:
    """Write OUT/results.json (rows + table) and OUT/results.md, and the plots; returns (rows, table)."""
    out = Path(out)
    rows = collect(out)
    table = summarise(rows)
    curve = collect_curve(out, rows)
    floor = constant_baseline(out)
    template = json.loads((out / "study.json").read_text())["templates"][0]
    variational = tuple(final_arm(e, template) for e in VARIATIONAL)
    hard = hardest_third_comparison(rows, (RFT_PRIOR_ARM, final_arm("rft", template)), variational)
    comparisons = paired_comparisons(rows, study_comparisons(template))
    write_text_atomic(json.dumps({"rows": rows, "table": table, "curve": curve, "hardest_third": hard,
                                  "comparisons": comparisons, "constant_answer_baseline": floor}, indent=2) + "\n",
                      out / "results.json")
    lv = floor["by_level"]
    note = (f"\nConstant-answer floor (always answering {floor['answer']}, the most frequent training answer): "
            f"{100 * floor['accuracy']:.1f}% overall; level 1 {100 * lv.get(1, 0):.1f}%, level 2 "
            f"{100 * lv.get(2, 0):.1f}%, level 3 {100 * lv.get(3, 0):.1f}%.\n")
    if hard:
        note += ("\nHardest third (level 3), paired per seed: arm minus baseline, in points "
                 "(mean ± sd over seeds; seeds where the arm is higher / lower):\n\n"
                 "| arm | baseline | seeds | difference | higher / lower |\n|---|---|---|---|---|\n")
        note += "".join(f"| {h['arm']} | {h['baseline']} | {h['seeds']} | {100 * h['mean']:+.1f} ± {100 * h['sd']:.1f} | "
                        f"{h['wins']} / {h['losses']} |\n" for h in hard)
    if comparisons:
        note += ("\nPaired comparisons, arm minus baseline in points, with 95% confidence intervals "
                 "(docs/study.md, \"The powered study\"):\n\n" + comparisons_markdown(comparisons))
    write_text_atomic(markdown(table) + note, out / "results.md")
    if plots and table:
        k_full = json.loads((out / "study.json").read_text())["num_traces"]
        plot(table, out, k_full, floor["accuracy"], curve)
    return rows, table
