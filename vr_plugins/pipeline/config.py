"""The pipeline config: one YAML file, validated before any work (unknown keys get a suggestion).

Every field has a default, so a config only states what differs. Defaults shared with the ``vr-tools``
steps (sampling, rollouts, the length cap) are read from the options dataclasses
(:mod:`vr_plugins.options`, :mod:`vr_plugins.estimators.options`), so the pipeline and the command line
cannot disagree. Paths are resolved relative to the config file; recipe paths are relative to the
installed ``recipes/`` folder (``vr-tools paths``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vr_plugins.estimators.options import CANDIDATES
from vr_plugins.options import BACKENDS, BUILD, GENERATION, ROLLOUT, SAMPLING
from vr_plugins.pipeline.engines import EnvsConfig, VLLMConfig
from vr_plugins.pipeline.errors import ConfigError
from vr_plugins.pipeline.layout import LAUNCHERS, check_layout


@dataclass
class DatasetConfig:
    path: str = ""  #: source dataset (Bespoke-Stratos layout or generic JSONL/Parquet)
    format: str = "auto"  #: passed to ``vr-tools prepare --format``
    limit: int | None = None  #: keep only the first N rows (smoke runs)


@dataclass
class SamplingConfig:
    """``sampling:`` (vr-tools sample) and ``rollout_sampling:`` (vr-tools rollout): :class:`SamplingOptions`."""

    temperature: float = SAMPLING.temperature
    top_p: float = SAMPLING.top_p
    max_new_tokens: int = SAMPLING.max_new_tokens


@dataclass
class TrainConfig:
    initial: str = "tiny/initial.yaml"  #: recipe for pi_0 (relative to recipes/)
    posterior: str = "tiny/posterior_b.yaml"  #: recipe for q (template A or B)
    final: str = "tiny/final.yaml"  #: recipe for pi_theta on a built dataset
    overrides: dict[str, Any] = field(default_factory=dict)  #: recipe keys overridden in every training
    num_gpus: int = 1  #: total GPUs of one training (for the normaliser's global batch size)
    env: dict[str, str | int | float | bool] = field(default_factory=dict)  #: extra environment of every training (NCCL_*, ...; the launcher sets the torchrun variables)
    final_from: str = "base"  #: the final model starts from the base model (the paper's -mix setup) or "initial"
    skip_initial: str | None = None  #: use this checkpoint as pi_0 instead of training it
    skip_posterior: str | None = None  #: use this checkpoint as q instead of training it


@dataclass
class VerifyConfig:
    workers: int = 0  #: 0 = number of cores (vr-tools verify's default)
    #: vr-tools verify --timeout (math CPU seconds). Not the command's default (VerifyOptions.timeout, 5.0):
    #: kept as it was, since changing it changes the grades (and fingerprint) of existing configs
    timeout: float = 6.0


@dataclass
class EvalConfig:
    tasks: dict[str, int] = field(default_factory=lambda: {"vr_math500": 2})  #: task -> samples per problem
    backend: str = "local"  #: local (transformers, CPU) or skythought (vLLM)
    data_dir: str | None = None  #: VR_EVAL_DATA_DIR: local task files instead of the hub
    models: list[str] = field(default_factory=lambda: ["initial", "final"])
    temperature: float = SAMPLING.temperature
    top_p: float = SAMPLING.top_p
    max_new_tokens: int = 38912  #: the paper's evaluation budget (not vr-tools evaluate's CPU default)
    tensor_parallel_size: int = 1
    dtype: str = "float32"  #: vLLM dtype of the skythought backend (the paper evaluates in float32)


@dataclass
class ClusterConfig:
    nodes: int = 1  #: machines of one training
    gpus_per_node: int = 1  #: GPUs (torchrun processes) per machine
    master_addr: str = ""  #: torchrun launcher: node 0's address (slurm: the allocation's first host)
    master_port: int = 29500  #: the trainings' rendezvous port (fixed, so every node agrees)
    data_tasks: int = 0  #: shards per data step; 0 = nodes * gpus_per_node / tensor_parallel_size
    sbatch: list[str] = field(default_factory=list)  #: extra sbatch options, e.g. --partition=gpu
    request_gpus: bool = True  #: slurm: ask for the GPUs (--gpus-per-node / --gpus-per-task); false on CPU clusters


#: ``posterior_template`` value that samples the traces from pi_0 with the reasoning prompt (no posterior
#: model): with the ``rft`` estimator this is the RFT baseline of the paper (rejection sampling from pi_0).
PRIOR_SAMPLING = "prior"


@dataclass
class PipelineConfig:
    name: str = "run"
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    base_model: str = "tiny"  #: a local path or hub id; "tiny" builds the embedded tiny model
    posterior_template: str = "b"  #: a, b, or "prior": traces from pi_0 itself (the paper's RFT baseline)
    num_traces: int = 8  #: K traces per question (seeds 0..K-1)
    num_rollouts: int = ROLLOUT.n  #: n continuations per trace (acc, rft)
    estimators: list[str] = field(default_factory=lambda: ["gml"])
    mix: bool = BUILD.mix
    max_think_tokens: int = CANDIDATES.max_think_tokens
    backend: str = GENERATION.backend  #: sample/score/rollout backend: hf or vllm
    #: vllm backend: GPUs per model replica in sample/score/rollout
    tensor_parallel_size: int = GENERATION.tensor_parallel_size
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    rollout_sampling: SamplingConfig = field(default_factory=SamplingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    launcher: str = "local"  #: local | torchrun | slurm (docs/pipeline.md, "Run it on your cluster")
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)  #: vLLM engine settings (pipeline/engines.py)
    envs: EnvsConfig = field(default_factory=EnvsConfig)  #: which environment runs which stage

    # --- derived --------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(to_dict(self), sort_keys=True).encode()).hexdigest()[:16]


def to_dict(config) -> dict[str, Any]:
    return dataclasses.asdict(config)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_type(value: Any, tp, key: str, source) -> None:
    """The file's (or an override's) value against the field's annotation: ints are floats too, bools
    are not ints, ``X | None`` accepts null, ``dict[str, V]`` and ``list[V]`` check their items."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        inner = [a for a in args if a is not type(None)]
        errors = []
        for option in inner:
            try:
                _check_type(value, option, key, source)
                return
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        for k, v in value.items():
            _check_type(k, args[0], f"{key} key", source)
            _check_type(v, args[1], f"{key}.{k}", source)
        return
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        for i, v in enumerate(value):
            _check_type(v, args[0], f"{key}[{i}]", source)
        return
    ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str),
          bool: lambda v: isinstance(v, bool)}.get(tp, lambda v: True)
    if not ok(value):
        raise ConfigError(f"{source}: {key} must be {_type_name(tp)}, got {value!r} ({type(value).__name__})")


