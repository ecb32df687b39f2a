"""What the data steps share besides their scaffold: input validation, templates, models, seeds, tokenising.

Validation happens before a step writes anything (manifest included), so bad input leaves the run
directory exactly as it was. The scaffold itself (manifest begin, per-seed part writers, resume, merge,
completion mark, report fields) is :mod:`vr_plugins.rundir.step`; ``begin_step`` is re-exported here for
the callers that import it from this module.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from vr_plugins import formats
from vr_plugins.rundir import columns as C
from vr_plugins.errors import ModelPathError  # noqa: F401  (one class for data steps and eval)
from vr_plugins.rundir.io import RunDirError, check_columns, check_unique, read_table
from vr_plugins.rundir.shards import Shard
from vr_plugins.rundir.step import StepOptionError, StepStart, begin_step  # noqa: F401  (re-exported)

#: files of which at least one marks a directory as holding a Hugging Face tokenizer
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def parse_seeds(text: str) -> list[int]:
    """``"0-7"`` -> [0..7]; ``"0,2,5"`` and mixes like ``"0-3,6"`` work too."""
    import re

    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise StepOptionError(f"--seeds expects non-negative integers like '0-7' or '0,1,5'; got {text!r}")
        lo = int(m.group(1))
        seeds.extend(range(lo, int(m.group(2) or lo) + 1))
    return sorted(set(seeds))


def resolve_template(name: str) -> formats.Template:
    """``a``/``b`` or any registered template name -> Template (unknown names list the known ones)."""
    from vr_plugins.registry import get_template

    return get_template(formats.POSTERIOR_SHORT_NAMES.get(name, name))


def check_model_path(path: str | os.PathLike, role: str = "model") -> str:
    """A local model directory must exist and hold a tokenizer; returns the path as given (absolute if local).

    Strings that do not exist locally but look like a hub id (``org/name``) are passed through: loading
    them fails later with the loader's own message where the machine has no hub access.
    """
    text = str(path)
    p = Path(text).expanduser()
    if p.exists():
        if not p.is_dir():
            raise ModelPathError(f"{role} path {p}: not a directory (expected a Hugging Face model folder)")
        if not any((p / f).exists() for f in TOKENIZER_FILES):
            raise ModelPathError(
                f"{role} path {p}: no tokenizer found (expected one of {', '.join(TOKENIZER_FILES)}); "
                f"save the tokenizer next to the weights (tokenizer.save_pretrained)"
            )
        return str(p.resolve())
    from vr_plugins.rundir.paths import looks_like_path

    if text.count("/") != 1 or looks_like_path(text):  # written like a path: fail now, never try the hub
        raise ModelPathError(f"{role} path {p}: does not exist (not a hub id org/name, so the hub is not tried)")
    return text


def load_tokenizer(path: str, role: str = "model"):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - re-raised naming the path
        raise ModelPathError(f"{role} path {path}: could not load the tokenizer ({type(exc).__name__}: {exc})") from exc


def load_hf_model(path: str, dtype: str = "auto", device: str | None = None, role: str = "model"):
    """A causal LM in eval mode on ``device`` (default: cuda when available, else cpu)."""
    import torch
    from transformers import AutoModelForCausalLM

    if device is None:  # one process per GPU under torchrun: LOCAL_RANK picks the GPU
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu"
    torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except Exception as exc:  # noqa: BLE001
        raise ModelPathError(f"{role} path {path}: could not load the model ({type(exc).__name__}: {exc})") from exc
    return model.to(device).eval()


def context_length(path: str) -> int | None:
    """The model's context length from its config (max_position_embeddings), or None if unknown."""
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path)
    except Exception:  # noqa: BLE001 - callers fall back to their own limit
        return None
    config = getattr(config, "text_config", config)
    return getattr(config, "max_position_embeddings", None)


def load_questions(run_dir: str | os.PathLike) -> pa.Table:
    """RUN/questions.parquet, validated: contract columns, unique prompt_idx, at least one row."""
    path = Path(run_dir) / C.QUESTIONS_FILE
    table = read_table(path, required=[C.PROMPT_IDX, C.QUESTION, C.REFERENCE_SOLUTION, C.SOURCE])
    if table.num_rows == 0:
        raise RunDirError(f"{path}: no questions (the file is empty); run `vr-tools prepare` first")
    check_unique(table, [C.PROMPT_IDX], path)
    return table


