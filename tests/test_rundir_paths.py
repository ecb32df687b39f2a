"""Dataset and model arguments written like a local path fail at once, naming the path (no hub retries)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from vr_plugins.data.common import ModelPathError, check_model_path
from vr_plugins.errors import UserError
from vr_plugins.rundir.paths import looks_like_path
from vr_tools.cli import cli


@pytest.mark.parametrize("text,is_path", [
    ("org/name", False), ("Qwen/Qwen2.5-1.5B-Instruct", False), ("gsm8k", False),
    ("train.jsonl", True), ("org/data.parquet", True), ("./x", True), ("../x/y", True), ("/abs/x", True),
    ("~/x", True), ("a/b/c", True), ("a\\b", True),
])
def test_looks_like_path(text, is_path):
    assert looks_like_path(text) is is_path


@pytest.mark.parametrize("dataset", ["data/typo.jsonl", "data/typo", "typo.json", "./data/x"])
def test_prepare_with_a_mistyped_relative_dataset_fails_at_once(tmp_path, monkeypatch, dataset):
    (tmp_path / "data").mkdir()  # `data/typo` is a hub-shaped id, but data/ is a local folder: a path
    monkeypatch.chdir(tmp_path)
    import datasets

    def no_hub(*a, **k):
        raise AssertionError("the hub was tried")

    monkeypatch.setattr(datasets, "load_dataset", no_hub)
    result = CliRunner().invoke(cli, ["prepare", "--dataset", dataset, "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert f"{dataset} (relative to {tmp_path}): dataset file not found" in result.output
    assert "hub is not tried" in result.output and not (tmp_path / "run").exists()


def test_model_path_like_arguments_fail_and_hub_ids_pass(tmp_path, monkeypatch):
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    for text in ("runs/base", "./base", "models/a/b", "base.safetensors"):
        with pytest.raises(ModelPathError, match="does not exist") as info:
            check_model_path(text, "--model")
        assert isinstance(info.value, UserError) and text.lstrip("./") in str(info.value)
    assert check_model_path("org/name", "--model") == "org/name"
