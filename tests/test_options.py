"""Options declared once (vr_plugins.options, vr_plugins.estimators.options): the command line, the pipeline
config, the study and the library agree with the dataclasses; user errors are caught once by the CLI."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from vr_plugins import options as O
from vr_plugins.errors import UserError
from vr_plugins.estimators import options as EO
from vr_tools._options import OVERRIDES_ATTR, SOURCE_ATTR, cli_default
from vr_tools.cli import cli

TOOLS = Path(__file__).resolve().parent.parent / "tools" / "vr_tools"
COMMANDS = ["sample", "rollout", "score", "verify", "build", "report", "evaluate", "prepare", "study", "demo",
            "pipeline", "normalizer", "reference_data", "eval_summary", "tiny_model", "paths", "plugins"]
#: options of the data steps that are not step parameters (inputs, outputs, run control): not in a dataclass
NOT_DATACLASS_BACKED = {"run_dir", "model", "prior", "posterior", "engine_args", "shard", "force", "options", "out",
                        "estimator", "dataset", "tests_from"}


def _commands():
    return {name: importlib.import_module(f"vr_tools.{name}").command for name in COMMANDS}


def _sourced(command):
    return [(p, getattr(p, SOURCE_ATTR)) for p in command.params if hasattr(p, SOURCE_ATTR)]


def test_every_dataclass_backed_option_matches_its_field():
    """Default, help, choices and lower bound of each generated option are its dataclass field's."""
    checked = 0
    for name, command in _commands().items():
        for param, (cls, field_name) in _sourced(command):
            field = O.option_field(cls, field_name)
            where = f"vr-tools {command.name} {param.opts[0]} ({cls.__name__}.{field_name})"
            assert param.default == cli_default(cls, field_name), where
            if "help" not in getattr(param, OVERRIDES_ATTR):
                assert param.help == field.metadata["help"], where
            if "choices" in field.metadata:
                assert isinstance(param.type, click.Choice), where
                assert tuple(param.type.choices) == tuple(field.metadata["choices"]), where
            if "min" in field.metadata:
                assert param.type.min == field.metadata["min"], where
            checked += 1
    assert checked >= 40


@pytest.mark.parametrize("name", ["prepare", "sample", "rollout", "score", "verify", "build"])
def test_step_parameters_come_from_the_dataclasses(name):
    """A step parameter declared with a literal click.option (a second source of truth) fails here."""
    command = _commands()[name]
    literal = [p.name for p in command.params
               if isinstance(p, click.Option) and not hasattr(p, SOURCE_ATTR) and p.name not in NOT_DATACLASS_BACKED]
    assert literal == [], f"vr-tools {name}: options not declared in vr_plugins.options: {literal}"


def test_pipeline_config_library_and_study_defaults_are_the_dataclasses():
    from vr_plugins.data.generation import SamplingParams
    from vr_plugins.estimators.options import BuildOptions
    from vr_plugins.pipeline.config import EvalConfig, PipelineConfig, SamplingConfig
    from vr_plugins.study.arms import TINY, pipeline_config

    sampling = dataclasses.asdict(O.SAMPLING)
    assert dataclasses.asdict(SamplingConfig()) == sampling
    assert dataclasses.asdict(SamplingParams()) == sampling
    config = PipelineConfig()
    assert config.num_rollouts == O.ROLLOUT.n and config.mix == O.BUILD.mix
    assert config.max_think_tokens == EO.CANDIDATES.max_think_tokens
    assert config.backend == O.GENERATION.backend and config.tensor_parallel_size == O.GENERATION.tensor_parallel_size
    assert (EvalConfig().temperature, EvalConfig().top_p) == (O.SAMPLING.temperature, O.SAMPLING.top_p)
    assert BuildOptions() == BuildOptions(**dataclasses.asdict(EO.CANDIDATES), **dataclasses.asdict(EO.ACC),
                                          **dataclasses.asdict(EO.SNIS))
    study = pipeline_config(TINY, 0, "b", Path("data"), Path("base"), None)
    for key in ("sampling", "rollout_sampling"):
        assert (study[key]["temperature"], study[key]["top_p"]) == (O.SAMPLING.temperature, O.SAMPLING.top_p)


def _signature_defaults(func) -> dict:
    import inspect

    return {k: p.default for k, p in inspect.signature(func).parameters.items() if p.default is not p.empty}