def posterior_seed_files(run_dir: str | os.PathLike, seeds: list[int] | None, shard: Shard = Shard()) -> dict[int, Path]:
    """seed -> posterior file (all present seeds when ``seeds`` is None).

    The merged RUN/posterior/seed-<k>.parquet is used when it exists; otherwise, for a sharded step, this
    shard's own file of ``sample`` (so shard i can go on to score/rollout without waiting for the others).
    """
    folder = Path(run_dir) / C.POSTERIOR_DIR

    def pick(seed: int) -> Path | None:
        final = folder / C.seed_file_name(seed)
        own = final.with_name(final.stem + shard.suffix + ".parquet")
        return final if final.exists() else (own if not shard.is_whole and own.exists() else None)

    if seeds is None:
        found = set()
        for f in folder.glob("seed-*.parquet") if folder.exists() else []:
            head = f.name.split(".", 1)[0]
            if head[len("seed-"):].isdigit():
                found.add(int(head[len("seed-"):]))
        files = {s: pick(s) for s in sorted(found)}
        files = {s: f for s, f in files.items() if f is not None}
        if not files:
            raise RunDirError(f"{folder}: no posterior files seed-<k>.parquet; run `vr-tools sample` first")
        return files
    files = {s: pick(s) for s in seeds}
    missing = [str(folder / C.seed_file_name(s)) for s, f in files.items() if f is None]
    if missing:
        raise RunDirError(f"posterior file(s) not found: {', '.join(missing)}")
    return files  # type: ignore[return-value]


def check_posterior(path: Path, question_ids: set[int], shard: Shard = Shard()) -> None:
    """A posterior seed file must have the columns and the prompt_idx set of questions.parquet, no duplicates.

    Reads only the prompt_idx column (traces are read later, one seed at a time). A shard's own file
    (name with ``.shard-``) is checked against that shard's questions only.
    """
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise RunDirError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
    check_columns(schema, [C.PROMPT_IDX, C.POSTERIOR_RESPONSE], path)
    table = read_table(path, columns=[C.PROMPT_IDX])
    check_unique(table, [C.PROMPT_IDX], path)
    if ".shard-" in path.name:
        question_ids = {i for i in question_ids if shard.owns(i)}
    ids = set(table[C.PROMPT_IDX].to_pylist())
    unknown, missing = sorted(ids - question_ids), sorted(question_ids - ids)
    if unknown or missing:
        parts = []
        if unknown:
            parts.append(f"{len(unknown)} prompt_idx not in questions.parquet (e.g. {unknown[:10]})")
        if missing:
            parts.append(f"{len(missing)} questions without a trace (e.g. prompt_idx {missing[:10]})")
        raise RunDirError(f"{path}: prompt_idx set differs from questions.parquet: {'; '.join(parts)}")


def read_posterior(path: Path, owned: set[int]) -> list[dict]:
    """(prompt_idx, posterior_response) rows of one seed file, for the questions in ``owned``."""
    table = read_table(path, columns=[C.PROMPT_IDX, C.POSTERIOR_RESPONSE])
    return [r for r in table.to_pylist() if r[C.PROMPT_IDX] in owned]


def length_error(path: Path, rows: list[tuple[int, int]], limit: int, what: str, hint: str) -> RunDirError:
    """An error naming the rows (prompt_idx, tokens) whose prompt does not fit ``limit`` tokens."""
    shown = ", ".join(f"prompt_idx {i} ({n} tokens)" for i, n in rows[:10])
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    return RunDirError(f"{path}: {len(rows)} row(s) whose {what} is longer than the context of {limit} tokens: {shown}{more}. {hint}")


def tokenize(tokenizer, text: str) -> list[int]:
    """One text -> ids, without added special tokens: the pieces of a step's input (prompt, trace, answer)
    are tokenised separately and concatenated, so no piece may add markers of its own."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenize_prompts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Prompt texts -> ids in one tokenizer call, without added special tokens (the ChatML text carries its
    own markers)."""
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def check_prompt_lengths(run_dir, prompt_idx: list[int], ids: list[list[int]], context: int, what: str) -> None:
    """Refuse, before anything runs, prompts of ``context`` tokens or more: nothing would be left to generate."""
    too_long = [(i, len(x)) for i, x in zip(prompt_idx, ids) if len(x) >= context]
    if too_long:
        raise length_error(Path(run_dir) / C.QUESTIONS_FILE, too_long, context, what,
                           "Shorten these questions or use a model with a longer context (--max-model-len).")


def batches(order: list, size: int) -> list[list]:
    """``order`` cut into consecutive batches of ``size`` (the last one shorter)."""
    return [order[i:i + size] for i in range(0, len(order), size)]
