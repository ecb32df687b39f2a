"""LLaMA-Factory data path with the plugin, in this process: LLaMA-Factory's own argument parser, template,
dataset loading, processors and collator (imported once, ~10 s), no training.

Covers: the vr_reasoning rendering byte for byte against the reference layout (docs/method.md section 5) and its label mask,
the posterior and build formats, alpaca with the new template, per-token weights of packed batches
against the dataset file, and every bad-input error (raised before any model is loaded).
"""

from __future__ import annotations

import pytest

from lf_helpers import REASONING_FILE, base_config, read_jsonl, short_rows, write_dataset_dir
from vr_plugins import formats

IGNORE = -100


@pytest.fixture(scope="module")
def lf():
    import llamafactory.hparams as hparams
    from llamafactory.data import SFTDataCollatorWith4DAttentionMask, get_dataset, get_template_and_fix_tokenizer
    from llamafactory.model import load_tokenizer

    class LF:
        get_train_args = staticmethod(hparams.get_train_args)

        @staticmethod
        def process(config):
            import torch

            model_args, data_args, training_args, finetuning_args, _ = hparams.get_train_args(config)
            tokenizer_module = load_tokenizer(model_args)
            tokenizer = tokenizer_module["tokenizer"]
            template = get_template_and_fix_tokenizer(tokenizer, data_args)
            module = get_dataset(template, model_args, data_args, training_args, stage="sft", **tokenizer_module)
            collator = SFTDataCollatorWith4DAttentionMask(
                template=template,
                model=None,
                pad_to_multiple_of=8,
                label_pad_token_id=IGNORE,
                block_diag_attn=False,
                neat_packing=False,
                attn_implementation="sdpa",
                compute_dtype=torch.float32,
                **tokenizer_module,
            )
            return module["train_dataset"], tokenizer, collator

    return LF


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("lf-data")
    reasoning = read_jsonl(REASONING_FILE)
    posterior_rows = [{"question": r["question"], "solution": r["solution"], "think": r["think"]} for r in reasoning[:4]]
    build_rows = [
        {"prompt_idx": i, "question": r["question"], "response": formats.render_response(r["think"], r["solution"]),
         "source": -2, "estimator": "gml", "weight": r["weight"], "average_correctness": None}
        for i, r in enumerate(reasoning[:6])
    ]
    alpaca = [{"instruction": r["question"], "input": "", "output": r["solution"], "weight": 1.5} for r in reasoning[:3]]
    bad = lambda value: [dict(reasoning[0]), dict(reasoning[1], weight=value)]  # noqa: E731
    return write_dataset_dir(
        root,
        {
            "reas": (REASONING_FILE, {"formatting": "vr_reasoning"}),
            "post": (posterior_rows, {"formatting": "vr_posterior"}),
            "post_q": (
                [{"question": r["question"], "reference_solution": r["solution"], "reference_think": r["think"]} for r in reasoning[:2]],
                {"formatting": "vr_posterior", "columns": {"solution": "reference_solution", "think": "reference_think"}},
            ),
            "build": (build_rows, {"formatting": "vr_build"}),
            "build_w": (
                [dict(r, w2=2 * r["weight"]) for r in build_rows],
                {"formatting": "vr_build", "columns": {"weight": "w2"}},
            ),
            "alpaca": (alpaca, {}),
            "packed": (short_rows(24, seed=3), {"formatting": "vr_reasoning"}),
            "noweight": ([{k: v for k, v in r.items() if k != "weight"} for r in reasoning[:2]], {"formatting": "vr_reasoning"}),
            "nan": (bad(float("nan")), {"formatting": "vr_reasoning"}),
            "inf": (bad(float("inf")), {"formatting": "vr_reasoning"}),
            "neg": (bad(-0.5), {"formatting": "vr_reasoning"}),
        },
    )


def config(model_dir, data_dir, dataset, tmp_path, **kw):
    return base_config(model_dir, data_dir, dataset, tmp_path / "out", **kw)


# --- templates -------------------------------------------------------------------------------------


