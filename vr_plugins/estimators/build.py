"""Build the training dataset of a run: select with an estimator, then write texts for the chosen rows.

Memory: selection runs on scalar columns (:mod:`.inputs`); texts are then streamed file by file and
only the chosen rows' texts are kept (as Arrow arrays), so the peak is about the size of the output
dataset, never the run's traces, rollouts or per-token arrays. The Parquet file and the
``dataset_info.json`` entry are each written to a temporary sibling and renamed.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vr_plugins import formats
from vr_plugins.estimators.candidates import (SOLUTION_ROLLOUT, BuildOptions, EstimatorInputs, Selection,
                                              questions_without_tests)
from vr_plugins.estimators.inputs import Problems, attach_verification, load_questions, load_traces
from vr_plugins.registry import get_estimator
from vr_plugins.rundir import columns as C
from vr_plugins.rundir.io import RunDirError, atomic_path, check_columns, file_lock, write_text_atomic
from vr_plugins.rundir.manifest import check_step, mark_complete, record_step
from vr_plugins.types import resolve

CHUNK_ROWS = 1024
#: the LLaMA-Factory ``formatting:`` of build outputs (converter registered by the LLaMA-Factory adapter)
DATASET_FORMAT = "vr_build"


# --- selection -------------------------------------------------------------------------------------
def load_inputs(run_dir: str | os.PathLike, needs_verification: bool = False, strict: bool = True) -> EstimatorInputs:
    """Questions + scored traces (+ verification aggregates when the run has them)."""
    run_dir = Path(run_dir)
    problems = Problems(strict=strict)
    questions = load_questions(run_dir, problems)
    traces = load_traces(run_dir, questions, problems)
    rollouts = attach_verification(run_dir, traces, problems, required=needs_verification)
    return EstimatorInputs(questions, traces, problems, rollouts)


def run_estimator(name: str, inputs: EstimatorInputs, options: BuildOptions) -> Selection:
    """Call the registered estimator ``name`` and check its result."""
    estimator = get_estimator(name)
    if estimator.needs_verification and not inputs.traces.has_verification:
        raise RunDirError(f"estimator {name!r} needs verified rollouts (RUN/{C.VERIFIED_DIR}/seed-<k>.parquet); "
                          f"run `vr-tools rollout` and `vr-tools verify` first")
    selection = resolve(estimator.build)(inputs, options)
    if not isinstance(selection, Selection):
        raise TypeError(f"estimator {name!r} returned {type(selection).__name__}, expected "
                        f"vr_plugins.estimators.Selection")
    return selection.finalise(inputs)


# --- response assembly ---------------------------------------------------------------------------
def rollout_solution(text: str) -> str:
    """A rollout's solution text: the continuation after the begin-of-solution marker, without the stop
    string (some samplers keep it, so one trailing end-of-solution marker is removed)."""
    return text[: -len(formats.END_OF_SOLUTION)] if text.endswith(formats.END_OF_SOLUTION) else text


def training_response(think: str, solution: str) -> str:
    """The training target of a selected row: ``formats.render_response(trace, solution)``."""
    return formats.render_response(think, solution)


# --- text gathering --------------------------------------------------------------------------------
def _gather(path: Path, column: str, rows: np.ndarray) -> pa.Array:
    """Values of ``column`` at the sorted unique ``rows`` positions of ``path``, streamed by batch."""
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise RunDirError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
    check_columns(pf.schema_arrow, [column], path)
    out, offset, k = [], 0, 0
    for batch in pf.iter_batches(columns=[column], batch_size=1024):  # bounded: texts can be 100 kB each
        end = offset + batch.num_rows
        j = np.searchsorted(rows, end, side="left")
        if j > k:
            out.append(batch.column(0).take(pa.array(rows[k:j] - offset)))
            k = j
        offset = end
        if k == len(rows):
            break
    if k != len(rows):
        raise RunDirError(f"{path}: has fewer rows than when it was read (file changed during the build?)")
    arr = pa.concat_arrays(out) if out else pa.array([], pa.string())
    if arr.null_count:
        raise RunDirError(f"{path}: column {column!r} is null in {arr.null_count} selected row(s)")
    return arr.cast(pa.string())


def _texts_by_file(files: list[Path], file_of: np.ndarray, row_of: np.ndarray, column: str) -> pa.Array:
    """Texts for items given by (file index, row), returned in the items' order."""
    n = len(file_of)
    order = np.lexsort((row_of, file_of))
    pieces = []
    for f in np.unique(file_of):
        sel = order[file_of[order] == f]
        pieces.append(_gather(files[f], column, row_of[sel]))
    flat = pa.concat_arrays(pieces) if pieces else pa.array([], pa.string())
    inverse = np.empty(n, np.int64)
    inverse[order] = np.arange(n)
    return flat.take(pa.array(inverse))


#: the questions.parquet columns a build writes from
QUESTION_TEXT_COLUMNS = [C.PROMPT_IDX, C.QUESTION, C.REFERENCE_THINK, C.REFERENCE_SOLUTION]


