"""The plugin registry: built-ins, third-party entry points, clear errors, malformed plugins."""

from __future__ import annotations

import textwrap
import warnings

import pytest

from conftest import run
from vr_plugins import plugins
from vr_plugins.hookspecs import hookimpl
from vr_plugins.registry import UnknownNameError, get_template, registry, reset
from vr_plugins.types import Estimator, Template


def test_builtin_plugins_are_registered_through_the_plugin_manager():
    pm = plugins.get_plugin_manager()
    names = {pm.get_name(p) for p in pm.get_plugins()}
    assert set(plugins.DEFAULT_PLUGINS) <= names
    assert {"vr_reasoning", "vr_posterior_a", "vr_posterior_b"} <= set(registry("templates").names())
    assert registry("templates").owner("vr_reasoning") == "vr_plugins.builtin.templates"
    assert "build" in registry("commands")


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(UnknownNameError) as err:
        get_template("vr_reasonin")
    message = str(err.value)
    assert "vr_reasonin" in message and "vr_reasoning" in message and "Did you mean" in message
    with pytest.raises(UnknownNameError, match="Known: templates"):
        registry("nonsense")


class RaisingPlugin:
    @hookimpl
    def register_templates(self, register):
        raise RuntimeError("boom from plugin")


class WrongTypePlugin:
    @hookimpl
    def register_estimators(self, register):
        register({"name": "not-an-estimator"})


class GoodPlugin:
    @hookimpl
    def register_templates(self, register):
        register(Template(name="good_tpl", system="S", user="{question}"))


def test_malformed_plugins_are_reported_by_name_and_others_still_load():
    for name, plugin in (("raiser", RaisingPlugin()), ("wrongtype", WrongTypePlugin()), ("good", GoodPlugin())):
        plugins.register_plugin(plugin, name=name)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            templates = registry("templates")
            estimators = registry("estimators")
        messages = [str(w.message) for w in caught]
        assert any("'raiser'" in m and "boom from plugin" in m for m in messages), messages
        assert any("'wrongtype'" in m and "vr_plugins.types.Estimator" in m for m in messages), messages
        assert "good_tpl" in templates and "vr_reasoning" in templates
        assert "not-an-estimator" not in estimators
    finally:
        for name in ("raiser", "wrongtype", "good"):
            plugins.unregister_plugin(name)
    assert "good_tpl" not in registry("templates")


def test_duplicate_names_are_refused_with_both_owners():
    class Dup:
        @hookimpl
        def register_templates(self, register):
            register(Template(name="vr_reasoning", system="x", user="{question}"))

    plugins.register_plugin(Dup(), name="dup")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            templates = registry("templates")
        assert templates.get("vr_reasoning").system != "x"  # the built-in wins, the duplicate is refused
        assert any("already registered by plugin 'vr_plugins.builtin.templates'" in str(w.message) for w in caught)
    finally:
        plugins.unregister_plugin("dup")
        reset()


def _write_entry_point_plugin(root):
    """A throwaway distribution on sys.path: module + dist-info with a ``vr_plugins`` entry point."""
    (root / "vr_demo_plugin.py").write_text(textwrap.dedent('''
        from vr_plugins.hookspecs import hookimpl
        from vr_plugins.types import Estimator, Template

        def _build(inputs, options):
            raise NotImplementedError

        @hookimpl
        def register_templates(register):
            register(Template(name="demo_plugin_tpl", system="You are terse.", user="Q: {question}"))

        @hookimpl
        def register_estimators(register):
            register(Estimator(name="demo_plugin_est", build=_build, description="from an entry point"))
    '''))
    dist = root / "vr_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vr-demo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vr_plugins]\ndemo = vr_demo_plugin\n")


def test_third_party_entry_point_plugin_is_seen_by_registry_and_host(tmp_path):
    _write_entry_point_plugin(tmp_path)
    code = (
        "from vr_plugins.registry import registry\n"
        "print('est', 'demo_plugin_est' in registry('estimators'), registry('estimators').owner('demo_plugin_est'))\n"
        "import llamafactory.data.template as t\n"
        "print('host', 'demo_plugin_tpl' in t.TEMPLATES, t.TEMPLATES['demo_plugin_tpl'].default_system)\n"
    )
    proc = run(["python", "-c", code], PYTHONPATH=str(tmp_path))
    assert "est True demo" in proc.stdout
    assert "host True You are terse." in proc.stdout


