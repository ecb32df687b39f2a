"""Third-party losses, dataset formats and commands, installed through the ``vr_plugins`` entry point,
used by the real hosts.

One interpreter (``tests/lf_multi_run.py``) trains the same step three times with the real LLaMA-Factory:
with the built-in loss; with a plugin loss chosen by the recipe key ``vr_loss`` that doubles it; and with
the built-in loss on the same rows stored under other column names and read by a plugin dataset format.
The logged step-1 losses must be x1, x2 and x1, which only happens when the registry reaches the trainer
and the data loader.
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
        import click

        from vr_plugins.hookspecs import hookimpl
        from vr_plugins.types import Command, DatasetFormat, Loss

        def make(normalizer, scale=1.0):
            from vr_plugins.losses import make_constant_normalizer_loss
            base = make_constant_normalizer_loss(normalizer, scale)
            return lambda logits, labels, token_weights=None: 2.0 * base(logits, labels, token_weights)

        @hookimpl
        def register_losses(register):
            register(Loss(name="doubled", factory=make, description="twice the built-in (a test plugin)"))

        def renamed(row, columns, template=None):
            from vr_plugins.dataset_formats import REASONING_COLUMNS, to_reasoning
            return to_reasoning({"question": row["q"], "think": row["t"], "solution": row["s"]}, REASONING_COLUMNS,
                                template)

        @hookimpl
        def register_dataset_formats(register):
            register(DatasetFormat(name="renamed_reasoning", to_example=renamed))

        @click.command()
        @click.argument("name")
        def hello(name):
            click.echo(f"hello {name} from a plugin command")

        @click.command()
        @click.argument("kind")
        def fail(kind):
            from vr_plugins.errors import UserError
            if kind == "user":
                raise UserError("the file x.parquet has no column 'y'")
            raise RuntimeError("a bug in the plugin")

        @hookimpl
        def register_commands(register):
            register(Command(name="hello", target=hello, help="greets (a test plugin)"))
            register(Command(name="fail", target=fail, help="raises (a test plugin)"))
    '''))
    dist = root / "vr_doubled_loss-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vr-doubled-loss\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vr_plugins]\ndoubled = vr_doubled_loss\n")


def test_recipe_key_chooses_the_loss_and_a_plugin_format_feeds_training(tmp_path, tiny_model_dir):
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    _write_loss_plugin(plugin)
    rows = read_jsonl(REASONING_FILE)
    renamed = [{"q": r["question"], "t": r["think"], "s": r["solution"]} for r in rows]
    data = write_dataset_dir(tmp_path / "data", {"reas": (rows, {"formatting": "vr_reasoning"}),
                                                 "renamed": (renamed, {"formatting": "renamed_reasoning"})})
    common = dict(max_steps=1, constant_loss_normalizer=C)
    configs = {
        "builtin": base_config(tiny_model_dir, data, "reas", tmp_path / "builtin", **common),
        "doubled": base_config(tiny_model_dir, data, "reas", tmp_path / "doubled", vr_loss="doubled", **common),
        "format": base_config(tiny_model_dir, data, "renamed", tmp_path / "format", **common),
    }
    proc = run(["python", str(REPO / "tests" / "lf_multi_run.py"), *write_configs(tmp_path / "cfg", configs)],
               PYTHONPATH=str(plugin))
    assert "'doubled' has no from_hidden(); full logits are computed" in proc.stderr
    builtin, doubled = losses(tmp_path / "builtin")[0], losses(tmp_path / "doubled")[0]
    assert builtin > 0
    assert doubled == pytest.approx(2 * builtin, rel=1e-5)
    assert losses(tmp_path / "format")[0] == pytest.approx(builtin, rel=1e-6)


def test_plugin_command_is_a_vr_tools_subcommand(tmp_path):
    _write_loss_plugin(tmp_path)
    listing = run(["vr-tools", "--help"], PYTHONPATH=str(tmp_path)).stdout
    assert "hello" in listing and "greets (a test plugin)" in listing
    assert run(["vr-tools", "hello", "you"], PYTHONPATH=str(tmp_path)).stdout.strip() == "hello you from a plugin command"


def test_user_errors_are_caught_once_by_the_cli_and_bugs_keep_their_traceback(tmp_path):
    _write_loss_plugin(tmp_path)
    user = run(["vr-tools", "fail", "user"], check=False, PYTHONPATH=str(tmp_path))
    assert user.returncode == 1
    assert user.stderr.strip() == "Error: the file x.parquet has no column 'y'"
    bug = run(["vr-tools", "fail", "bug"], check=False, PYTHONPATH=str(tmp_path))
    assert bug.returncode == 1 and "Traceback (most recent call last)" in bug.stderr
    assert "RuntimeError: a bug in the plugin" in bug.stderr


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
