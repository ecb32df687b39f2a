"""The host-agnostic parts of the LLaMA-Factory integration: loss math and the dataset formats (no host)."""

from __future__ import annotations

import math

import pytest
import torch

from vr_plugins import dataset_formats as df
from vr_plugins import formats
from vr_plugins.losses import (
    LossConfigError,
    constant_normalized_nll,
    first_bad_weight,
    make_constant_normalizer_loss,
    validate_normalizer,
    validate_weight,
)
from vr_plugins.registry import registry

IGNORE = -100


def _batch(seed=0, batch=3, seq=7, vocab=11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, seq, vocab, generator=g, dtype=torch.float64)
    labels = torch.randint(0, vocab, (batch, seq), generator=g)
    labels[:, :2] = IGNORE  # prompt
    labels[1, 5:] = IGNORE  # padding
    weights = torch.rand(batch, seq, generator=g, dtype=torch.float64) + 0.5
    return logits, labels, weights


def _reference(logits, labels, weights, normalizer):
    """Token by token: label t is predicted by the logits at t - 1."""
    total = 0.0
    for b in range(labels.shape[0]):
        for t in range(1, labels.shape[1]):
            if labels[b, t] != IGNORE:
                logp = torch.log_softmax(logits[b, t - 1], dim=-1)[labels[b, t]].item()
                total += -logp * (1.0 if weights is None else weights[b, t].item())
    return total / normalizer


@pytest.mark.parametrize("use_weights", [False, True])
def test_loss_is_weighted_token_nll_sum_over_constant(use_weights):
    logits, labels, weights = _batch()
    w = weights if use_weights else None
    value = constant_normalized_nll(logits, labels, 7.5, w)
    assert value.item() == pytest.approx(_reference(logits, labels, w, 7.5), rel=1e-6)


def test_loss_is_additive_over_any_split_of_the_batch():
    """The property behind GA/DDP invariance: loss(all) == sum of the losses of the parts."""
    logits, labels, weights = _batch(seed=1, batch=4)
    whole = constant_normalized_nll(logits, labels, 3.0, weights)
    parts = sum(constant_normalized_nll(logits[i : i + 1], labels[i : i + 1], 3.0, weights[i : i + 1]) for i in range(4))
    assert whole.item() == pytest.approx(parts.item(), rel=1e-6)  # float32 log-softmax


def test_loss_gradient_and_empty_selection():
    logits, labels, _ = _batch()
    logits.requires_grad_(True)
    constant_normalized_nll(logits, labels, 2.0).backward()
    # logits at t predict label t + 1: position 0 predicts an ignored prompt label, the last predicts nothing
    assert logits.grad[:, 0].abs().sum() == 0 and logits.grad[:, -1].abs().sum() == 0
    assert logits.grad[0, 1].abs().sum() > 0
    empty = constant_normalized_nll(logits, torch.full_like(labels, IGNORE), 2.0)
    assert empty.item() == 0.0 and empty.requires_grad


def test_scale_and_weight_shape_check():
    logits, labels, weights = _batch()
    base = make_constant_normalizer_loss(4.0)(logits, labels)
    assert make_constant_normalizer_loss(4.0, scale=2.0)(logits, labels).item() == pytest.approx(2 * base.item())
    with pytest.raises(LossConfigError, match="token weights have shape"):
        constant_normalized_nll(logits, labels, 4.0, weights[:, :-1])


@pytest.mark.parametrize("value", [None, 0, -1.0, float("nan"), float("inf"), True, "12"])
def test_bad_normalizer(value):
    with pytest.raises(LossConfigError, match="constant_loss_normalizer"):
        validate_normalizer(value)


def test_good_normalizer_and_weights():
    assert validate_normalizer(12) == 12.0
    assert validate_weight(0, "x") == 0.0
    assert first_bad_weight([1.0, 0.0, 2]) is None
    assert first_bad_weight([1.0, -1.0, float("nan")]) == (1, -1.0)
    assert first_bad_weight([1.0, None]) == (1, None)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, True, "1"])
def test_bad_weight(value):
    with pytest.raises(LossConfigError, match="row 3"):
        validate_weight(value, "row 3")


# --- dataset formats --------------------------------------------------------------------------------

ROW = {"question": "What is 1+1?", "think": "1+1=2.", "solution": "\\boxed{2}", "weight": 0.5}


def test_formats_are_registered():
    assert {"vr_reasoning", "vr_posterior", "vr_build"} <= set(registry("dataset_formats").names())
    assert "constant_normalizer" in registry("losses")


def test_reasoning_row():
    out = df.to_reasoning(ROW, df.REASONING_COLUMNS)
    assert out == {
        "system": formats.REASONING_SYSTEM_PROMPT,
        "user": ROW["question"],
        "response": formats.render_response(ROW["think"], ROW["solution"]),
        "weight": 0.5,
    }
    assert df.to_reasoning(dict(ROW, system="Be brief."), df.REASONING_COLUMNS)["system"] == "Be brief."


