"""Real LLaMA-Factory trainings on CPU with the tiny model: the constant-normaliser loss end to end.

To stay inside the CI budget (each interpreter spends ~10-15 s importing LLaMA-Factory), the trainings run
in four processes: one ``llamafactory-cli train`` (step-1 loss), one ``llamafactory-cli train`` with the
kill switch (negative control), one interpreter running many configurations one after the other
(``tests/lf_multi_run.py``: ``run_exp``, the function ``llamafactory-cli train`` calls), and one 2-process
``torchrun`` of the same driver for DDP (gloo) and DeepSpeed ZeRO-2 (the slowest part: two imports and,
on a fresh machine, DeepSpeed's one-off build of a small CPU op). SGD without clipping is used wherever
final weights are compared: unlike Adam it does not hide a wrong gradient scale.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import run
from lf_helpers import (
    REASONING_FILE,
    REPO,
    base_config,
    losses,
    max_weight_diff,
    read_jsonl,
    short_rows,
    weights,
    write_configs,
    write_dataset_dir,
)
from vr_plugins import formats

pytestmark = [pytest.mark.e2e, pytest.mark.multiprocess]  # real trainings, torchrun DDP / ZeRO

TOL = 1e-5
HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None


def _companion_rows():
    x = short_rows(1, seed=11, min_steps=4, max_steps=4)
    short = short_rows(3, seed=12, min_steps=0, max_steps=0)
    long = short_rows(3, seed=13, min_steps=14, max_steps=14)
    return x, short, long


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("lf-train")
    x, short, long = _companion_rows()
    reasoning = read_jsonl(REASONING_FILE)
    build = root / "final.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vr_plugins.rundir import columns as rc

    pq.write_table(
        pa.Table.from_pylist(
            [
                {rc.PROMPT_IDX: i, rc.QUESTION: r["question"], rc.RESPONSE: formats.render_response(r["think"], r["solution"]),
                 rc.SOURCE: -2, rc.ESTIMATOR: "gml", rc.WEIGHT: r["weight"], rc.AVERAGE_CORRECTNESS: None}
                for i, r in enumerate(reasoning[:8])
            ],
            schema=rc.DATASET_SCHEMA,
        ),
        build,
    )
    data = write_dataset_dir(
        root / "data",
        {
            "inv": (short_rows(48, seed=1), {"formatting": "vr_reasoning"}),
            "reas": (REASONING_FILE, {"formatting": "vr_reasoning"}),
            "xA": (x + short, {"formatting": "vr_reasoning"}),
            "A": (short, {"formatting": "vr_reasoning"}),
            "xB": (x + long, {"formatting": "vr_reasoning"}),
            "B": (long, {"formatting": "vr_reasoning"}),
            "alpaca": (
                [{"instruction": r["question"], "input": "", "output": r["solution"]} for r in reasoning[:8]],
                {},
            ),
            "vr_initial": (REASONING_FILE, {"formatting": "vr_reasoning"}),
            "vr_posterior": (REASONING_FILE, {"formatting": "vr_posterior"}),
            "vr_final": (build, {"formatting": "vr_build"}),
        },
    )
    return root, data


def _invariance_configs(model, data, out, layout: str) -> dict[str, dict]:
    """The same two optimiser steps, split differently. ``layout``: single | dist."""
    common = dict(constant_loss_normalizer=300.0, use_sample_weights=True)
    packed = dict(packing=True, cutoff_len=192)
    if layout == "single":
        splits = {"bs8": dict(per_device_train_batch_size=8), "bs4ga2": dict(per_device_train_batch_size=4, gradient_accumulation_steps=2)}
    else:
        splits = {
            "ddp": dict(per_device_train_batch_size=4, ddp_backend="gloo"),
            "zero2": dict(per_device_train_batch_size=4, ddp_backend="gloo", deepspeed=str(REPO / "recipes/deepspeed/ds_z2_cpu.json")),
        }
        if not HAS_DEEPSPEED:
            del splits["zero2"]
    configs = {}
    for name, split in splits.items():
        configs[f"plain_{name}"] = base_config(model, data, "inv", out / f"plain_{name}", **common, **split)
        configs[f"packed_{name}"] = base_config(model, data, "inv", out / f"packed_{name}", **common, **packed, **split)
    return configs


@pytest.fixture(scope="module")
def single_runs(workdir, tiny_model_dir):
    """One interpreter, many trainings: invariance (single process), companions, alpaca, tiny recipes."""
    root, data = workdir
    out = root / "runs"
    model = tiny_model_dir
    configs = _invariance_configs(model, data, out, "single")
    for loss, extra in (("c", dict(constant_loss_normalizer=50.0)), ("d", {})):
        for name, n in (("xA", 4), ("A", 3), ("xB", 4), ("B", 3)):
            configs[f"{loss}_{name}"] = base_config(
                model, data, name, out / f"{loss}_{name}", per_device_train_batch_size=n, max_steps=1, learning_rate=1.0, **extra
            )
    configs["alpaca"] = base_config(model, data, "alpaca", out / "alpaca", constant_loss_normalizer=40.0)
    configs["auto"] = base_config(model, data, "reas", out / "auto", max_steps=1, use_sample_weights=True,
                                  constant_loss_normalizer="auto")
    for stage in ("initial", "posterior_a", "posterior_b", "final"):
        recipe = yaml.safe_load((REPO / "recipes/tiny" / f"{stage}.yaml").read_text())
        dataset = {"initial": "vr_initial", "final": "vr_final"}.get(stage, "vr_posterior")
        recipe.update(model_name_or_path=str(model), dataset=dataset, dataset_dir=str(data),
                      output_dir=str(out / f"recipe_{stage}"), constant_loss_normalizer=250.0, max_steps=2)
        configs[f"recipe_{stage}"] = recipe
    paths = write_configs(root / "configs-single", configs)
    run(["python", str(REPO / "tests/lf_multi_run.py"), *paths], cwd=root)
    return out


@pytest.fixture(scope="module")
def dist_runs(workdir, tiny_model_dir):
    """One 2-process torchrun: DDP (gloo) and DeepSpeed ZeRO-2, each with and without packing."""
    root, data = workdir
    out = root / "runs"
    paths = write_configs(root / "configs-dist", _invariance_configs(tiny_model_dir, data, out, "dist"))
    run(["python", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(REPO / "tests/lf_multi_run.py"), *paths], cwd=root, timeout=1200)
    return out


def _assert_same_run(a: Path, b: Path):
    la, lb = losses(a), losses(b)
    assert len(la) == len(lb) == 2
    assert max(abs(x - y) for x, y in zip(la, lb)) <= TOL, (la, lb)
    assert max_weight_diff(weights(a), weights(b)) <= TOL


@pytest.mark.parametrize("layout", ["plain", "packed"])
def test_grad_accumulation_invariance(single_runs, layout):
    _assert_same_run(single_runs / f"{layout}_bs8", single_runs / f"{layout}_bs4ga2")


@pytest.mark.parametrize("layout", ["plain", "packed"])
@pytest.mark.parametrize("split", ["ddp", pytest.param("zero2", marks=pytest.mark.skipif(not HAS_DEEPSPEED, reason="deepspeed not installed"))])
def test_data_parallel_invariance(single_runs, dist_runs, layout, split):
    """2 processes x bs 4 (DDP gloo, ZeRO-2) == 1 process x bs 8: same losses and final weights."""
    _assert_same_run(single_runs / f"{layout}_bs8", dist_runs / f"{layout}_{split}")


def test_training_actually_moves_the_weights(single_runs, tiny_model_dir):
    assert max_weight_diff(weights(tiny_model_dir), weights(single_runs / "plain_bs8")) > 1e-3
    assert losses(single_runs / "plain_bs8") != losses(single_runs / "packed_bs8")


def test_constant_normaliser_removes_companion_dependence(single_runs):
    """Example x's contribution to the update (SGD: w(companions) - w(x + companions)) must not depend on
    which companions share its step under the constant normaliser; under the default token mean it does."""

    def contribution(loss, companions):
        with_x, without = weights(single_runs / f"{loss}_x{companions}"), weights(single_runs / f"{loss}_{companions}")
        return {k: without[k] - with_x[k] for k in with_x}

    def relative_gap(loss):
        a, b = contribution(loss, "A"), contribution(loss, "B")
        scale = max(float(v.abs().max()) for v in a.values())
        assert scale > 1e-4  # x really moved the weights
        return max(float((a[k] - b[k]).abs().max()) for k in a) / scale

    assert relative_gap("c") < 1e-4
    assert relative_gap("d") > 0.2


def test_standard_alpaca_format_trains_with_the_new_template_and_loss(single_runs):
    values = losses(single_runs / "alpaca")
    assert len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values)


@pytest.mark.parametrize("stage", ["initial", "posterior_a", "posterior_b", "final"])
def test_tiny_recipes_train(single_runs, stage):
    out = single_runs / f"recipe_{stage}"
    values = losses(out)
    assert len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values)
    assert (out / "model.safetensors").is_file()


# --- the real command line ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def step1_recipe(workdir, tiny_model_dir):
    root, data = workdir
    recipe = base_config(tiny_model_dir, data, "reas", root / "cli", max_steps=1, use_sample_weights=True)
    path = root / "step1.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = run(["vr-tools", "normalizer", "--dataset", "reas", "--dataset-dir", str(data), "--model",
                  str(tiny_model_dir), "--recipe", str(path), "--json"])
    normalizer = json.loads(result.stdout)
    recipe["constant_loss_normalizer"] = normalizer["constant_loss_normalizer"]
    path.write_text(yaml.safe_dump(recipe))
    return path, recipe, normalizer


def _independent_loss(model_dir, rows, normalizer):
    """The weighted NLL sum / C, with plain transformers (no LLaMA-Factory)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    total = 0.0
    for row in rows:
        prompt = tokenizer(formats.render_reasoning_prompt(row["question"]), add_special_tokens=False)["input_ids"]
        answer = formats.render_response(row["think"], row["solution"]) + formats.IM_END + "\n"
        response = tokenizer(answer, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + response])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].double(), dim=-1)
        targets = ids[0, 1:]
        nll = -logp[torch.arange(len(targets)), targets][len(prompt) - 1 :].sum().item()
        total += row["weight"] * nll
    return total / normalizer


