"""The configuration of a training run: typed dataclasses <-> TOML.

A config file has one top-level key, ``method``, and one table per section::

    method = "nonsyn"          # vae | beta_vae | factor_vae | beta_tcvae | dip_vae | nonsyn

    [run]     name, seed, steps, device, deterministic, threads, fast_layout
    [data]    dataset, source, batch_size, seed, origin, crop, crop_size, channels
    [model]   nsvae.models.NetConfig: architecture, z_dim, channels, fc_relus, convtranspose_init
    [optim]   nsvae.objectives.OptimConfig: lr, beta1, beta2, eps, eps_placement
    [common]  nsvae.objectives.CommonConfig: likelihood, proxy_omega, dataset_size
    [log]     every, traversal_every, traversal_values, checkpoint_every, keep_checkpoints, tensorboard, progress,
              console, trackers, project, mlflow_uri
    [eval]    every, seed, pool, votes   (learning curves: the run scores itself during training)
    [nonsyn] [beta_vae] [factor_vae] [beta_tcvae] [dip_vae]   each method's own hyper-parameters

Every key has a default (the original implementation's settings, see
``docs/training.md``), so a file only states what differs. Only the chosen
method's table is used, but all are validated. Unknown keys and bad values
raise :class:`nsvae.errors.UserError` naming the dotted key and, for a
misspelling, the nearest valid key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.dsprites import ORIGINS
from ..errors import FieldError, UserError
from ..models import NetConfig
from ..models.nets import ARCHITECTURES, CONVT_INITS, FC_RELUS
from ..names import path_component_problem
from ..objectives import (
    METHODS,
    BetaTCVAEConfig,
    BetaVAEConfig,
    CommonConfig,
    DIPVAEConfig,
    FactorVAEConfig,
    NonSynConfig,
    OptimConfig,
)
from ..objectives.base import EPS_PLACEMENTS
from ..objectives.beta_tcvae import ESTIMATORS
from ..objectives.dip_vae import KINDS as DIP_KINDS
from ..objectives.losses import LIKELIHOODS
from ..objectives.nonsyn import SYNERGY_SOURCES, UPDATES
from ..objectives.selection import SELECTIONS
from . import toml_io

__all__ = [
    "Config",
    "DataConfig",
    "EvalConfig",
    "LogConfig",
    "RunConfig",
    "apply_overrides",
    "defines_setting",
    "dumps",
    "flatten",
    "from_dict",
    "load",
    "loads",
    "parse_override",
    "to_dict",
]

#: What run.device and every --device accept: auto, cpu, cuda or cuda:N (public: the trainer and commands check it).
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DSPRITES_ORIGINS = ORIGINS  # which dSprites images: the data layer defines the choices
#: Datasets that take the image options (crop, crop_size, channels); the others take ``origin``.
IMAGE_DATASETS = ("celeba", "chairs", "folder")
#: The experiment trackers ``log.trackers`` may name (each an optional extra: ``pip install "nsvae[NAME]"``).
TRACKERS = ("wandb", "mlflow")


@dataclass(frozen=True)
class RunConfig:
    """What to call the run, how long, where, and its seed."""

    name: str = "run"
    #: Seeds the model's initial weights and the reparametrisation / permutation noise.
    seed: int = 0
    #: Number of training iterations (one batch each).
    steps: int = 149_760
    #: "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N".
    device: str = "auto"
    #: torch.use_deterministic_algorithms(True) and deterministic cuDNN (see docs/training.md).
    deterministic: bool = False
    #: CPU threads for torch (0: torch's default).
    threads: int = 0
    #: Conv nets in the channels-last memory format (faster on CPU; equal numbers up to rounding).
    fast_layout: bool = True

    def __post_init__(self):
        problem = path_component_problem(self.name)  # it names the run's directory (runs/NAME-DATE-TIME)
        if problem:
            raise FieldError("name", f"name {problem}, got {self.name!r}")
        if self.steps < 1:
            raise FieldError("steps", f"steps must be at least 1, got {self.steps}")
        if self.threads < 0:
            raise FieldError("threads", f"threads must be >= 0 (0: torch's default), got {self.threads}")
        if not DEVICE_PATTERN.match(self.device):
            raise FieldError("device", f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if not 0 <= self.seed < 2**64:
            raise FieldError("seed", f"seed must be in [0, 2**64), got {self.seed}")


@dataclass(frozen=True)
class DataConfig:
    """The training images and their order."""

    dataset: str = "dsprites"
    #: The user's file where the dataset is prepared from one (CelebA zip, 3D Chairs tar, a folder).
    source: str | None = None
    batch_size: int = 64
    #: Seed of the data order (the second batch stream of FactorVAE derives its own from it);
    #: unset: the run's seed.
    seed: int | None = None
    #: dSprites family: "auto" (the official file if prepared, else generated), "official", "generated".
    origin: str = "auto"
    #: Image datasets: "" for the dataset's default crop, else its crop name ("original", "center", "full").
    crop: str = ""
    #: Image datasets, crop "center": side of the centred square (0: the dataset's default).
    crop_size: int = 0
    #: Image datasets: 1 or 3 (0: the dataset's default).
    channels: int = 0

    def __post_init__(self):
        if self.batch_size < 1:
            raise FieldError("batch_size", f"batch_size must be at least 1, got {self.batch_size}")
        if self.seed is not None and not 0 <= self.seed < 2**64:
            raise FieldError("seed", f"seed must be in [0, 2**64) or unset, got {self.seed}")
        if self.origin not in DSPRITES_ORIGINS:
            raise FieldError("origin", f"origin must be one of {DSPRITES_ORIGINS}, got {self.origin!r}")
        if self.crop_size < 0:
            raise FieldError("crop_size", f"crop_size must be >= 0 (0: the dataset's default), got {self.crop_size}")
        if self.channels not in (0, 1, 3):
            raise FieldError("channels", f"channels must be 0 (the dataset's default), 1 or 3, got {self.channels}")

    def load_options(self) -> dict[str, Any]:
        """Keyword options for :func:`nsvae.data.load`."""
        if self.dataset in IMAGE_DATASETS:
            options: dict[str, Any] = {}
            if self.crop:
                options["crop"] = self.crop
            if self.crop_size:
                options["crop_size"] = self.crop_size
            if self.channels:
                options["channels"] = self.channels
            return options
        if self.crop or self.crop_size or self.channels:
            raise UserError(
                f"data.crop, data.crop_size and data.channels apply to image datasets ({', '.join(IMAGE_DATASETS)}), "
                f"not to {self.dataset!r}; remove them"
            )
        return {"origin": self.origin}


@dataclass(frozen=True)
class LogConfig:
    """How often to log, draw traversals and checkpoint (in steps), and where to show progress."""

    #: log.jsonl line, TensorBoard scalars and a console line (the original printed every 500 steps).
    every: int = 500
    #: Traversal image in TensorBoard and traversals/ (the original: every 2000 steps); 0: never.
    traversal_every: int = 2000
    #: Columns of the traversal grid (values -3..3; the original: 9).
    traversal_values: int = 9
    checkpoint_every: int = 10_000
    #: How many of the most recent checkpoints to keep (the final one is always written).
    keep_checkpoints: int = 3
    tensorboard: bool = True
    #: A tqdm progress bar (only when the output is a terminal).
    progress: bool = True
    #: Print one line per log step.
    console: bool = True
    #: Experiment trackers that get the same scalars, curve points, traversals and final scores as TensorBoard:
    #: any of "wandb", "mlflow" (docs/training.md, "Experiment trackers").
    trackers: tuple[str, ...] = ()
    #: The W&B project, and the MLflow experiment of a run outside a sweep (a sweep's runs: the sweep's name).
    project: str = "nsvae"
    #: MLflow's tracking URI; "": $MLFLOW_TRACKING_URI, else a local store (RUN/mlruns, a sweep's: SWEEP/mlruns).
    mlflow_uri: str = ""

    def __post_init__(self):
        if isinstance(self.trackers, (str, list)):  # LogConfig(trackers=["mlflow"]) from Python: kept as a tuple
            object.__setattr__(
                self, "trackers", (self.trackers,) if isinstance(self.trackers, str) else tuple(self.trackers)
            )
        unknown = [name for name in self.trackers if name not in TRACKERS]
        if unknown:
            raise FieldError("trackers", f"trackers may name {', '.join(TRACKERS)}, got {unknown[0]!r}")
        if not self.project.strip():
            raise FieldError("project", "project must be a name, got an empty string")
        for name in ("every", "checkpoint_every", "keep_checkpoints", "traversal_values"):
            if getattr(self, name) < 1:
                raise FieldError(name, f"{name} must be at least 1, got {getattr(self, name)}")
        if self.traversal_every < 0:
            raise FieldError("traversal_every", f"traversal_every must be >= 0 (0: never), got {self.traversal_every}")


@dataclass(frozen=True)
class EvalConfig:
    """Learning curves: the run scores itself during training (``nsvae.train.learning_curve``)."""

    #: Evaluate every this many steps and at the last step (0: never). Needs a dataset with ground-truth factors.
    every: int = 0
    #: Seed of the evaluation set (pool points, vote batches): equal seeds score the same images in every run.
    seed: int = 0
    #: Random training points of the metrics that read a pool (and half as many test points).
    pool: int = 10_000
    #: FactorVAE score votes (each of 64 images) to train and as many to score the classifier.
    votes: int = 500
    #: Encode every image of the dataset at each point, so that the synergy metric and Chen's MIG use the final
    #: evaluation's whole-dataset protocols instead of the pool (exact where the pool is a loose lower bound;
    #: 737,280 encodings per point on dSprites: for a GPU).
    whole_dataset: bool = False

    def __post_init__(self):
        if not isinstance(self.whole_dataset, bool):
            raise FieldError("whole_dataset", f"whole_dataset must be true or false, got {self.whole_dataset!r}")
        if self.every < 0:
            raise FieldError("every", f"every must be >= 0 (0: never), got {self.every}")
        if self.pool < 100 or self.votes < 1:
            raise FieldError("pool", f"pool must be >= 100 and votes >= 1, got {self.pool} and {self.votes}")
        if not 0 <= self.seed < 2**63:
            raise FieldError("seed", f"seed must be in [0, 2**63), got {self.seed}")


@dataclass(frozen=True)
class Config:
    """A whole run. ``method`` picks the objective; its table holds the method's hyper-parameters."""

    method: str = "nonsyn"
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: NetConfig = field(default_factory=NetConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    common: CommonConfig = field(default_factory=CommonConfig)
    log: LogConfig = field(default_factory=LogConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    nonsyn: NonSynConfig = field(default_factory=NonSynConfig)
    beta_vae: BetaVAEConfig = field(default_factory=BetaVAEConfig)
    factor_vae: FactorVAEConfig = field(default_factory=FactorVAEConfig)
    beta_tcvae: BetaTCVAEConfig = field(default_factory=BetaTCVAEConfig)
    dip_vae: DIPVAEConfig = field(default_factory=DIPVAEConfig)

    def __post_init__(self):
        if self.method not in METHODS:
            raise FieldError("method", f"method must be one of {tuple(METHODS)}, got {self.method!r}")

    def method_config(self):
        """The chosen method's config (the plain VAE has none: an empty ``VAEConfig``)."""
        if self.method in SECTIONS:
            return getattr(self, self.method)
        return METHODS[self.method][0]()

    @property
    def data_seed(self) -> int:
        return self.run.seed if self.data.seed is None else self.data.seed

    def replace(self, **changes: Any) -> Config:
        """A copy with whole sections or ``method`` replaced."""
        return dataclasses.replace(self, **changes)


#: section name -> its dataclass, in file order.
SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Config)[f.name] for f in dataclasses.fields(Config) if f.name != "method"
}