def test_vr_reasoning_renders_method_reference_byte_for_byte(lf, tiny_qwen_model_dir, data_dir, tmp_path):
    dataset, tokenizer, _ = lf.process(config(tiny_qwen_model_dir, data_dir, "reas", tmp_path))
    rows = read_jsonl(REASONING_FILE)
    assert len(dataset) == len(rows)
    for row, example in zip(rows, dataset):
        # docs/method.md section 5, written out independently of vr_plugins.formats (only the long system
        # prompt constant is shared): the prompt, then the reference response, then ChatML's end of turn.
        prompt = (
            "<|im_start|>system\n" + formats.REASONING_SYSTEM_PROMPT + "<|im_end|>\n<|im_start|>user\n"
            + row["question"] + "<|im_end|>\n<|im_start|>assistant\n<|begin_of_thought|>\n\n"
        )
        response = (
            row["think"] + "<|end_of_thought|>\n\n<|begin_of_solution|>" + row["solution"] + "<|end_of_solution|>"
            + "<|im_end|>\n"
        )
        ids, labels = example["input_ids"], example["labels"]
        assert tokenizer.decode(ids, skip_special_tokens=False).encode() == (prompt + response).encode()
        supervised = [i for i, label in enumerate(labels) if label != IGNORE]
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        # exactly the response tokens are supervised: one contiguous block after the whole prompt
        assert supervised == list(range(n_prompt, len(ids)))
        assert [labels[i] for i in supervised] == ids[n_prompt:]
        assert tokenizer.decode(ids[n_prompt:], skip_special_tokens=False) == response


def test_posterior_templates_render_solution_and_train_on_trace(lf, tiny_model_dir, data_dir, tmp_path):
    rows = read_jsonl(REASONING_FILE)[:4]
    for name, template in (("vr_posterior_a", formats.POSTERIOR_A), ("vr_posterior_b", formats.POSTERIOR_B)):
        dataset, tokenizer, _ = lf.process(config(tiny_model_dir, data_dir, "post", tmp_path, template=name))
        for row, example in zip(rows, dataset):
            text = tokenizer.decode(example["input_ids"], skip_special_tokens=False)
            target = tokenizer.decode([t for t in example["labels"] if t != IGNORE], skip_special_tokens=False)
            assert text == template.render_prompt(row["question"], row["solution"]) + target
            assert target == row["think"] + formats.END_OF_THOUGHT + formats.IM_END + "\n"
            assert row["solution"] in text.split(formats.IM_START + "assistant")[0]
    # column mapping onto the run directory's questions.parquet names
    dataset, tokenizer, _ = lf.process(config(tiny_model_dir, data_dir, "post_q", tmp_path, template="vr_posterior_b"))
    assert formats.POSTERIOR_B.render_prompt(rows[0]["question"], rows[0]["solution"]) in tokenizer.decode(dataset[0]["input_ids"])


def test_build_format_and_weight_column_mapping(lf, tiny_model_dir, data_dir, tmp_path):
    rows = read_jsonl(REASONING_FILE)[:6]
    on = dict(constant_loss_normalizer=100.0, use_sample_weights=True)
    dataset, tokenizer, _ = lf.process(config(tiny_model_dir, data_dir, "build", tmp_path, **on))
    assert [ex["vr_weight"] for ex in dataset] == pytest.approx([r["weight"] for r in rows])
    assert tokenizer.decode(dataset[0]["input_ids"]) == (
        formats.render_reasoning_prompt(rows[0]["question"]) + formats.render_response(rows[0]["think"], rows[0]["solution"])
        + formats.IM_END + "\n"
    )
    dataset, _, _ = lf.process(config(tiny_model_dir, data_dir, "build_w", tmp_path, **on))
    assert [ex["vr_weight"] for ex in dataset] == pytest.approx([2 * r["weight"] for r in rows])
    # weights off: no weight column anywhere, the batch is exactly upstream's
    dataset, _, collator = lf.process(config(tiny_model_dir, data_dir, "build", tmp_path))
    assert "vr_weight" not in dataset.column_names
    assert "vr_token_weights" not in collator([dict(dataset[0])])