def test_normalizer_tool_counts_supervised_tokens(step1_recipe, tiny_model_dir):
    _, recipe, normalizer = step1_recipe
    from transformers import AutoTokenizer

    rows = read_jsonl(REASONING_FILE)

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    counts = [
        len(tokenizer(formats.render_response(r["think"], r["solution"]) + formats.IM_END + "\n", add_special_tokens=False)["input_ids"])
        for r in rows
    ]
    assert normalizer["n_examples"] == len(rows)
    assert normalizer["total_tokens"] == sum(counts)
    assert normalizer["global_batch_size"] == 8
    assert normalizer["constant_loss_normalizer"] == pytest.approx(sum(counts) / len(rows) * 8)


def test_step1_loss_equals_independent_recomputation(step1_recipe, tiny_model_dir):
    path, recipe, normalizer = step1_recipe
    result = run(["llamafactory-cli", "train", str(path)])
    assert "[vr_plugins] constant-normaliser loss" in result.stderr + result.stdout
    assert "loss from the final hidden states (chunked output layer" in result.stderr  # no full logits
    logged = losses(recipe["output_dir"])[0]
    rows = read_jsonl(REASONING_FILE)[:8]  # disable_shuffling: step 1 is the first 8 rows
    expected = _independent_loss(tiny_model_dir, rows, normalizer["constant_loss_normalizer"])
    assert logged == pytest.approx(expected, rel=TOL, abs=TOL)