def test_entry_point_that_fails_to_import_is_reported_and_host_starts(tmp_path):
    (tmp_path / "vr_broken_plugin.py").write_text("raise ImportError('broken on purpose')\n")
    dist = tmp_path / "vr_broken_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vr-broken-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vr_plugins]\nbroken = vr_broken_plugin\n")
    code = "import llamafactory.data.template as t; print('vr_reasoning' in t.TEMPLATES)"
    proc = run(["python", "-c", code], PYTHONPATH=str(tmp_path))
    assert proc.stdout.strip().endswith("True")
    assert "plugin 'broken'" in proc.stderr and "broken on purpose" in proc.stderr


def test_estimator_type_is_a_plain_dataclass():
    est = Estimator(name="x", build="json:dumps")
    from vr_plugins.types import resolve

    import json

    assert resolve(est.build) is json.dumps
    with pytest.raises(ValueError, match="module:attribute"):
        resolve("no_colon")


def test_typed_lookups_return_the_registered_types():
    from vr_plugins import registry as r
    from vr_plugins import types as t

    assert isinstance(r.get_loss("constant_normalizer"), t.Loss)
    assert isinstance(r.get_verifier("math"), t.Verifier)
    assert isinstance(r.get_estimator("gml"), t.Estimator)
    assert isinstance(r.get_dataset_format("vr_build"), t.DatasetFormat)
    assert isinstance(r.get_eval_task("vr_math500"), t.EvalTask)
    assert isinstance(r.get_command("build"), t.Command)
    with pytest.raises(UnknownNameError, match="unknown loss 'nope'"):
        r.get_loss("nope")


def test_two_verifiers_claiming_one_family_are_reported_with_both_plugins():
    from vr_plugins.registry import FamilyCollisionWarning, get_verifier_for_family
    from vr_plugins.types import Verifier

    class Rival:
        @hookimpl
        def register_verifiers(self, register):
            register(Verifier(name="rival_math", families=("numina", "rivalonly"), check="json:dumps"))

    plugins.register_plugin(Rival(), name="rival")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            chosen = get_verifier_for_family("numina")
        collisions = [str(w.message) for w in caught if issubclass(w.category, FamilyCollisionWarning)]
        assert len(collisions) == 1, collisions
        message = collisions[0]
        assert "'numina'" in message and "'math'" in message and "'rival_math'" in message
        assert "'vr_plugins.builtin.verifiers'" in message and "'rival'" in message
        assert chosen.name == "rival_math"
        assert get_verifier_for_family("rivalonly").name == "rival_math"
        assert get_verifier_for_family("apps").name == "code"  # families nobody else claims are unchanged
    finally:
        plugins.unregister_plugin("rival")
    assert get_verifier_for_family("numina").name == "math"
    with pytest.raises(UnknownNameError, match="Known families"):
        get_verifier_for_family("rivalonly")


def test_every_hook_has_documentation_and_a_test():
    """datasette's rule: a hook without a docs section in docs/plugins.md or a test using it fails here."""
    import inspect
    from pathlib import Path

    from vr_plugins import hookspecs

    root = Path(__file__).resolve().parent.parent
    docs = (root / "docs" / "plugins.md").read_text()
    sources = [p.read_text() for p in (root / "tests").glob("*.py")]
    sources += [p.read_text() for p in (root / "examples").rglob("*.py")]
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]
    assert len(hooks) == 7, hooks
    undocumented = [h for h in hooks if f"def {h}(register)" not in docs]
    untested = [h for h in hooks if not any(f"def {h}(" in s for s in sources if "hookimpl" in s)]
    assert not undocumented, f"hooks without a section in docs/plugins.md: {undocumented}"
    assert not untested, f"hooks no test or example plugin implements: {untested}"
