"""Docs that cannot drift: every ``vr-tools`` command and option, recipe and repository file named in the
README, docs/ and the recipes' comments must exist, and nothing may cite files outside the repository.

The checks read the text the way a user copies it: ``vr-tools <command> ... --option`` on one line (code
spans, code blocks and prose alike), and repository-relative paths such as ``recipes/tiny/final.yaml``.
Placeholders (``<name>``, ``RUN/``, globs) are skipped.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import click
import pytest

REPO = Path(__file__).resolve().parent.parent
#: files only the developers' private notes had; the project's docs must stand alone
FOREIGN = ("METHOD.md", "DESIGN.md", "UPSTREAM.md", "SEED_README.md")
PATH_ROOTS = ("recipes/", "docs/", "benchmarks/", "tests/", "scripts/", "vr_plugins/", "tools/", "examples/",
              "eval_tasks/", ".ci/")
COMMAND = re.compile(r"vr-tools\s+([a-z][a-z0-9-]*)((?:[^`\n|]*?))(?=`|\n|\||$)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
PATH = re.compile(r"(?<![\w./-])((?:%s)[\w./-]*\w)(?![*<{\w])" % "|".join(re.escape(r) for r in PATH_ROOTS))
#: paths that exist only in an installed wheel (pyproject.toml's force-include), not in the checkout
WHEEL_ONLY = ("vr_plugins/_data",)


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=REPO, capture_output=True, text=True, check=True)
    return [REPO / line for line in out.stdout.splitlines() if (REPO / line).is_file()]


def _doc_files() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *_tracked("recipes/*.yaml", "recipes/*.py")]


def _commands() -> dict[str, click.Command]:
    from vr_tools.cli import cli

    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


def _option_names(command: click.Command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]:
            names.add(opt)
    return names


def test_docs_name_only_existing_commands_and_options():
    commands = _commands()
    problems = []
    for path in _doc_files():
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for match in COMMAND.finditer(line):
                name, rest = match.group(1), match.group(2)
                if name not in commands:
                    problems.append(f"{path.relative_to(REPO)}:{lineno}: no command `vr-tools {name}`")
                    continue
                known = _option_names(commands[name])
                for option in OPTION.findall(rest):
                    if option not in known:
                        problems.append(f"{path.relative_to(REPO)}:{lineno}: `vr-tools {name}` has no option {option}")
    assert not problems, "\n".join(problems)


def test_docs_name_only_existing_files():
    problems = []
    for path in [*_doc_files(), *_tracked("*.py", "*.sh", "Makefile", "*.toml")]:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for ref in PATH.findall(line):
                if any(ch in ref for ch in "<>*{}") or ref.endswith("/") or "..." in ref or ref.startswith(WHEEL_ONLY):
                    continue
                ref = ref.rstrip(".")
                if not (REPO / ref).exists():
                    problems.append(f"{path.relative_to(REPO)}:{lineno}: {ref} does not exist")
    assert not problems, "\n".join(problems)


def test_nothing_cites_files_outside_the_repository():
    problems = []
    for path in [*_doc_files(), *_tracked("*.py", "*.sh", "*.yaml", "*.toml", "Makefile")]:
        if path == Path(__file__):
            continue
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            for name in FOREIGN:
                if re.search(r"(?<![\w/])" + re.escape(name), line):
                    problems.append(f"{path.relative_to(REPO)}:{lineno}: cites {name}, which is not in the repository")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("recipe", sorted(p.name for p in (REPO / "recipes" / "tiny").glob("*.yaml")))
def test_tiny_recipes_name_what_the_pipeline_writes(recipe):
    import yaml

    from vr_plugins.pipeline.reference_data import POSTERIOR_DATASET, REFERENCE_DATASET
    from vr_plugins.registry import registry

    config = yaml.safe_load((REPO / "recipes" / "tiny" / recipe).read_text())
    built = {f"{e}-mix" for e in registry("estimators").names()} | set(registry("estimators").names())
    assert config["dataset"] in {REFERENCE_DATASET, POSTERIOR_DATASET} | built
    # the default model is one a fresh checkout has: the bundled demo base, a loadable model folder
    model = REPO / config["model_name_or_path"]
    assert (model / "config.json").is_file() and (model / "tokenizer_config.json").is_file(), model