def test_alpaca_with_reasoning_template_and_weights(lf, tiny_model_dir, data_dir, tmp_path):
    dataset, tokenizer, collator = lf.process(
        config(tiny_model_dir, data_dir, "alpaca", tmp_path, constant_loss_normalizer=10.0, use_sample_weights=True)
    )
    row = read_jsonl(REASONING_FILE)[0]
    assert tokenizer.decode(dataset[0]["input_ids"]) == (
        formats.render_reasoning_prompt(row["question"]) + row["solution"] + formats.IM_END + "\n"
    )
    batch = collator([dict(ex) for ex in dataset])
    mask = batch["labels"] != IGNORE
    assert batch["vr_token_weights"][mask].eq(1.5).all()


def test_packed_per_token_weights_match_the_dataset_file(lf, tiny_model_dir, data_dir, tmp_path):
    """Re-derive every supervised token's weight from the file: find its example by the response text."""
    rows = read_jsonl(data_dir / "packed.jsonl")
    dataset, tokenizer, collator = lf.process(
        config(tiny_model_dir, data_dir, "packed", tmp_path, packing=True, cutoff_len=256,
               constant_loss_normalizer=100.0, use_sample_weights=True)
    )
    assert len(dataset) < len(rows)  # rows really hold several examples
    by_response = {formats.render_response(r["think"], r["solution"]) + formats.IM_END + "\n": r["weight"] for r in rows}
    batch = collator([dict(ex) for ex in dataset])
    assert batch["vr_token_weights"].shape == batch["labels"].shape
    seen = 0
    for b in range(batch["labels"].shape[0]):
        labels, weights = batch["labels"][b].tolist(), batch["vr_token_weights"][b].tolist()
        positions = dataset[b]["position_ids"]
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        for start, end in zip(starts, starts[1:]):
            span = [i for i in range(start, end) if labels[i] != IGNORE]
            if not span:  # padding
                assert all(weights[i] == 0.0 for i in range(start, end))
                continue
            text = tokenizer.decode([labels[i] for i in span], skip_special_tokens=False)
            assert [weights[i] for i in span] == pytest.approx([by_response[text]] * len(span))
            seen += 1
    assert seen == len(rows)


