"""Auto-activation through the .pth file, the kill switch, explicit install, and import hygiene."""

from __future__ import annotations

import json

from conftest import run

HEAVY = ("torch", "transformers", "llamafactory", "skythought", "datasets", "vllm")


def test_pth_activates_llamafactory_templates_without_importing_vr_plugins():
    code = "import llamafactory.data.template as t; print('vr_reasoning' in t.TEMPLATES)"
    assert run(["python", "-c", code]).stdout.strip().endswith("True")
    assert run(["python", "-c", code], VR_PLUGINS_DISABLE="1").stdout.strip().endswith("False")


def test_pth_applies_skythought_shims_and_kill_switch_removes_them():
    code = "import skythought.evals.tasks as t; print('tasks', len(t.TASK_HANDLER_MAP) > 0)"
    assert "tasks True" in run(["python", "-c", code]).stdout
    proc = run(["python", "-c", code], check=False, VR_PLUGINS_DISABLE="1")
    # Negative control: upstream 0.1.0 cannot import on Python 3.11 without the shims.
    assert proc.returncode != 0 and ("pyext" in proc.stderr or "getargspec" in proc.stderr)


def test_explicit_install_patches_an_already_imported_host():
    code = (
        "import llamafactory.data.template as t\n"
        "before = 'vr_reasoning' in t.TEMPLATES\n"
        "import vr_plugins\n"
        "patched = vr_plugins.install()\n"
        "print(before, 'vr_reasoning' in t.TEMPLATES, 'llamafactory.data.template' in patched)\n"
    )
    assert run(["python", "-c", code], VR_PLUGINS_DISABLE="1").stdout.strip().endswith("False True True")


def test_importing_the_library_and_loading_every_registry_imports_no_heavy_module():
    code = (
        "import sys, json\n"
        "import vr_plugins, vr_plugins.formats, vr_plugins.registry as r, vr_plugins.rundir.parts\n"
        "for kind in r.KINDS: r.registry(kind)\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    assert json.loads(run(["python", "-c", code]).stdout.strip().splitlines()[-1]) == []


def test_cli_help_imports_no_heavy_module():
    code = (
        "import sys, json\n"
        "from vr_tools.cli import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    assert json.loads(run(["python", "-c", code]).stdout.strip().splitlines()[-1]) == []


def test_missing_optional_host_does_not_break_the_library():
    code = (
        "import sys\n"
        "sys.modules['llamafactory'] = None; sys.modules['skythought'] = None\n"
        "import vr_plugins; vr_plugins.install()\n"
        "from vr_plugins.registry import registry\n"
        "print(registry('templates').names())\n"
    )
    assert "vr_reasoning" in run(["python", "-c", code]).stdout


def test_version_guard_warns_once_and_errors_on_use(capsys):
    import pytest

    from vr_plugins.hosts import _version_guard as guard

    guard._warned.discard("llamafactory")
    assert guard.warn_if_untested("llamafactory", ("0.0.1",)) is False
    assert guard.warn_if_untested("llamafactory", ("0.0.1",)) is False
    err = capsys.readouterr().err
    assert err.count("is not a tested version") == 1 and "0.0.1" in err
    with pytest.raises(guard.UntestedHostError, match="0.0.1"):
        guard.require_tested("llamafactory", ("0.0.1",), "constant_loss_normalizer")
    from vr_plugins.hosts.versions import TESTED

    guard.require_tested("llamafactory", TESTED["llamafactory"], "constant_loss_normalizer")  # the installed one


def test_untested_transformers_warns_once_when_llamafactory_loads(tmp_path):
    """The LLaMA-Factory adapter reports a transformers outside the tested table once, and keeps going."""
    code = (
        "from vr_plugins.hosts import versions\n"
        "versions.TESTED['transformers'] = ('0.0.1',)\n"
        "import llamafactory.data.template as t, llamafactory.hparams.parser\n"
        "print('vr_reasoning' in t.TEMPLATES)\n"
    )
    proc = run(["python", "-c", code])
    assert proc.stdout.strip().endswith("True")
    assert proc.stderr.count("transformers") >= 1
    assert proc.stderr.count("is not a version variational-reasoning was tested with (tested: 0.0.1") == 1


def test_tested_versions_are_one_table():
    from vr_plugins.hosts import llamafactory, versions

    assert llamafactory.TESTED_VERSIONS is versions.TESTED["llamafactory"]
    import importlib.metadata as md

    assert md.version("transformers") in versions.TESTED["transformers"]  # the setup installs a tested one