#: Keys whose values are names from a fixed list (checked with a "did you mean").
CHOICES: dict[str, tuple[str, ...]] = {
    "method": tuple(METHODS),
    "model.architecture": ARCHITECTURES,
    "model.fc_relus": FC_RELUS,
    "model.convtranspose_init": CONVT_INITS,
    "optim.eps_placement": EPS_PLACEMENTS,
    "common.likelihood": LIKELIHOODS,
    "data.origin": DSPRITES_ORIGINS,
    "nonsyn.synergy_source": SYNERGY_SOURCES,
    "nonsyn.selection": tuple(SELECTIONS),
    "nonsyn.update": UPDATES,
    "beta_tcvae.estimator": ESTIMATORS,
    "dip_vae.kind": DIP_KINDS,
    "log.trackers": TRACKERS,
}


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def valid_keys() -> list[str]:
    """Every dotted key a config accepts, in file order."""
    keys = ["method"]
    for section, cls in SECTIONS.items():
        keys += [f"{section}.{name}" for name in _field_types(cls)]
    return keys


def _suggest(key: str, candidates: Iterable[str]) -> str:
    candidates = list(candidates)
    match = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not match:  # the right name in the wrong section ("run.alpha" -> "nonsyn.alpha")
        leaf = key.rsplit(".", 1)[-1]
        match = [c for c in candidates if c.rsplit(".", 1)[-1] == leaf][:1]
    if not match:
        leaves = {c.rsplit(".", 1)[-1]: c for c in candidates}
        close = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(leaves), n=1, cutoff=0.75)
        match = [leaves[close[0]]] if close else []
    return f"; did you mean {match[0]!r}?" if match else ""