# --- bad input: clear errors before training ---------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"constant_loss_normalizer": None}, "constant_loss_normalizer is missing"),
        ({"constant_loss_normalizer": 0.0}, "positive finite"),
        ({"constant_loss_normalizer": -3.0}, "positive finite"),
        ({"constant_loss_normalizer": float("inf")}, "positive finite"),
        ({"constant_loss_normalizer": "abc"}, "must be a number"),
        ({"use_sample_weights": True}, "use_sample_weights: true needs constant_loss_normalizer"),
        ({"constant_loss_normalizer": 5.0, "use_sample_weights": True, "packing": True, "neat_packing": True}, "neat_packing"),
        ({"constant_loss_normalizer": 5.0, "use_dft_loss": True}, "use_dft_loss"),
    ],
)
def test_bad_recipe_keys_fail_at_parse_time(lf, tiny_model_dir, data_dir, tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        lf.get_train_args(config(tiny_model_dir, data_dir, "reas", tmp_path, **overrides) | overrides)


@pytest.mark.parametrize(
    "dataset, message",
    [
        ("noweight", r"has no weight column 'weight'; its columns are \['question', 'solution', 'think'\]"),
        ("nan", r"row 1, column 'weight': weight must be finite and >= 0, got nan"),
        ("inf", r"row 1, column 'weight': weight must be finite and >= 0, got inf"),
        ("neg", r"row 1, column 'weight': weight must be finite and >= 0, got -0.5"),
    ],
)
def test_bad_weights_fail_while_loading_data(lf, tiny_model_dir, data_dir, tmp_path, dataset, message):
    with pytest.raises(ValueError, match=message):
        lf.process(config(tiny_model_dir, data_dir, dataset, tmp_path, constant_loss_normalizer=5.0, use_sample_weights=True))


def test_wrong_template_for_format_is_named(lf, tiny_model_dir, data_dir, tmp_path):
    with pytest.raises(ValueError, match="use template vr_posterior_a or vr_posterior_b"):
        lf.process(config(tiny_model_dir, data_dir, "post", tmp_path, template="vr_reasoning"))


def test_untested_version_one_warning_and_clear_error(lf, tiny_model_dir, data_dir, tmp_path, monkeypatch, capsys):
    import vr_plugins.hosts.llamafactory as adapter
    from vr_plugins.hosts import _version_guard

    monkeypatch.setattr(adapter, "TESTED_VERSIONS", ("0.0.1",))
    monkeypatch.setattr(_version_guard, "_warned", set())
    adapter.after_exec("llamafactory.data.template", object())
    adapter.after_exec("llamafactory.data.collator", object())
    warnings = [line for line in capsys.readouterr().err.splitlines() if "not a tested version" in line]
    assert len(warnings) == 1 and "llamafactory" in warnings[0]
    import re

    found = re.escape(_version_guard.host_version("llamafactory"))
    with pytest.raises(RuntimeError, match=rf"constant_loss_normalizer needs llamafactory 0\.0\.1; found {found}"):
        lf.get_train_args(config(tiny_model_dir, data_dir, "reas", tmp_path, constant_loss_normalizer=5.0))
    # a recipe without the plugin's keys and templates still parses on an untested version
    args = lf.get_train_args(config(tiny_model_dir, data_dir, "alpaca", tmp_path, template="qwen"))
    assert args[3].constant_loss_normalizer is None


def test_keys_are_documented_in_the_parser(lf):
    import llamafactory.hparams.parser as parser

    fields = {f.name: f for f in __import__("dataclasses").fields(parser._TRAIN_ARGS[3])}
    assert "constant_loss_normalizer" in fields and "use_sample_weights" in fields
    assert "vr-tools normalizer" in fields["constant_loss_normalizer"].metadata["help"]


def test_paper_recipes_parse_with_llamafactory(lf, tmp_path):
    """Every key of the paper recipes is one LLaMA-Factory (plus the plugin) knows; C ships empty."""
    import yaml
    from transformers import HfArgumentParser

    import llamafactory.hparams.parser as parser
    from lf_helpers import REPO

    for name in ("initial", "posterior_a", "posterior_b", "final"):
        recipe = yaml.safe_load((REPO / "recipes/paper" / f"{name}.yaml").read_text())
        assert "constant_loss_normalizer" in recipe and recipe["constant_loss_normalizer"] is None
        assert (REPO / recipe["deepspeed"]).is_file()
        assert recipe["per_device_train_batch_size"] * recipe["gradient_accumulation_steps"] * 16 == 128
        # no DeepSpeed / bf16 / FlashAttention on this CPU machine: only the key names are checked here
        recipe.update(deepspeed=None, bf16=False, output_dir=str(tmp_path), constant_loss_normalizer=1.0)
        args = HfArgumentParser(parser._TRAIN_ARGS).parse_dict(recipe, allow_extra_keys=False)
        assert args[3].constant_loss_normalizer == 1.0
        assert args[3].use_sample_weights is (name == "final")
    backbones = yaml.safe_load((REPO / "recipes/paper/backbones.yaml").read_text())
    assert len(backbones) == 4 and all("model_name_or_path" in b["overrides"] for b in backbones.values())


@pytest.mark.parametrize("switch", ["USE_MCA", "USE_MEGATRON_BRIDGE"])
def test_plugin_keys_are_refused_on_megatron_training_paths(lf, tiny_model_dir, data_dir, tmp_path, monkeypatch, switch):
    """Megatron-based training (MCA, and main's Megatron bridge) uses a trainer the plugin does not patch."""
    from vr_plugins.losses import LossConfigError

    monkeypatch.setenv(switch, "1")
    with pytest.raises(LossConfigError, match=rf"constant_loss_normalizer: not supported with {switch}=1"):
        lf.get_train_args(config(tiny_model_dir, data_dir, "reas", tmp_path, constant_loss_normalizer=5.0))


def test_every_argument_list_with_finetuning_arguments_is_patched():
    """The keys must parse in each of LLaMA-Factory's argument lists that carry FinetuningArguments."""
    import llamafactory.hparams.parser as parser

    from vr_plugins.hosts.llamafactory import hparams

    for name in dir(parser):
        value = getattr(parser, name)
        if name.endswith("_ARGS") and isinstance(value, list) and any(
                getattr(c, "__name__", "").endswith("FinetuningArguments") for c in value):
            assert name in hparams.ARG_LISTS, name
            assert any(getattr(c, "__name__", "") == "VRFinetuningArguments" for c in value), name