def _build(cls, data: Any, where: str, source: Path):
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {where or 'the config'} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{source}: unknown key {(where + '.' if where else '') + str(key)!r}.{hint} "
                f"Known keys{' of ' + where if where else ''}: {', '.join(fields)}"
            )
        default = fields[key].default_factory() if fields[key].default_factory is not dataclasses.MISSING else None
        full = f"{where + '.' if where else ''}{key}"
        if dataclasses.is_dataclass(default):
            value = _build(type(default), value, full, source)
        else:
            _check_type(value, hints[key], full, source)
        kwargs[key] = value
    return cls(**kwargs)


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` words (LLaMA-Factory's style) -> a nested mapping; values are YAML scalars
    (``8`` is an int, ``true`` a bool, ``null`` None), dotted keys nest (``sampling.max_new_tokens=512``)."""
    tree: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r}: expected key=value, e.g. sampling.max_new_tokens=512")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({exc})") from exc
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} was already given a value")
            node = child
        node[parts[-1]] = value
    return tree


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def validate(config: PipelineConfig, source: Path) -> None:
    from vr_plugins.registry import registry

    if config.posterior_template not in ("a", "b", PRIOR_SAMPLING):
        raise ConfigError(f"{source}: posterior_template must be 'a', 'b' or '{PRIOR_SAMPLING}', "
                          f"got {config.posterior_template!r}")
    if config.posterior_template == PRIOR_SAMPLING and config.train.skip_posterior:
        raise ConfigError(f"{source}: posterior_template '{PRIOR_SAMPLING}' samples from pi_0; "
                          "train.skip_posterior has no meaning with it")
    if config.backend not in BACKENDS:
        raise ConfigError(f"{source}: backend must be 'hf' or 'vllm', got {config.backend!r}")
    if config.eval.backend not in ("local", "skythought"):
        raise ConfigError(f"{source}: eval.backend must be 'local' or 'skythought', got {config.eval.backend!r}")
    if not config.estimators:
        raise ConfigError(f"{source}: estimators must name at least one estimator")
    if config.num_traces < 1:
        raise ConfigError(f"{source}: num_traces must be >= 1")
    estimators = registry("estimators")
    for name in config.estimators:
        estimator = estimators.get(name)  # UnknownNameError lists the known ones
        if estimator.needs_verification and config.num_rollouts < 1:
            raise ConfigError(
                f"{source}: estimator {name!r} needs verified rollouts, but num_rollouts is "
                f"{config.num_rollouts}: set num_rollouts >= 1 or drop {name!r}"
            )
    for name in config.eval.tasks:
        registry("eval_tasks").get(name)
    unknown_models = set(config.eval.models) - {"initial", "final", "posterior"}
    if unknown_models:
        raise ConfigError(f"{source}: eval.models may contain initial, final, posterior; got {sorted(unknown_models)}")
    if config.train.final_from not in ("base", "initial"):
        raise ConfigError(f"{source}: train.final_from must be 'base' or 'initial', got {config.train.final_from!r}")
    if not config.dataset.path:
        raise ConfigError(f"{source}: dataset.path is required")
    check_layout(config, source)


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> PipelineConfig:
    """Read, merge ``key=value`` overrides (:func:`parse_overrides`) and validate; the overrides are checked
    exactly like the file's keys (unknown key or wrong type: :class:`ConfigError` naming the key)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping, got {type(data).__name__}")
    source = path
    if overrides:
        data = _merge(data, parse_overrides(overrides))
        source = f"{path} with overrides {' '.join(overrides)}"
    config = _build(PipelineConfig, data, "", source)
    base = path.resolve().parent
    for holder, attr in ((config.dataset, "path"), (config.eval, "data_dir"), (config, "base_model"),
                         (config.train, "skip_initial"), (config.train, "skip_posterior")):
        value = getattr(holder, attr)
        if value and value != "tiny" and (value.startswith(".") or "/" in value) and not Path(value).is_absolute():
            candidate = (base / value).resolve()
            if candidate.exists() or value.startswith("."):
                setattr(holder, attr, str(candidate))
    validate(config, source)
    from vr_plugins.pipeline import engines

    engines.finish(config, path)
    return config
