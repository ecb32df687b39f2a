"""SkyThought result folders -> one table: avg@n per task (accuracy averaged over all samples) and the mean.

A result folder is what ``skythought evaluate`` (or :func:`vr_plugins.eval.local.evaluate_local`) writes:
``summary.json`` (its ``configuration`` names the task and the model) next to ``results.json`` (problem
id -> record with ``responses[i].correctness``). avg@n is recomputed from ``results.json`` rather than
copied from the summary, so a folder whose responses were never scored is reported, not read as zero.
Paths given may be result folders or folders that contain them (searched recursively).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from vr_plugins.errors import UserError

SUMMARY_FILENAME = "summary.json"
RESULTS_FILENAME = "results.json"


class ResultError(UserError, ValueError):
    """A result folder that cannot be summarised; the message names the file and the problem."""


@dataclass(frozen=True)
class TaskResult:
    model: str
    task: str
    n: int
    problems: int
    correct: int
    responses: int
    path: str
    grader: str = ""  #: the math grader recorded by the handler ("vr", "skythought", ...); "" if none


    @property
    def avg_at_n(self) -> float:
        return self.correct / self.responses if self.responses else 0.0


def find_result_folders(paths: Iterable[str | Path]) -> list[Path]:
    folders: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ResultError(f"{path}: no such file or folder")
        if path.is_file():
            path = path.parent
        if (path / SUMMARY_FILENAME).is_file():
            found = [path]
        else:
            found = sorted(p.parent for p in path.rglob(SUMMARY_FILENAME))
        if not found:
            raise ResultError(f"{path}: no SkyThought result folder ({SUMMARY_FILENAME} + {RESULTS_FILENAME}) in it")
        folders.extend(f for f in found if f not in folders)
    return folders


def _load_json(path: Path):
    if not path.is_file():
        raise ResultError(f"{path}: missing (a result folder has {SUMMARY_FILENAME} and {RESULTS_FILENAME})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_result(folder: str | Path) -> TaskResult:
    folder = Path(folder)
    summary = _load_json(folder / SUMMARY_FILENAME)
    try:
        task = summary["configuration"]["task"]["name"]
        model = summary["configuration"]["model"]["name"]
    except (KeyError, TypeError):
        raise ResultError(f"{folder / SUMMARY_FILENAME}: no configuration.task.name / configuration.model.name") from None
    results = _load_json(folder / RESULTS_FILENAME)
    if not isinstance(results, dict) or not results:
        raise ResultError(f"{folder / RESULTS_FILENAME}: expected a non-empty object of problem id -> record")
    n = None
    correct = responses = 0
    graders: set[str] = set()
    for problem_id, record in results.items():
        samples = record.get("responses") if isinstance(record, dict) else None
        if not isinstance(samples, list) or not samples:
            raise ResultError(f"{folder / RESULTS_FILENAME}: problem {problem_id!r} has no responses")
        if n is None:
            n = len(samples)
        elif len(samples) != n:
            raise ResultError(
                f"{folder / RESULTS_FILENAME}: problem {problem_id!r} has {len(samples)} responses, others {n}"
            )
        for i, sample in enumerate(samples):
            value = sample.get("correctness") if isinstance(sample, dict) else None
            if value is None:
                raise ResultError(
                    f"{folder / RESULTS_FILENAME}: problem {problem_id!r} response {i} was never scored; run "
                    f"`skythought score --run-dir {folder} --task {task}` first"
                )
            correct += int(bool(value))
            responses += 1
            if sample.get("grader"):
                graders.add(str(sample["grader"]))
    return TaskResult(model=str(model), task=str(task), n=n or 0, problems=len(results), correct=correct,
                      responses=responses, path=str(folder), grader="+".join(sorted(graders)))


def collect(paths: Iterable[str | Path]) -> list[TaskResult]:
    """Every result under ``paths``; two folders for the same (model, task) are refused."""
    seen: dict[tuple[str, str], TaskResult] = {}
    for folder in find_result_folders(paths):
        result = read_result(folder)
        key = (result.model, result.task)
        if key in seen:
            raise ResultError(
                f"two result folders for model {result.model!r} task {result.task!r}: {seen[key].path} and "
                f"{result.path}; pass only one"
            )
        seen[key] = result
    return list(seen.values())


def _task_order(tasks: set[str]) -> list[str]:
    from vr_plugins.builtin.eval_tasks import BUILTIN_EVAL_TASKS

    known = [name for name, _, _ in BUILTIN_EVAL_TASKS if name in tasks]
    return known + sorted(tasks - set(known))


def table_rows(results: list[TaskResult]) -> tuple[list[str], list[dict]]:
    """(task order, one dict per model: {"model", task: TaskResult, ..., "mean": float, "tasks": k})."""
    tasks = _task_order({r.task for r in results})
    rows = []
    for model in dict.fromkeys(r.model for r in results):
        mine = {r.task: r for r in results if r.model == model}
        values = [mine[t].avg_at_n for t in tasks if t in mine]
        rows.append({"model": model, **mine, "mean": sum(values) / len(values), "tasks": len(values)})
    return tasks, rows


def format_markdown(results: list[TaskResult]) -> str:
    """avg@n in percent per task (columns) and model (rows), and the mean over the model's tasks."""
    tasks, rows = table_rows(results)
    header_n = {}
    for task in tasks:
        ns = {r.n for r in results if r.task == task}
        header_n[task] = f" (avg@{ns.pop()})" if len(ns) == 1 else ""
    lines = [
        "| model | " + " | ".join(f"{t}{header_n[t]}" for t in tasks) + " | mean |",
        "|---|" + "---:|" * (len(tasks) + 1),
    ]
    for row in rows:
        cells = []
        for task in tasks:
            result = row.get(task)
            if result is None:
                cells.append("-")
            else:
                cells.append(f"{100 * result.avg_at_n:.2f}" + ("" if header_n[task] else f" (avg@{result.n})"))
        mean = f"{100 * row['mean']:.2f}" + ("" if row["tasks"] == len(tasks) else f" ({row['tasks']}/{len(tasks)} tasks)")
        lines.append(f"| {row['model']} | " + " | ".join(cells) + f" | {mean} |")
    graders = {r.grader for r in results if r.grader}
    if graders:  # which grader produced the math numbers (vr_plugins.hosts.skythought.handlers records it)
        from vr_plugins.verify.math import grader_name

        by = sorted({(r.task, r.grader) for r in results if r.grader})
        lines.append("")
        lines.append("math grader: " + (grader_name(graders.pop()) if len(graders) == 1
                                        else ", ".join(f"{t}={g}" for t, g in by)))
    return "\n".join(lines) + "\n"


def to_json(results: list[TaskResult]) -> str:
    tasks, rows = table_rows(results)
    payload = {
        "results": [{**asdict(r), "avg_at_n": r.avg_at_n} for r in results],
        "mean": {row["model"]: {"mean": row["mean"], "tasks": row["tasks"]} for row in rows},
        "tasks": tasks,
    }
    return json.dumps(payload, indent=2) + "\n"