def unknown_key_error(key: str, where: str = "") -> UserError:
    place = f" in {where}" if where else ""
    candidates = valid_keys() if "." in key else [*valid_keys(), *SECTIONS]
    return UserError(f"unknown config key {key!r}{place}{_suggest(key, candidates)}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is tuple:
        return 'a list of names (e.g. ["mlflow"])'
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if args:
        return _type_name(args[0])
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(type(value))
    return f"{value!r} ({kind})" if kind else f"{value!r} (a {type(value).__name__})"


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the field type ``tp``; ints are accepted for floats."""
    if typing.get_origin(tp) is tuple:
        return _coerce_names(key, value, tp)
    optional = type(None) in typing.get_args(tp)
    base = next((a for a in typing.get_args(tp) if a is not type(None)), tp)
    if value is None and optional:
        return None
    ok = (
        (base is bool and isinstance(value, bool))
        or (base is int and isinstance(value, int) and not isinstance(value, bool))
        or (base is float and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (base is str and isinstance(value, str))
    )
    if not ok:
        raise UserError(f"config key {key!r} must be {_type_name(tp)}, got {_describe(value)}")
    if base is float:
        value = float(value)
        if not math.isfinite(value):
            raise UserError(f"config key {key!r} must be a finite number, got {value!r}")
    if key in SEED_KEYS and value is not None and not 0 <= value < 2**64:
        raise UserError(f"config key {key!r} must be a seed in [0, 2**64), got {value}")
    choices = CHOICES.get(key)
    if key == "data.dataset":
        from .. import data

        choices = tuple(data.names())
    _check_choice(key, value, choices)
    return value


def _check_choice(key: str, value: Any, choices: tuple[str, ...] | None) -> None:
    if choices is not None and value not in choices:
        hint = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
        more = f"; did you mean {hint[0]!r}?" if hint else ""
        raise UserError(f"config key {key!r} must be one of {', '.join(choices)}; got {value!r}{more}")


def _coerce_names(key: str, value: Any, tp: Any) -> tuple[str, ...]:
    """A list of names (``log.trackers``): each from the key's choices, none twice. A single name is a list of one
    (``--set log.trackers=mlflow``)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise UserError(f"config key {key!r} must be {_type_name(tp)}, got {_describe(value)}")
    for name in value:
        _check_choice(key, name, CHOICES.get(key))
    twice = sorted({name for name in value if value.count(name) > 1})
    if twice:
        raise UserError(f"config key {key!r} names {', '.join(twice)} more than once")
    return tuple(value)


def _build_section(section: str, cls: type, values: Mapping[str, Any], where: str):
    types = _field_types(cls)
    kwargs = {}
    for name, value in values.items():
        key = f"{section}.{name}"
        if name not in types:
            raise unknown_key_error(key, where)
        kwargs[name] = _coerce(key, value, types[name])
    try:
        return cls(**kwargs)
    except FieldError as exc:  # the sections' checks name the field they refuse
        raise UserError(f"config key {section + '.' + exc.field!r}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise UserError(f"invalid [{section}] settings: {exc}") from None


def from_dict(document: Mapping[str, Any], where: str = "") -> Config:
    """A :class:`Config` from a nested mapping (as read from TOML); missing keys take their defaults."""
    sections: dict[str, Any] = {}
    method = Config.method
    for name, value in document.items():
        if name == "method":
            method = _coerce("method", value, str)
        elif name in SECTIONS:
            if not isinstance(value, Mapping):
                raise UserError(f"config key {name!r} must be a table ([{name}]), got {_describe(value)}")
            sections[name] = _build_section(name, SECTIONS[name], value, where)
        else:
            raise unknown_key_error(name, where)
    try:
        return Config(method=method, **sections)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def to_dict(config: Config) -> dict[str, Any]:
    """The nested mapping of every key (``None`` for unset optional keys)."""
    out: dict[str, Any] = {"method": config.method}
    for section in SECTIONS:
        out[section] = dataclasses.asdict(getattr(config, section))
    return out


def flatten(config: Config) -> dict[str, Any]:
    """Every key as a dotted name (``"nonsyn.alpha"``, ``"method"``) -> its value."""
    out: dict[str, Any] = {}
    for key, value in to_dict(config).items():
        if isinstance(value, dict):
            out.update({f"{key}.{name}": v for name, v in value.items()})
        else:
            out[key] = value
    return out


#: Config keys that name a seed: runs that differ only in these are seeds of one setting.
SEED_KEYS = ("run.seed", "data.seed")
#: Config keys that do not change what a run computes (or are derived): ignored when grouping runs into settings
#: (sweep results, comparison reports) and when checking that an existing run matches a sweep file.
INCIDENTAL_KEYS = ("run.name", "run.device", "run.threads", "common.dataset_size")
INCIDENTAL_SECTIONS = ("log", "eval")


def is_incidental(key: str) -> bool:
    return key in INCIDENTAL_KEYS or key.split(".", 1)[0] in INCIDENTAL_SECTIONS


def defines_setting(key: str) -> bool:
    """Whether a dotted key is part of a run's setting: neither a seed nor incidental."""
    return key not in SEED_KEYS and not is_incidental(key)


HEADER = "nsvae training config (docs/training.md). Only `method`'s own table is used."


def dumps(config: Config, header: str = HEADER) -> str:
    """The config as TOML text, every key written (unset optional keys left out)."""
    return toml_io.dumps(to_dict(config), header=header)


def loads(text: str, where: str = "") -> Config:
    try:
        document = toml_io.loads(text)
    except toml_io.TOMLDecodeError as exc:
        place = f"{where}: " if where else ""
        raise UserError(f"{place}not valid TOML: {exc}") from None
    return from_dict(document, where)


def load(path: str | Path) -> Config:
    """Read a config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not part of the TOML
    except OSError as exc:
        raise UserError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return loads(text, where=str(path))


def parse_override(text: str) -> tuple[str, Any]:
    """``"section.key=value"`` -> ``("section.key", value)``, the value read as a TOML scalar."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set expects KEY=VALUE (e.g. nonsyn.alpha=5), got {text!r}")
    return key, toml_io.parse_scalar(value.strip())


def resolve_key(key: str) -> str:
    """A dotted key, a ``section__key`` spelling or a key name found in exactly one section -> the dotted key."""
    key = key.replace("__", ".")
    keys = valid_keys()
    if key in keys:
        return key
    if "." not in key:
        owners = [k for k in keys if k.rsplit(".", 1)[-1] == key]
        if len(owners) == 1:
            return owners[0]
        if len(owners) > 1:
            raise UserError(f"config key {key!r} is ambiguous; write one of {', '.join(owners)}")
    raise unknown_key_error(key)


def apply_overrides(config: Config, overrides: Mapping[str, Any] | Iterable[str]) -> Config:
    """``config`` with keys changed: a mapping ``{"nonsyn.alpha": 5}`` or ``["nonsyn.alpha=5", ...]``."""
    if not isinstance(overrides, Mapping):
        overrides = dict(parse_override(item) for item in overrides)
    document = to_dict(config)
    for raw_key, value in overrides.items():
        key = resolve_key(raw_key)
        if key == "method":
            document["method"] = value
        else:
            section, name = key.split(".", 1)
            document[section][name] = value
    for section in SECTIONS:  # unset optional keys are simply absent
        document[section] = {k: v for k, v in document[section].items() if v is not None}
    return from_dict(document)