def check_text_columns(run_dir: Path, inputs: EstimatorInputs) -> None:
    """Before any selection or writing: the text columns the build reads exist (errors name file + column)."""
    check_columns(pq.read_schema(run_dir / C.QUESTIONS_FILE), QUESTION_TEXT_COLUMNS, run_dir / C.QUESTIONS_FILE)
    for path in inputs.traces.files:
        check_columns(pq.read_schema(path), [C.THINK_TEXT], path)
    if inputs.rollouts is not None:
        for path in getattr(inputs.rollouts, "files", []):
            check_columns(pq.read_schema(path), [C.RESPONSE], path)


def _questions_text(run_dir: Path, n_expected: int) -> pa.Table:
    path = run_dir / C.QUESTIONS_FILE
    table = pq.read_table(path, columns=QUESTION_TEXT_COLUMNS)
    table = table.take(pc.sort_indices(table[C.PROMPT_IDX]))
    if table.num_rows != n_expected:
        raise RunDirError(f"{path}: changed during the build")
    for name in (C.QUESTION, C.REFERENCE_THINK, C.REFERENCE_SOLUTION):
        if table[name].null_count:
            bad = table.filter(pc.is_null(table[name]))[C.PROMPT_IDX].to_pylist()[:5]
            raise RunDirError(f"{path}: column {name!r} is null for prompt_idx {bad}")
    return table


# --- the dataset_info.json entry (one place, so the converter's column keys can change here only) ---
def dataset_info_entry(name: str, file_name: str) -> dict:
    """The LLaMA-Factory ``dataset_info.json`` entry of a build output.

    The column keys are those the registered ``vr_build`` format declares (its ``default_columns``), so
    the converter's owner decides the key shape in one place; before it is registered, the
    ``prompt``/``response``/``weight`` shape is written.
    """
    from vr_plugins.registry import registry

    formats_registry = registry("dataset_formats")
    if DATASET_FORMAT in formats_registry and formats_registry.get(DATASET_FORMAT).default_columns:
        columns = dict(formats_registry.get(DATASET_FORMAT).default_columns)
    else:
        columns = {"prompt": C.QUESTION, "response": C.RESPONSE, "weight": C.WEIGHT}
    return {name: {"file_name": file_name, "formatting": DATASET_FORMAT, "columns": columns}}


def update_dataset_info(directory: Path, entry: dict) -> Path:
    """Merge ``entry`` into ``directory/dataset_info.json`` (locked read-modify-write, atomic replace)."""
    path = directory / C.DATASET_INFO_FILE
    directory.mkdir(parents=True, exist_ok=True)
    with file_lock(path):
        info = {}
        if path.exists():
            try:
                info = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise RunDirError(f"{path}: not valid JSON ({exc}); fix or remove it") from exc
        info.update(entry)
        write_text_atomic(json.dumps(info, indent=2) + "\n", path)
    return path


# --- writing ---------------------------------------------------------------------------------------
@dataclass
class BuildResult:
    path: Path
    name: str
    rows: int
    selection: Selection
    inputs: EstimatorInputs
    summary: dict


def default_output(run_dir: Path, estimator: str, mix: bool) -> Path:
    return run_dir / C.DATASETS_DIR / f"{estimator}{'-mix' if mix else ''}.parquet"