def test_posterior_rows_use_the_named_template():
    for template in (formats.POSTERIOR_A, formats.POSTERIOR_B):
        out = df.to_posterior(ROW, df.POSTERIOR_COLUMNS, template)
        assert (out["system"], out["user"]) == template.format_fields(ROW["question"], ROW["solution"])
        assert out["response"] == ROW["think"] + formats.END_OF_THOUGHT
    with pytest.raises(df.DatasetFormatError, match="vr_posterior_a or vr_posterior_b"):
        df.to_posterior(ROW, df.POSTERIOR_COLUMNS, formats.REASONING)
    with pytest.raises(df.DatasetFormatError, match="posterior template"):
        df.to_reasoning(ROW, df.REASONING_COLUMNS, formats.POSTERIOR_A)


def test_build_row_and_column_mapping():
    row = {"prompt_idx": 3, "q": "Why?", "response": "Because.", "w": 2.0}
    out = df.to_build(row, {**df.BUILD_COLUMNS, "question": "q", "weight": "w"})
    assert out == {"system": formats.REASONING_SYSTEM_PROMPT, "user": "Why?", "response": "Because.", "weight": 2.0}
    assert df.to_build({"question": "a", "response": "b"}, df.BUILD_COLUMNS)["weight"] is None


def test_missing_column_is_named_with_the_mapping_hint():
    with pytest.raises(df.DatasetFormatError, match=r"column 'think' \(for 'think'\) is missing.*\"columns\""):
        df.to_reasoning({"question": "q", "solution": "s"}, df.REASONING_COLUMNS)
    with pytest.raises(LossConfigError, match="finite"):
        df.to_build({"question": "a", "response": "b", "weight": math.nan}, df.BUILD_COLUMNS)


# --- vr-tools normalizer: bad input fails before any host import ---------------------------------------


def test_normalizer_cli_bad_input(tmp_path):
    from conftest import run

    recipe = tmp_path / "r.yaml"
    recipe.write_text("per_device_train_batch_size: 0\n")
    good = tmp_path / "good.yaml"
    good.write_text("per_device_train_batch_size: 2\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset_info.json").write_text("{}")
    common = ["vr-tools", "normalizer", "--dataset", "x", "--model", "m"]
    cases = [
        (["--dataset-dir", str(tmp_path / "data"), "--recipe", str(tmp_path / "missing.yaml")], "does not exist"),
        (["--dataset-dir", str(tmp_path), "--recipe", str(good)], "has no dataset_info.json"),
        (["--dataset-dir", str(tmp_path / "data"), "--recipe", str(recipe)], "per_device_train_batch_size must be a positive integer"),
    ]
    for extra, message in cases:
        result = run([*common, *extra], check=False)
        assert result.returncode != 0 and message in result.stderr, result.stderr


# --- the loss from the final hidden states (no [tokens x vocab] logits) ----------------------------------


def _hidden_batch(seed=0, batch=3, seq=40, hidden=16, vocab=500):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(batch, seq, hidden, generator=g).requires_grad_(True)
    w = torch.randn(vocab, hidden, generator=g).requires_grad_(True)
    labels = torch.randint(0, vocab, (batch, seq), generator=g)
    labels[:, :4] = IGNORE
    labels[1, 30:] = IGNORE
    weights = torch.rand(batch, seq, generator=g) + 0.5
    weights[2] = 0.0  # a zero-weight example: skipped, contributes nothing
    return h, w, labels, weights


def _value_and_grads(fn, h, w):
    h.grad = w.grad = None
    value = fn()
    value.backward()
    return value.item(), h.grad.clone(), w.grad.clone()


@pytest.mark.parametrize("use_weights", [False, True])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_hidden_state_loss_equals_the_logits_loss(use_weights, chunk):
    """Value and both gradients equal the logits loss (float32), whatever the chunking."""
    from vr_plugins.lm_head import ChunkBuffers
    from vr_plugins.losses import constant_normalized_nll_from_hidden

    h, w, labels, weights = _hidden_batch()
    tw = weights if use_weights else None
    want = _value_and_grads(lambda: constant_normalized_nll(h @ w.t(), labels, 9.0, tw), h, w)
    got = _value_and_grads(
        lambda: constant_normalized_nll_from_hidden(h, w, labels, 9.0, tw, buffers=ChunkBuffers(chunk), use_liger=False), h, w)
    assert got[0] == pytest.approx(want[0], rel=1e-6)
    for a, b in zip(got[1:], want[1:]):
        assert float((a - b).abs().max()) <= 1e-6 * max(1.0, float(b.abs().max()))
    if use_weights:
        assert float(got[1][2].abs().max()) == 0.0  # the zero-weight example gets no gradient


def test_hidden_state_loss_all_ignored_and_no_grad():
    from vr_plugins.losses import constant_normalized_nll_from_hidden

    h, w, labels, _ = _hidden_batch()
    empty = constant_normalized_nll_from_hidden(h, w, torch.full_like(labels, IGNORE), 2.0, use_liger=False)
    assert empty.item() == 0.0 and empty.requires_grad
    empty.backward()
    assert float(w.grad.abs().max()) == 0.0
    with torch.no_grad():  # evaluation: the value only, no gradient work
        value = constant_normalized_nll_from_hidden(h, w, labels, 2.0, use_liger=False)
    assert value.item() == pytest.approx(constant_normalized_nll(h @ w.t(), labels, 2.0).item(), rel=1e-6)


