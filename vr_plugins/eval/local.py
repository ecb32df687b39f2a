"""``evaluate_local``: one registered task with transformers generation on CPU (no vLLM, no server).

The ``skythought`` CLI imports vLLM at load time, so it cannot run on a CPU-only machine. This runner
does what ``skythought evaluate`` does with the SAME registered handler (load data, build the prompt,
grade) and writes the same two files into a folder named like SkyThought's
(``<model>_<task>_<hash>/results.json`` and ``summary.json``), so :mod:`vr_plugins.eval.summary` reads
both alike. Generation mirrors SkyThought's vLLM path: the chat template is applied to the conversation
and, with an assistant prefill, the final message is continued (``continue_final_message``); sampling
stops at :data:`vr_plugins.formats.STOP_STRING`, which is not part of the stored response.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from collections.abc import Callable

from vr_plugins import formats
from vr_plugins.errors import UserError
from vr_plugins.eval.summary import RESULTS_FILENAME, SUMMARY_FILENAME

BACKEND_NAME = "transformers-cpu"


class EvalOptionError(UserError, ValueError):
    """An evaluation option or model that cannot be evaluated as asked."""


class ResultExistsError(UserError, FileExistsError):
    """The result folder of this exact configuration exists already (not replaced without overwrite)."""


def _json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=4, ensure_ascii=False, default=_json_default), encoding="utf-8")


def _prompt_parts(template: str | None, system_prompt: str | None, assistant_prefill: str | None):
    if template is not None:
        from vr_plugins.registry import get_template

        tpl = get_template(template)
        if tpl.needs_solution:
            raise EvalOptionError(f"template {template!r} needs a reference solution; evaluation uses a reasoning template")
        system_prompt = system_prompt if system_prompt is not None else tpl.system
        assistant_prefill = assistant_prefill if assistant_prefill is not None else tpl.assistant_prefix
    return system_prompt or None, assistant_prefill or None


def _load_model(model_path: str, dtype: str, device: str, tokenizer=None):
    """The model, and its tokenizer (``tokenizer``: one already loaded from identical files, reused)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(model_path)
    if not getattr(tokenizer, "chat_template", None):
        raise EvalOptionError(f"{model_path}: the tokenizer has no chat template (SkyThought applies one to every prompt)")
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype)).to(device).eval()
    return tokenizer, model


def render_conversation(tokenizer, conversation, prefill: str | None) -> str:
    """The prompt text the model continues, built as vLLM's ``LLM.chat`` does in SkyThought."""
    return tokenizer.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=prefill is None, continue_final_message=prefill is not None
    )


def _generate(tokenizer, model, conversation, prefill, *, n, max_new_tokens, temperature, top_p):
    import torch

    text = render_conversation(tokenizer, conversation, prefill)
    inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(model.device)
    prompt_len = inputs["input_ids"].shape[1]
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p} if temperature > 0 else {"do_sample": False}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        output = model.generate(
            **inputs, max_new_tokens=max_new_tokens, num_return_sequences=n, stop_strings=[formats.STOP_STRING],
            tokenizer=tokenizer, pad_token_id=pad_id, **sampling,
        )
    texts, counts = [], []
    eos = {i for i in [tokenizer.eos_token_id, pad_id] if i is not None}
    for sequence in output[:, prompt_len:].tolist():
        length = next((i + 1 for i, tok in enumerate(sequence) if tok in eos), len(sequence))
        decoded = tokenizer.decode(sequence[:length], skip_special_tokens=True)
        cut = decoded.find(formats.STOP_STRING)
        texts.append((decoded[:cut] if cut >= 0 else decoded).strip())  # vLLM drops the stop string
        counts.append(length)
    return texts, counts, prompt_len