def test_library_step_functions_default_to_the_dataclasses():
    """The step functions' own keyword defaults (what a Python caller gets) are the command's defaults."""
    from vr_plugins.data.common import parse_seeds
    from vr_plugins.data.generation import SamplingParams
    from vr_plugins.data.prepare import prepare
    from vr_plugins.data.rollout import rollout
    from vr_plugins.data.sampling import sample
    from vr_plugins.data.scoring import score
    from vr_plugins.verify.step import verify

    def check(func, cls, renamed=None, skip=()):
        defaults = _signature_defaults(func)
        for f in dataclasses.fields(cls):
            if f.name in skip:
                continue
            arg = (renamed or {}).get(f.name, f.name)
            assert defaults[arg] == f.default, f"{func.__name__}({arg}=...) vs {cls.__name__}.{f.name}"

    generation = {"backend", "dtype", "tensor_parallel_size", "gpu_memory_utilization"}
    check(prepare, O.PrepareOptions, {"format": "fmt"})
    check(sample, O.SampleOptions, skip={"seeds"})
    check(sample, O.GenerationOptions, skip={"batch_size"})
    check(rollout, O.RolloutOptions)
    check(rollout, O.GenerationOptions, skip={"batch_size"})
    check(score, O.ScoreOptions)
    check(verify, O.VerifyOptions, {"timeout": "timeout_s", "code_timeout": "code_timeout_s"})
    for func in (sample, rollout):
        defaults = _signature_defaults(func)
        assert defaults["batch_size"] == O.default_batch_size(None, "hf")
        assert defaults["params"] == SamplingParams()
        assert {k: defaults[k] for k in generation} == {k: getattr(O.GENERATION, k) for k in generation}
    assert list(_signature_defaults(sample)["seeds"]) == parse_seeds(O.SAMPLE.seeds)


def test_build_options_keep_the_manifest_parameters():
    """The build step records asdict(BuildOptions) in the manifest: same keys and order as before the split."""
    assert [f.name for f in dataclasses.fields(EO.BuildOptions)] == [
        "max_think_tokens", "fallback_families", "seed", "resample", "log_weight", "extra"]


def test_config_value_of_the_wrong_type_names_the_key(tmp_path):
    from vr_plugins.pipeline.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text('num_traces: "8"\ndataset: {path: x.jsonl}\n')
    with pytest.raises(ConfigError, match=r"num_traces must be int, got '8' \(str\)"):
        load_config(path)
    path.write_text("sampling: {temperature: warm}\ndataset: {path: x.jsonl}\n")
    with pytest.raises(ConfigError, match=r"sampling.temperature must be float, got 'warm'"):
        load_config(path)


def test_estimator_options_from_extra():
    @dataclasses.dataclass(frozen=True)
    class Mine:
        k: int = O.option(3, "how many")
        scale: float | None = O.option(None, "a scale")
        mode: str = O.option("a", "a mode", choices=("a", "b"))
        on: bool = O.option(False, "a switch")

    assert EO.from_extra(Mine, {}) == Mine()
    assert EO.from_extra(Mine, {"k": "5", "scale": "0.5", "mode": "b", "on": "true"}) == Mine(5, 0.5, "b", True)
    for extra, message in (({"kk": "1"}, "unknown option"), ({"k": "x"}, "expected int"),
                           ({"mode": "c"}, "choose one of a, b")):
        with pytest.raises(EO.EstimatorOptionError, match=message) as info:
            EO.from_extra(Mine, extra, owner="mine")
        assert isinstance(info.value, UserError) and "mine" in str(info.value)


# --- one user-error type, caught once ----------------------------------------------------------------------
def test_no_command_maps_errors_itself():
    """Only vr_tools/cli.py turns exceptions into messages; a command's own ``except (...)`` or
    ``ClickException`` would be a second, diverging list."""
    offenders = []
    for path in sorted(TOOLS.glob("*.py")):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and "exit(" in ast.unparse(node):
                offenders.append(f"{path.name}:{node.lineno}: except {ast.unparse(node.type)} ... exit")
            if isinstance(node, ast.Attribute) and node.attr == "ClickException":
                offenders.append(f"{path.name}:{node.lineno}: ClickException")
    assert offenders == []


def test_user_error_is_a_message_with_exit_1_and_a_bug_keeps_its_traceback(tmp_path, monkeypatch):
    import vr_plugins.pipeline.reference_data as reference_data

    result = CliRunner().invoke(cli, ["reference-data", "--run-dir", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "Error:" in result.output and "questions.parquet" in result.output

    def bug(run_dir):
        raise RuntimeError("a bug")

    monkeypatch.setattr(reference_data, "write_reference_datasets", bug)
    result = CliRunner().invoke(cli, ["reference-data", "--run-dir", str(tmp_path)])
    assert isinstance(result.exception, RuntimeError) and "Error:" not in result.output


def test_estimator_option_errors_are_user_errors():
    from vr_plugins.estimators.options import BuildOptions, EstimatorOptionError
    from vr_plugins.estimators.snis import log_weights

    inputs = types.SimpleNamespace(traces=types.SimpleNamespace())
    with pytest.raises(EstimatorOptionError, match="unknown log_weight 'x'"):
        log_weights(inputs, "x")
    assert issubclass(EstimatorOptionError, UserError) and BuildOptions(log_weight="iwae").log_weight == "iwae"
