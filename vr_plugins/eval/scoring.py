"""How many scoring workers, and the scorer of the CPU runner (same record layout as SkyThought's).

SkyThought 0.1.0 scores with ``ProcessPoolExecutor(max_workers=32)`` whatever the machine: on a small
machine 32 forked workers each starting sandboxed programs oversubscribe the CPU until per-test
timeouts fire on correct programs. The cap is the number of CPUs this process may use, or
``VR_EVAL_SCORE_WORKERS``.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from vr_plugins.errors import UserError

SCORE_WORKERS_ENV = "VR_EVAL_SCORE_WORKERS"


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class EnvValueError(UserError, ValueError):
    """An environment variable of the evaluation with a value it cannot use."""


def score_workers() -> int:
    value = os.environ.get(SCORE_WORKERS_ENV, "").strip()
    if value:
        try:
            workers = int(value)
        except ValueError:
            raise EnvValueError(f"{SCORE_WORKERS_ENV}={value!r}: expected a positive integer") from None
        if workers < 1:
            raise EnvValueError(f"{SCORE_WORKERS_ENV}={value!r}: expected a positive integer")
        return workers
    return available_cpus()


def score_records(handler, id_to_results: dict[str, dict[str, Any]], workers: int | None = None) -> dict[str, list[int]]:
    """Grade every response in place (``correctness``/``reason``); returns id -> list of 0/1 scores.

    ``workers == 1`` grades in this process; more uses a process pool (``handler.update_results`` is
    pickled, exactly as in SkyThought's ``score_responses``).
    """
    workers = workers or score_workers()
    jobs = [(uid, i) for uid, record in id_to_results.items() for i in range(len(record["responses"]))]
    if workers == 1 or len(jobs) <= 1:
        results = [handler.update_results(id_to_results[uid], id_to_results[uid]["responses"][i]["content"]) for uid, i in jobs]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            futures = [
                pool.submit(handler.update_results, id_to_results[uid], id_to_results[uid]["responses"][i]["content"])
                for uid, i in jobs
            ]
            results = [future.result() for future in futures]
    scores: dict[str, list[int]] = {uid: [0] * len(record["responses"]) for uid, record in id_to_results.items()}
    for (uid, i), entry in zip(jobs, results):
        response = id_to_results[uid]["responses"][i]
        response["correctness"] = bool(entry["correctness"])
        response["reason"] = entry["reason"]
        scores[uid][i] = int(bool(entry["correctness"]))
    return scores