def evaluate_local(
    task_name: str,
    model_path: str | os.PathLike,
    n: int = 1,
    max_new_tokens: int = 1024,
    temperature: float = 0.7,
    top_p: float = 1.0,
    *,
    out_dir: str | os.PathLike,
    start: int = 0,
    end: int = -1,
    seed: int = 41,
    data_dir: str | os.PathLike | None = None,
    template: str | None = formats.REASONING.name,
    system_prompt: str | None = None,
    assistant_prefill: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    score_workers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Evaluate ``model_path`` on registered task ``task_name``; returns the result folder.

    ``template`` (a registered template name, default the reasoning template) supplies the system prompt
    and assistant prefill; ``template=None`` uses only the explicit ``system_prompt``/``assistant_prefill``.
    ``data_dir`` overrides ``$VR_EVAL_DATA_DIR``. ``start``/``end`` slice the problems like SkyThought.
    The folder is written atomically (temporary folder, then rename); an existing non-empty folder is
    refused unless ``overwrite``.
    """
    [folder] = evaluate_local_many(
        task_name, [(model_path, out_dir)], n, max_new_tokens, temperature, top_p, start=start, end=end, seed=seed,
        data_dir=data_dir, template=template, system_prompt=system_prompt, assistant_prefill=assistant_prefill,
        dtype=dtype, device=device, score_workers=score_workers, overwrite=overwrite)
    return folder


def _tokenizer_key(model_path: str) -> tuple:
    """What decides a tokenizer: its files' contents (checkpoints of one training share them)."""
    import hashlib

    names = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
             "vocab.json", "merges.txt", "tokenizer.model")
    found = []
    for name in names:
        path = Path(model_path) / name
        if path.is_file():
            found.append((name, hashlib.sha256(path.read_bytes()).hexdigest()))
    return tuple(found) if found else ("path", str(Path(model_path).resolve()))