def build_dataset(run_dir: str | os.PathLike, estimator: str, options: BuildOptions = BuildOptions(),
                  mix: bool = True, out: str | os.PathLike | None = None, force: bool = False) -> BuildResult:
    """Select with ``estimator`` and write the dataset file + its dataset_info.json entry."""
    run_dir = Path(run_dir)
    spec = get_estimator(estimator)
    out = Path(out) if out is not None else default_output(run_dir, estimator, mix)
    if out.suffix != ".parquet":
        raise RunDirError(f"{out}: the output must be a .parquet file")
    params = {"estimator": estimator, "mix": mix, "out": str(out.resolve()), **asdict(options)}
    params["extra"] = dict(options.extra)
    step = f"build/{out.stem}"
    check_step(run_dir, step, params, force=force)  # recorded only once the dataset is written
    inputs = load_inputs(run_dir, needs_verification=spec.needs_verification, strict=True)
    check_text_columns(run_dir, inputs)
    selection = run_estimator(estimator, inputs, options)
    questions = _questions_text(run_dir, len(inputs.questions))
    traces = inputs.traces

    # texts of the chosen traces and rollouts
    picked = selection.trace >= 0
    uniq = np.unique(selection.trace[picked])
    think = _texts_by_file(traces.files, traces.file[uniq], traces.row[uniq], C.THINK_TEXT)
    think_pos = np.searchsorted(uniq, np.maximum(selection.trace, 0))
    rollout_rows = np.flatnonzero(selection.solution == SOLUTION_ROLLOUT)
    rollout_text = _rollout_texts(inputs, selection.trace[rollout_rows])
    rollout_pos = np.full(len(selection), -1, np.int64)
    rollout_pos[rollout_rows] = np.arange(len(rollout_rows))

    source = selection.source(inputs)
    with atomic_path(out) as tmp:
        with pq.ParquetWriter(tmp, C.DATASET_SCHEMA) as writer:
            if mix:
                for a in range(0, questions.num_rows, CHUNK_ROWS):
                    chunk = questions.slice(a, CHUNK_ROWS)
                    responses = [training_response(t, s) for t, s in zip(chunk[C.REFERENCE_THINK].to_pylist(),
                                                                         chunk[C.REFERENCE_SOLUTION].to_pylist())]
                    n = chunk.num_rows
                    writer.write_table(_rows(chunk[C.PROMPT_IDX], chunk[C.QUESTION], responses,
                                             np.full(n, C.SOURCE_ORIGINAL), estimator, np.ones(n), np.full(n, np.nan)))
            for a in range(0, len(selection), CHUNK_ROWS):
                sl = slice(a, a + CHUNK_ROWS)
                q = pa.array(selection.q[sl])
                qrows = questions.take(q)
                responses = []
                ref_think = qrows[C.REFERENCE_THINK].to_pylist()
                ref_sol = qrows[C.REFERENCE_SOLUTION].to_pylist()
                th = think.take(pa.array(think_pos[sl])).to_pylist() if len(think) else [None] * len(q)
                for i, row in enumerate(range(a, min(a + CHUNK_ROWS, len(selection)))):
                    if selection.trace[row] < 0:
                        responses.append(training_response(ref_think[i], ref_sol[i]))
                    elif selection.solution[row] == SOLUTION_ROLLOUT:
                        responses.append(training_response(th[i], rollout_solution(rollout_text[rollout_pos[row]].as_py())))
                    else:
                        responses.append(training_response(th[i], ref_sol[i]))
                writer.write_table(_rows(qrows[C.PROMPT_IDX], qrows[C.QUESTION], responses, source[sl], estimator,
                                         selection.weight[sl], selection.average_correctness[sl]))
    update_dataset_info(out.parent, dataset_info_entry(out.stem, out.name))
    record_step(run_dir, step, params, force=force)
    try:
        rel = str(out.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        rel = str(out.resolve())
    mark_complete(run_dir, step, [rel])
    rows = (len(inputs.questions) if mix else 0) + len(selection)
    return BuildResult(out, out.stem, rows, selection, inputs,
                       summarise(inputs, selection, mix, needs_rollouts=spec.needs_verification))


def _rollout_texts(inputs: EstimatorInputs, trace_ids: np.ndarray) -> pa.Array:
    if len(trace_ids) == 0:
        return pa.array([], pa.string())
    tr = inputs.traces
    file_of, row_of = inputs.rollouts.locate(tr.prompt_idx[trace_ids], tr.seed[trace_ids], tr.first_correct[trace_ids])
    return _texts_by_file(inputs.rollouts.files, file_of, row_of, C.RESPONSE)


def _rows(prompt_idx, question, responses, source, estimator, weight, avg) -> pa.Table:
    n = len(responses)
    avg = np.asarray(avg, np.float64)
    return pa.Table.from_arrays([
        pa.array(prompt_idx, pa.int64()) if not isinstance(prompt_idx, pa.ChunkedArray) else prompt_idx.cast(pa.int64()),
        question if isinstance(question, pa.ChunkedArray) else pa.array(question, pa.string()),
        pa.array(responses, pa.string()),
        pa.array(np.asarray(source, np.int64)),
        pa.array([estimator] * n, pa.string()),
        pa.array(np.asarray(weight, np.float64)),
        pa.array(avg, pa.float64(), mask=np.isnan(avg)),
    ], schema=C.DATASET_SCHEMA)


def summarise(inputs: EstimatorInputs, selection: Selection, mix: bool, needs_rollouts: bool = False) -> dict:
    """Headline counts of a build (printed by the CLI).

    ``needs_rollouts`` (acc, rft): also the questions that fell back because ``prepare`` left them
    without tests (``no_tests``): they got no row with a verified rollout solution.
    """
    src = selection.source(inputs)
    per_q = np.zeros(len(inputs.questions), bool)
    per_q[selection.q[selection.trace >= 0]] = True
    extra = {}
    if needs_rollouts:
        no_tests = questions_without_tests(inputs.questions)
        verified = np.zeros(len(inputs.questions), bool)
        verified[selection.q[selection.solution == SOLUTION_ROLLOUT]] = True
        extra = {"questions_without_tests": int(no_tests.sum()),
                 "fallback_because_no_tests": int(np.sum(no_tests & ~verified))}
    return {
        "questions": len(inputs.questions),
        "traces": len(inputs.traces),
        "rows_selected": len(selection),
        "rows_original_mix": len(inputs.questions) if mix else 0,
        "questions_with_trace": int(per_q.sum()),
        "questions_original_fallback": int(np.sum(src == C.SOURCE_FALLBACK)),
        "rows_with_rollout_solution": int(np.sum(selection.solution == SOLUTION_ROLLOUT)),
        **extra,
        **{f"problem:{k}": v for k, v in sorted(inputs.problems.counts.items())},
    }
