"""Shared fixtures: tiny local models (cached per session), offline environment, CLI helpers.

Set ``VR_TEST_CACHE=/some/dir`` to keep the built models between pytest sessions.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_DISABLED": "true",
    "DISABLE_VERSION_CHECK": "0",
}
os.environ.update(OFFLINE_ENV)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    root = os.environ.get("VR_TEST_CACHE")
    if root:
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_model_dir(model_cache) -> Path:
    """Random-weight tiny Qwen2 LM with a small locally trained BPE tokenizer (fast)."""
    from vr_plugins.tiny import build_tiny_model

    return build_tiny_model(model_cache / "tiny-bpe", tokenizer="bpe")


@pytest.fixture(scope="session")
def tiny_qwen_model_dir(model_cache) -> Path:
    """Random-weight tiny Qwen2 LM with the real Qwen2.5 vocabulary (151,665 tokens)."""
    from vr_plugins.tiny import build_tiny_model

    return build_tiny_model(model_cache / "tiny-qwen", tokenizer="qwen")


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(cmd: list[str], cwd=None, check=True, timeout=900, **env) -> subprocess.CompletedProcess:
    """Run a command of this environment (``vr-tools``, ``llamafactory-cli``, ``skythought``, python)."""
    if cmd[0] in ("vr-tools", "llamafactory-cli", "skythought", "python"):
        cmd = [str(BIN / cmd[0]) if cmd[0] != "python" else sys.executable, *cmd[1:]]
    proc = subprocess.run(cmd, cwd=cwd, env=subprocess_env(**env), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n--- stdout\n{proc.stdout[-4000:]}\n"
            f"--- stderr\n{proc.stderr[-6000:]}"
        )
    return proc