def evaluate_local_many(
    task_name: str,
    jobs: list[tuple[str | os.PathLike, str | os.PathLike]],
    n: int = 1,
    max_new_tokens: int = 1024,
    temperature: float = 0.7,
    top_p: float = 1.0,
    *,
    start: int = 0,
    end: int = -1,
    seed: int = 41,
    data_dir: str | os.PathLike | None = None,
    template: str | None = formats.REASONING.name,
    system_prompt: str | None = None,
    assistant_prefill: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    score_workers: int | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    on_done: Callable[[str, Path, dict], None] | None = None,
) -> list[Path]:
    """Evaluate several models on one task in this process; ``jobs`` is ``[(model, out_dir), ...]``.

    Each result folder is exactly what :func:`evaluate_local` writes for that model alone (same name, same
    bytes: every model's generation starts from ``torch.manual_seed(seed)``). What is shared is everything
    that does not depend on the model: the process start-up (torch, transformers, SkyThought), the task's
    handler, its data and conversations, and a tokenizer for models whose tokenizer files are identical.
    Every model path is checked and every folder's fate decided before any generation: an existing folder
    is refused (default), replaced (``overwrite``) or kept and not evaluated again (``skip_existing``,
    which makes an interrupted batch resumable: folders are only ever written whole). ``on_done(model,
    folder, summary)`` is called after each model. Returns the folders in the order of ``jobs``.
    """
    import torch

    from vr_plugins.eval.models import check_local_model
    from vr_plugins.eval.scoring import score_records
    from vr_plugins.hosts.skythought.tasks import load_handler, pass_at_k, run_hash

    if n < 1 or max_new_tokens < 1:
        raise EvalOptionError(f"n and max_new_tokens must be >= 1 (got n={n}, max_new_tokens={max_new_tokens})")
    if not jobs:
        raise EvalOptionError("no model to evaluate")
    handler = load_handler(task_name)
    for model_path, _ in jobs:
        check_local_model(str(model_path))  # fail before any data or weights are loaded
    if data_dir is not None:
        handler.data_dir = str(data_dir)
    system, prefill = _prompt_parts(template, system_prompt, assistant_prefill)
    sampling = {"n": n, "temperature": temperature, "top_p": top_p, "max_tokens": max_new_tokens,
                "stop": [formats.STOP_STRING]}

    plans = []  # (model id, out dir, folder, run config, already done)
    for model_path, out_dir in jobs:
        model_id = str(model_path)
        run_config = {
            "task": {"name": task_name, "config": handler.task_config.model_dump(), "start": start, "end": end},
            "model": {"name": model_id, "config": {"model_id": model_id, "name": Path(model_id).name,
                                                   "system_prompt": system, "user_template": None,
                                                   "assistant_prefill": prefill}},
            "backend": {"name": BACKEND_NAME, "backend_args": {"dtype": dtype, "device": device}},
            "sampling_params": sampling,
        }
        folder = Path(out_dir) / f"{model_id.replace('/', '_')}_{task_name}_{run_hash(run_config)}"
        exists = folder.exists() and any(folder.iterdir())
        if exists and not (overwrite or skip_existing):
            raise ResultExistsError(f"{folder} already exists; pass overwrite=True (vr-tools evaluate --overwrite) "
                                    "to replace it")
        plans.append((model_id, Path(out_dir), folder, run_config, exists and skip_existing))
    if all(done for *_, done in plans):
        return [folder for _, _, folder, _, _ in plans]

    eval_data = handler.load_and_filter_dataset(start, end)
    rows = [row.to_dict() for _, row in eval_data.iterrows()]
    conversations = handler.make_conversations(rows, system, None, prefill)
    tokenizers: dict[tuple, Any] = {}
    for model_id, out_dir, folder, run_config, done in plans:
        if done:
            continue
        key = _tokenizer_key(model_id)
        tokenizer, model = _load_model(model_id, dtype, device, tokenizers.get(key))
        tokenizers[key] = tokenizer
        torch.manual_seed(seed)
        id_to_results, prompt_tokens, completion_tokens = _generate_all(
            tokenizer, model, rows, conversations, prefill, n=n, max_new_tokens=max_new_tokens,
            temperature=temperature, top_p=top_p)
        del model
        scores = score_records(handler, id_to_results, workers=score_workers)
        total = sum(len(s) for s in scores.values())
        accuracy = round(sum(map(sum, scores.values())) / total, 4) if total else 0.0
        responses = len(id_to_results) * n
        summary = {
            "configuration": run_config,
            "total_completion_tokens": completion_tokens,
            "avg_completion_tokens": round(completion_tokens / responses, 3) if responses else 0,
            "total_prompt_tokens": prompt_tokens,
            "avg_prompt_tokens": round(prompt_tokens / responses, 3) if responses else 0,
            "accuracy": accuracy,
            "pass_at_k": pass_at_k(n, scores) if n > 1 and scores else None,
        }
        _write_folder(out_dir, folder, id_to_results, summary)
        if on_done is not None:
            on_done(model_id, folder, summary)
    return [folder for _, _, folder, _, _ in plans]


def _generate_all(tokenizer, model, rows, conversations, prefill, *, n, max_new_tokens, temperature, top_p):
    """SkyThought's ``id_to_results`` records for every problem, and the prompt and completion token counts."""
    id_to_results: dict[str, dict[str, Any]] = {}
    prompt_tokens = completion_tokens = 0
    for row, conversation in zip(rows, conversations):
        texts, counts, prompt_len = _generate(
            tokenizer, model, conversation, prefill, n=n, max_new_tokens=max_new_tokens,
            temperature=temperature, top_p=top_p,
        )
        record = dict(row)
        record["prompt"] = conversation[1]["content"] if len(conversation) > 1 else conversation[0]["content"]
        record["input_conversation"] = conversation
        record["responses"] = [{"content": t, "correctness": None, "reason": None} for t in texts]
        record["token_usages"] = [{"completion_tokens": c, "prompt_tokens": prompt_len} for c in counts]
        id_to_results[str(row["_index"])] = record
        prompt_tokens += prompt_len
        completion_tokens += sum(counts)
    return id_to_results, prompt_tokens, completion_tokens


def _write_folder(out_dir: Path, folder: Path, id_to_results: dict, summary: dict) -> None:
    """Both files into a temporary folder, then one rename: a folder that exists is always complete."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=out_dir))
    try:
        _write_json(staging / RESULTS_FILENAME, id_to_results)
        _write_json(staging / SUMMARY_FILENAME, summary)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