def test_liger_path_groups_rows_by_weight(monkeypatch):
    """Liger weighs classes, not tokens: one fused call per distinct weight, summed. Checked with a
    stand-in for Liger's function (the real kernel needs a CUDA device, which this machine lacks)."""
    import sys
    import types

    from vr_plugins.losses import constant_normalized_nll_from_hidden

    calls = []

    def fake_fused(rows, weight, targets, reduction="mean"):
        assert reduction == "sum"
        calls.append(len(rows))
        return torch.nn.functional.cross_entropy(rows @ weight.t(), targets, reduction="sum"), None

    functional = types.ModuleType("liger_kernel.transformers.functional")
    functional.liger_fused_linear_cross_entropy = fake_fused
    monkeypatch.setitem(sys.modules, "liger_kernel", types.ModuleType("liger_kernel"))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers", types.ModuleType("liger_kernel.transformers"))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers.functional", functional)
    h, w, labels, weights = _hidden_batch()
    per_example = weights[:, :1].expand_as(weights).clone()  # one weight per example, as the collator makes
    want = _value_and_grads(lambda: constant_normalized_nll(h @ w.t(), labels, 5.0, per_example), h, w)
    got = _value_and_grads(lambda: constant_normalized_nll_from_hidden(h, w, labels, 5.0, per_example, use_liger=True), h, w)
    assert len(calls) == 2  # one call per distinct non-zero weight (the zero-weight example is skipped)
    assert got[0] == pytest.approx(want[0], rel=1e-6)
    assert float((got[2] - want[2]).abs().max()) <= 1e-5


def test_output_layer_patch_returns_the_loss_in_training_only(tiny_model_dir):
    """The patched lm_head of a real transformers model: in training it returns the loss (equal to the
    logits loss, same gradients); in eval mode or without a pending batch, the logits as before."""
    from transformers import AutoModelForCausalLM

    from vr_plugins.hosts.llamafactory.trainer import FusedOutputLayer, unsupported_reason

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert unsupported_reason(model) is None
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (2, 24), generator=g)
    labels = ids.clone()
    labels[:, :6] = IGNORE
    weights = torch.tensor([[0.5] * 24, [2.0] * 24])
    loss = make_constant_normalizer_loss(11.0, scale=2.0)
    model.train()
    want = loss(model(input_ids=ids).logits, labels, weights)
    want.backward()
    want_grad = model.lm_head.weight.grad.clone()
    model.zero_grad()
    fused = FusedOutputLayer.install(model, loss, weights_required=True)
    fused.begin(labels, weights)
    out = model(input_ids=ids).logits
    assert out.dim() == 0 and fused.ran and fused.pending is None
    assert out.item() == pytest.approx(want.item(), rel=1e-6)
    out.backward()
    assert float((model.lm_head.weight.grad - want_grad).abs().max()) <= 1e-5
    fused.end()
    assert model(input_ids=ids).logits.shape == (2, 24, model.config.vocab_size)  # nothing pending: logits
    with pytest.raises(RuntimeError, match="use_sample_weights is on but the batch carries no weights"):
        fused.begin(labels, None)
    model.config.final_logit_softcapping = 30.0
    assert "final_logit_softcapping" in unsupported_reason(model)


def test_auto_normalizer_is_kept_for_the_trainer_and_refused_when_streaming(monkeypatch):
    from types import SimpleNamespace

    from vr_plugins.hosts.llamafactory import hparams

    def args(streaming):
        finetuning = SimpleNamespace(constant_loss_normalizer="auto", use_sample_weights=False, stage="sft")
        data = SimpleNamespace(streaming=streaming, neat_packing=False)
        return SimpleNamespace(), data, SimpleNamespace(label_smoothing_factor=0.0), finetuning

    with pytest.raises(LossConfigError, match="auto cannot count a streamed dataset"):
        hparams.validate(*args(True))
    model, data, training, finetuning = args(False)
    monkeypatch.setattr(hparams, "_require_patches", lambda weights: None)  # no LLaMA-Factory import here
    hparams.validate(model, data, training, finetuning)
    assert finetuning.constant_loss_normalizer == "auto" and finetuning._vr_data_args is data


def test_hidden_state_loss_under_mixed_dtypes():
    """bf16 hidden states (autocast) with float32 weights: multiply in bf16, gradients in each input's dtype,
    the value within bf16 rounding of the float32 loss."""
    from vr_plugins.losses import constant_normalized_nll_from_hidden

    h, w, labels, weights = _hidden_batch()
    want = constant_normalized_nll(h @ w.t(), labels, 3.0, weights).item()
    hb = h.detach().bfloat16().requires_grad_(True)
    got = constant_normalized_nll_from_hidden(hb, w, labels, 3.0, weights, use_liger=False)
    got.backward()
    assert hb.grad.dtype == torch.bfloat16 and w.grad.dtype == torch.float32
    assert got.item() == pytest.approx(want, rel=2e-2)
