"""The training loss is a registry entry chosen by the recipe key ``vr_loss`` (default: the built-in one).

One interpreter (``tests/lf_multi_run.py``) trains the same step twice with the real LLaMA-Factory: once
with the built-in loss, once with a third-party loss installed through the ``vr_plugins`` entry point
that doubles it. The logged step-1 losses must differ by exactly that factor, which only happens when
the recipe key reaches the trainer through the registry.
"""

from __future__ import annotations

import textwrap

import pytest

from conftest import run
from lf_helpers import REASONING_FILE, REPO, base_config, losses, read_jsonl, write_configs, write_dataset_dir

pytestmark = pytest.mark.e2e

C = 400.0


def _write_loss_plugin(root):
    (root / "vr_doubled_loss.py").write_text(textwrap.dedent('''
        from vr_plugins.hookspecs import hookimpl
        from vr_plugins.types import Loss

        def make(normalizer, scale=1.0):
            from vr_plugins.losses import make_constant_normalizer_loss
            base = make_constant_normalizer_loss(normalizer, scale)
            return lambda logits, labels, token_weights=None: 2.0 * base(logits, labels, token_weights)

        @hookimpl
        def register_losses(register):
            register(Loss(name="doubled", factory=make, description="twice the built-in (a test plugin)"))
    '''))
    dist = root / "vr_doubled_loss-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vr-doubled-loss\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vr_plugins]\ndoubled = vr_doubled_loss\n")


def test_recipe_key_chooses_the_registered_loss(tmp_path, tiny_model_dir):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    _write_loss_plugin(plugin)
    data = write_dataset_dir(tmp_path / "data", {"reas": (read_jsonl(REASONING_FILE), {"formatting": "vr_reasoning"})})
    common = dict(max_steps=1, constant_loss_normalizer=C)
    configs = {
        "builtin": base_config(tiny_model_dir, data, "reas", tmp_path / "builtin", **common),
        "doubled": base_config(tiny_model_dir, data, "reas", tmp_path / "doubled", vr_loss="doubled", **common),
    }
    proc = run(["python", str(REPO / "tests" / "lf_multi_run.py"), *write_configs(tmp_path / "cfg", configs)],
               PYTHONPATH=str(plugin))
    assert "'doubled' has no from_hidden(); full logits are computed" in proc.stderr
    builtin, doubled = losses(tmp_path / "builtin")[0], losses(tmp_path / "doubled")[0]
    assert builtin > 0
    assert doubled == pytest.approx(2 * builtin, rel=1e-5)


def test_unknown_loss_name_is_refused_before_training_with_the_known_names(tmp_path, tiny_model_dir):
    data = write_dataset_dir(tmp_path / "data", {"reas": (read_jsonl(REASONING_FILE), {"formatting": "vr_reasoning"})})
    import yaml

    recipe = base_config(tiny_model_dir, data, "reas", tmp_path / "out", max_steps=1, constant_loss_normalizer=C,
                         vr_loss="constant_normaliser")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    proc = run(["llamafactory-cli", "train", str(path)], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "unknown loss 'constant_normaliser'" in out and "Did you mean 'constant_normalizer'" in out
    assert not (tmp_path / "out" / "trainer_state.json").exists()