def test_auto_normalizer_is_the_tools_value_computed_in_the_training_process(single_runs, step1_recipe, tiny_model_dir):
    """``constant_loss_normalizer: auto`` counts the trainer's own tokenised dataset: the same rows, tokens
    and C as `vr-tools normalizer`, recorded in output_dir, and the step-1 loss is sum(w x NLL) / that C."""
    _, _, tool = step1_recipe
    recorded = json.loads((single_runs / "auto" / "vr_normalizer.json").read_text())
    for key in ("n_examples", "total_tokens", "global_batch_size", "cutoff_len", "template", "packing", "dataset"):
        assert recorded[key] == tool[key], key
    assert recorded["constant_loss_normalizer"] == pytest.approx(tool["constant_loss_normalizer"], rel=1e-12)
    expected = _independent_loss(tiny_model_dir, read_jsonl(REASONING_FILE)[:8], recorded["constant_loss_normalizer"])
    assert losses(single_runs / "auto")[0] == pytest.approx(expected, rel=TOL, abs=TOL)


def test_negative_control_kill_switch(step1_recipe):
    """With the plugin disabled, the same recipe fails with LLaMA-Factory's own parser error."""
    path, _, _ = step1_recipe
    result = run(["llamafactory-cli", "train", str(path)], check=False, VR_PLUGINS_DISABLE="1")
    assert result.returncode != 0
    assert "Some keys are not used by the HfArgumentParser" in result.stderr + result.stdout
    assert "constant_loss_normalizer" in result.stderr + result.stdout

