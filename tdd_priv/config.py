"""Run configuration: one frozen dataclass tree, read from YAML, overridden by the CLI.

`RunConfig` is the single source of every setting of a run; `config.resolved.yaml` in the run
folder is `RunConfig.to_dict()` after defaults and overrides, so a run can be repeated from it.

Every setting is checked against a typed schema before any data is read: the dataclasses'
annotations plus the ranges in `_RULES`, validated by pydantic in strict mode (no silent
coercion: `per_class: "10"` or `2.5` is refused, a bool is not a number; YAML strings become
paths, lists become tuples). Each dataclass checks itself on construction; `from_dict`,
`with_overrides` and `load_config_file` also check the names that refer to registries
(`check_registered`: method, realizer, heads, text models, baselines, method options). Errors
are ConfigErrors naming the dotted key, the value and what is allowed, all problems at once.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import annotated_types as at
import pydantic
from pydantic_core import ErrorDetails

from tdd_priv.device import DeviceSetting
from tdd_priv.encode import DEFAULT_ENCODER, EncoderConfig
from tdd_priv.errors import ConfigError
from tdd_priv.yamlio import load_yaml

__all__ = [
    "EXTERNAL_METHOD",
    "INTERNAL_POOL",
    "PRIVATE_SUFFIX",
    "AllocationMode",
    "AuditConfig",
    "AuditLevel",
    "DataConfig",
    "DetoxConfig",
    "DetoxMode",
    "EvalConfig",
    "FairnessMode",
    "Orchestrator",
    "PrivacyConfig",
    "RunConfig",
    "check_registered",
    "default_cache_dir",
    "load_config_file",
    "validate_settings",
]

T = TypeVar("T")
Orchestrator = Literal["prefect", "local"]
INTERNAL_POOL = "internal"  # data.public_pool: cut the pool from the train split (an opt-in)
PRIVATE_SUFFIX = ".private"  # the private record's folder: <out>.private
# `method` of a release made outside tdd-priv and audited by `tdd-priv audit` (needs `release`)
EXTERNAL_METHOD = "external"
_NOT_PATHS = ("demo", INTERNAL_POOL)  # data specs that name no file
# --fairness: "balanced" matches per (class, group) cell with equal weight (dm, dc).
FairnessMode = Literal["none", "balanced"]
# --allocation: texts per class, equal (--per-class K each) or the total split by the class's
# estimated frequency or difficulty (tdd_priv.methods.allocation).
AllocationMode = Literal["equal", "frequency", "difficulty"]


def default_cache_dir() -> Path:
    """Embedding cache location: $TDD_PRIV_CACHE, else ~/.cache/tdd-priv."""
    env = os.environ.get("TDD_PRIV_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "tdd-priv"


@dataclass(frozen=True)
class DataConfig:
    """Where the private labeled data and the public pool come from, and how to read them."""

    spec: str = "demo"
    text_column: str = "text"
    label_column: str = "label"
    group_columns: tuple[str, ...] = ()
    split_column: str | None = None
    train_split: str | None = None
    test_split: str | None = None
    # `tdd-priv audit` only: the split of rows the release's maker never saw (its non-members);
    # None: the test split. `run` holds out a share of the train split instead (audit_fraction).
    heldout_split: str | None = None
    label_names: tuple[str, ...] | None = None
    # Texts realization may release: a file or hf: spec of public texts, or INTERNAL_POOL (a
    # disjoint part of the train split, labels dropped: rows of the user's own data, so under DP
    # an explicit opt-in whose released texts the report counts as unprotected). None: refused
    # under DP; the internal pool without DP.
    public_pool: str | None = None
    drop_empty: bool = False
    test_fraction: float = 0.2
    audit_fraction: float = 0.1
    public_fraction: float = 0.2

    def __post_init__(self) -> None:
        _check_instance(self)
        if self.audit_fraction + self.public_fraction >= 1.0:
            raise ConfigError(
                f"data.audit_fraction {self.audit_fraction} + data.public_fraction "
                f"{self.public_fraction} leave no training members; their sum must be below 1."
            )


@dataclass(frozen=True)
class PrivacyConfig:
    """Differential privacy of the release; `enabled=False` must be asked for explicitly."""

    enabled: bool = True
    epsilon: float = 4.0
    delta: float | None = None
    # The seed of the privacy noise. None (default): every release draws it from the OS's
    # entropy, since `seed` is published in config.resolved.yaml and noise regenerated from it
    # could be subtracted. An int makes DP runs reproducible (tests, debugging); it is withheld
    # from the released config either way.
    noise_seed: int | None = None
    # The per-dataset budget ledger across runs (in the user's state folder): a run that would
    # take the ledger's composed ε above `budget_limit` is refused. `budget_ledger` names the
    # ledger (default: the dataset's keyed fingerprint), so that runs on data that changes
    # between runs (a scheduled job) still compose.
    budget_limit: float | None = None
    budget_ledger: str | None = None

    def __post_init__(self) -> None:
        _check_instance(self)


@dataclass(frozen=True)
class EvalConfig:
    """How synthetic sets are judged: fresh heads, several seeds each, on the real test split.

    `text_models` learn from the texts themselves (`tfidf-lr`; `finetune`: a transformer
    fine-tuned end to end, see tdd_priv/finetune.py). `finetune_model`: its checkpoint, the
    bundled MiniLM or a local Hugging Face folder; `finetune_steps`: exact optimiser steps per
    fine-tune (None: the defaults' 10 epochs, within 60–300 steps); `finetune_max_train`: a set
    of more texts (full data, the DP-SGD fine-tune's members) is fine-tuned on a seeded
    subsample of that many.
    """

    heads: tuple[str, ...] = ("linear", "mlp")
    text_models: tuple[str, ...] = ("tfidf-lr",)
    baselines: tuple[str, ...] = ("random", "herding", "kcenter")
    seeds: int = 5
    steps: int = 300
    finetune_model: str = DEFAULT_ENCODER
    finetune_steps: int | None = None
    finetune_max_train: int = 2000

    def __post_init__(self) -> None:
        _check_instance(self)


# --- toxicity screening --------------------------------------------------------------------------

DetoxMode = Literal["filter", "flag", "off"]


@dataclass(frozen=True)
class DetoxConfig:
    """Toxicity screening of the released texts (the detox step, after realization).

    `filter`: a text scoring at or above its threshold is replaced by the next-best clean
    candidate for its slot (same class, same source), so the set keeps k per class while
    candidates last; `flag`: such texts are kept and marked; `off`: no screening.
    `scorer` names a scorer of the `audits.toxicity` registry (detoxify, profanity, classifier),
    `model` its model name or path where it needs one. `thresholds` maps a scorer label to its
    threshold in [0, 1]; other labels use `default_threshold`. Texts of the classes named in
    `exempt_labels` are scored and reported but never removed.
    """

    mode: DetoxMode = "off"
    scorer: str = "profanity"
    model: str | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    default_threshold: float = 0.5
    exempt_labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_instance(self)


# --------------------------------------------------------------------------------------------------


# --- audits --------------------------------------------------------------------------------------

AuditLevel = Literal["none", "basic", "full"]


@dataclass(frozen=True)
class AuditConfig:
    """Which audits run (the auditors come from `audits/`), and the policy they are judged by.

    level: `none` (no audits, no verdicts), `basic` (membership inference without shadow
    models, leakage, fairness; canaries only when `canaries` asks for them), `full` (adds
    LiRA/RMIA with `shadows` re-runs of the distill step, and canaries sized from the claimed ε).
    policy: a YAML file of thresholds (None: the shipped default, tdd_priv/policy/default.yaml).
    strict: `tdd-priv run` exits non-zero when a verdict fails (after the run folder is written
    and signed). canaries: secret records inserted with probability 1/2 (recorded privately):
    a count, "auto" (as many as the claimed ε needs, at any level but none), or None (auto for
    `full`, none otherwise).
    """

    level: AuditLevel = "basic"
    policy: Path | None = None
    strict: bool = False
    canaries: int | Literal["auto"] | None = None
    canary_kind: str = "spliced"
    shadows: int = 16
    min_group_size: int = 20
    bootstrap: int = 200

    def __post_init__(self) -> None:
        _check_instance(self)

    @property
    def canary_count(self) -> int | None:
        """Canaries to insert: a count (0: none), or None when the canary maker sizes them from
        the claimed ε at run time (`canaries: auto`, or unset with `level: full`)."""
        if self.level == "none":
            return 0
        if self.canaries == "auto" or (self.canaries is None and self.level == "full"):
            return None
        return self.canaries or 0


# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs. `out` is the run folder it creates."""

    out: Path = Path("runs/demo")
    # The run's private record (splits, canary secrets, realized row ids, the full config): a
    # sibling folder of `out`, never part of the release. None: `<out>.private`.
    private_out: Path | None = None
    data: DataConfig = field(default_factory=DataConfig)
    # the default runs under the default (DP) mode; coresets need --no-dp
    method: str = "dpsgd-teacher"
    per_class: int = 10
    # How the set's size is split over classes: `equal` gives each `per_class`; `frequency` and
    # `difficulty` split `total_size` (None: per_class × classes) by the method's estimate.
    allocation: AllocationMode = "equal"
    total_size: int | None = None
    method_options: dict[str, Any] = field(default_factory=dict)
    fairness: FairnessMode = "none"
    realize: str | None = None
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    detox: DetoxConfig = field(default_factory=DetoxConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    seed: int = 0
    cache_dir: Path = field(default_factory=default_cache_dir)
    overwrite: bool = False
    orchestrator: Orchestrator = "prefect"
    progress: bool = True
    # The most CPU threads torch may use (None: every CPU this process may run on, within
    # OMP_NUM_THREADS); small models always use one (tdd_priv.threads).
    threads: int | None = None
    # Where tensors live: cpu, cuda, or auto (cuda when available); see tdd_priv.device.
    device: DeviceSetting = "cpu"
    # Ed25519 private key that signs the run folder; None: $TDD_PRIV_SIGNING_KEY, else the
    # per-user key (created on first use). See tdd_priv.signing.
    signing_key: Path | None = None
    # `tdd-priv audit`: the synthetic labeled text file (made outside tdd-priv) the run audits;
    # `method` is then EXTERNAL_METHOD. None for every distillation run.
    release: Path | None = None

    def __post_init__(self) -> None:
        _check_instance(self)
        if self.total_size is not None and self.allocation == "equal":
            raise ConfigError(
                f"total_size {self.total_size} is only used to split the set by class "
                "frequency or difficulty; add --allocation frequency (or difficulty), or drop "
                "--total-size and use --per-class K."
            )

    @property
    def private_folder(self) -> Path:
        """Where the run's private record goes: `private_out`, else `<out>.private` beside `out`."""
        if self.private_out is not None:
            return self.private_out
        return self.out.with_name(self.out.name + PRIVATE_SUFFIX)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON-ready mapping (paths as strings, tuples as lists)."""
        return _plain(dataclasses.asdict(self))

    def without_noise_seed(self) -> RunConfig:
        """This config with no noise seed: what may be handed to an orchestrator, which stores
        its parameters (see tdd_priv.pipeline.noise_seed_scope for passing a seed in-process)."""
        return dataclasses.replace(self, privacy=dataclasses.replace(self.privacy, noise_seed=None))

    def released_dict(self) -> dict[str, Any]:
        """What config.resolved.yaml publishes: `to_dict()` without the secret noise seed and
        without local paths (where the run wrote, cached and found its key are left out; data,
        pool, policy, encoder and fine-tuning model files are named by their file name only).
        The full config goes to the private folder."""
        settings = self.to_dict()
        settings["privacy"]["noise_seed"] = None
        for key in ("out", "private_out", "cache_dir", "signing_key"):
            settings[key] = None
        data = settings["data"]
        data["spec"] = _file_name_only(data["spec"])
        data["public_pool"] = _file_name_only(data["public_pool"])
        settings["audit"]["policy"] = _file_name_only(settings["audit"]["policy"])
        settings["release"] = _file_name_only(settings["release"])
        settings["encoder"]["model"] = _file_name_only(settings["encoder"]["model"])
        evaluation = settings["evaluation"]
        evaluation["finetune_model"] = _file_name_only(evaluation["finetune_model"])
        return settings

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any], *, where: str = "config") -> RunConfig:
        """Build from a nested mapping, checking every setting (see the module docstring);
        unknown keys are errors that list the known ones."""
        config = validate_settings(cls, payload, where=where)
        check_registered(config, where=where)
        return config

    def with_overrides(self, overrides: Mapping[str, Any], *, registered: bool = True) -> RunConfig:
        """A copy with dotted-key overrides applied, e.g. {"data.spec": "x.csv", "seed": 3}.
        `registered=False` skips the registry and method-option checks (see
        `load_config_file`)."""
        merged = self.to_dict()
        for dotted, value in overrides.items():
            node = merged
            *parents, leaf = str(dotted).split(".")
            for depth, part in enumerate(parents):
                child = node.get(part)
                if not isinstance(child, dict):
                    where = ".".join(parents[: depth + 1])
                    groups = sorted(key for key, item in node.items() if isinstance(item, dict))
                    raise ConfigError(
                        f"config: unknown setting {dotted!r}: {where!r} is not a group of "
                        f"settings{' (it is a setting)' if part in node else ''}; groups here: "
                        f"{', '.join(groups) or 'none'}."
                    )
                node = child
            node[leaf] = value
        if not registered:
            return validate_settings(RunConfig, merged, where="config")
        return RunConfig.from_dict(merged)


def load_config_file(path: Path, *, registered: bool = True) -> RunConfig:
    """Read a YAML config file; relative `out` and `cache_dir` stay relative to the CWD.

    `registered=False` checks types and ranges only, not registry names and method options: for
    a study's shared base, whose method (and so the meaning of its options) each cell sets.
    """
    payload = load_yaml(path, where=f"config file {path}")
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise ConfigError(f"{path} must hold a mapping of settings at its top level.")
    if not registered:
        return validate_settings(RunConfig, payload, where=str(path))
    return RunConfig.from_dict(payload, where=str(path))


def _file_name_only(value: str | None) -> str | None:
    """A local file or folder named by its name alone; anything else (demo, internal, hf:NAME,
    a hub model name) as it is."""
    if value is None or value in _NOT_PATHS or value.startswith("hf:"):
        return value
    return Path(value).resolve().name if Path(value).exists() else value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


# --- the typed schema ----------------------------------------------------------------------------


def _distinct(values: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    seen: set[Any] = set()
    repeated = []
    for value in values or ():
        if value in seen:
            repeated.append(value)
        seen.add(value)
    if repeated:
        raise ValueError(f"names {', '.join(map(repr, dict.fromkeys(repeated)))} more than once")
    return values


def _no_single_shadow(value: int) -> int:
    if value == 1:
        raise ValueError("is neither 0 nor at least 2")
    return value


def _count_or_auto(value: int | str | None) -> int | str | None:
    if isinstance(value, int) and value < 0:
        raise ValueError("is below 0")
    return value


def _text_of_path(value: Any) -> Any:
    """A pathlib.Path given for a setting that holds a path or a name (data.spec): its text."""
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _non_empty_path(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty")
    return value


def _keep_whole_numbers(value: Any, check: pydantic.ValidatorFunctionWrapHandler) -> Any:
    """A float setting given as an int (`epsilon: 4`) is checked as a float but kept as
    written, so a config round-trips unchanged and tables show 4, not 4.0."""
    checked = check(value)
    return value if type(value) is int else checked


def _one_or_many(value: Any) -> Any:
    """A single name where a list of names is expected (`heads: linear`) is a list of one."""
    return [value] if isinstance(value, str) else value


_FINITE = pydantic.AllowInfNan(False)
_NAME = at.MinLen(1)
_FRACTION = (at.Ge(0), at.Lt(1))


@dataclass(frozen=True)
class Rule:
    """What one setting allows beyond its annotated type: pydantic constraints on the value
    (`constraints`) or on each item or mapping value (`each`), and the sentence that ends an
    error message (`allowed`; `when` replaces it for one pydantic error type)."""

    allowed: str
    constraints: tuple[Any, ...] = ()
    each: tuple[Any, ...] = ()
    when: Mapping[str, str] = field(default_factory=dict)


_NAMES = (pydantic.AfterValidator(_distinct),)
_NO_NOISE = "a run without noise is not private: give a finite ε > 0, or use --no-dp"

# Dotted setting -> its rule. Settings not listed are checked against their type alone.
_RULES: dict[str, Rule] = {
    "out": Rule("give the run folder's path (--out DIR)"),
    "private_out": Rule("give a folder beside the run folder, or leave it unset"),
    "per_class": Rule("give a whole number ≥ 1 of texts per class (--per-class K)", (at.Ge(1),)),
    "allocation": Rule(
        "equal gives every class --per-class K; frequency or difficulty split --total-size "
        "by the method's estimate of each class's share, or of its share of the errors "
        "(--allocation)"
    ),
    "total_size": Rule(
        "give a whole number ≥ 1 of texts in all (--total-size N), at least one per class, or "
        "leave it unset for --per-class × classes",
        (at.Ge(1),),
    ),
    "method": Rule("give a method's name (--method)", (_NAME,)),
    "method_options": Rule("give a mapping of the method's options (--method-option K=V)"),
    "fairness": Rule("balanced matches each (class, group) cell with equal weight (dm, dc)"),
    "realize": Rule("give a realizer's name (--realize), or leave it unset", (_NAME,)),
    "seed": Rule("give a whole number ≥ 0 (--seed N)", (at.Ge(0),)),
    "cache_dir": Rule("give a folder for the embedding cache"),
    "threads": Rule(
        "give a whole number ≥ 1 of CPU threads (--threads N), or leave it unset for every CPU "
        "available",
        (at.Ge(1),),
    ),
    "device": Rule("give auto (cuda when available), cpu or cuda (--device)"),
    "signing_key": Rule("give an Ed25519 private key file (--key), or leave it unset"),
    "release": Rule(
        "give the synthetic text file to audit (tdd-priv audit --release FILE), or leave it unset"
    ),
    "data.spec": Rule("give a CSV/JSONL/Parquet path, hf:NAME[:CONFIG] or demo", (_NAME,)),
    "data.text_column": Rule("give a column name (--text-column)", (_NAME,)),
    "data.label_column": Rule("give a column name (--label-column)", (_NAME,)),
    "data.group_columns": Rule("give distinct column names (--group-column)", _NAMES, (_NAME,)),
    "data.split_column": Rule("give a column name (--split-column), or leave it unset", (_NAME,)),
    "data.train_split": Rule("give a split name (--train-split), or leave it unset", (_NAME,)),
    "data.test_split": Rule("give a split name (--test-split), or leave it unset", (_NAME,)),
    "data.heldout_split": Rule(
        "give the split of rows the release's maker never saw (--heldout-split), or leave it "
        "unset for the test split",
        (_NAME,),
    ),
    "data.label_names": Rule(
        "give distinct class names in id order (--label-names), or leave it unset",
        (_NAME, *_NAMES),
        (_NAME,),
    ),
    "data.public_pool": Rule(
        f"give a file or hf: spec of public texts, '{INTERNAL_POOL}' (an opt-in: rows of your "
        "own data), or leave it unset",
        (_NAME,),
    ),
    "data.test_fraction": Rule("give a fraction in [0, 1)", _FRACTION),
    "data.audit_fraction": Rule("give a fraction in [0, 1)", _FRACTION),
    "data.public_fraction": Rule("give a fraction in [0, 1)", _FRACTION),
    "privacy.epsilon": Rule(
        "give a finite ε > 0 (--epsilon E), or --no-dp",
        (at.Gt(0), _FINITE),
        when={"finite_number": _NO_NOISE},
    ),
    "privacy.delta": Rule(
        "give δ in (0, 1), below 1/n for n training rows (--delta D), or leave it unset for "
        "min(1e-5, n^-1.5)",
        (at.Gt(0), at.Lt(1)),
    ),
    "privacy.noise_seed": Rule("give a whole number ≥ 0, or leave it unset", (at.Ge(0),)),
    "privacy.budget_limit": Rule("give a finite ε > 0, or leave it unset", (at.Gt(0), _FINITE)),
    "privacy.budget_ledger": Rule("give a ledger name, or leave it unset", (_NAME,)),
    "encoder.model": Rule("give a local folder or a hub name (--encoder)", (_NAME,)),
    "encoder.max_length": Rule("give a whole number ≥ 2 of tokens (--max-length)", (at.Ge(2),)),
    "encoder.batch_size": Rule("give a whole number ≥ 1 of sentences", (at.Ge(1),)),
    "evaluation.heads": Rule("give one or more distinct head names (--heads)", (_NAME, *_NAMES)),
    "evaluation.text_models": Rule(
        "give distinct text model names (--text-models tfidf-lr,finetune), or []", _NAMES
    ),
    "evaluation.baselines": Rule("give distinct baseline names, or []", _NAMES),
    "evaluation.seeds": Rule("give a whole number ≥ 1 of models per head", (at.Ge(1),)),
    "evaluation.steps": Rule("give a whole number ≥ 1 of training steps", (at.Ge(1),)),
    "evaluation.finetune_model": Rule(
        f"give {DEFAULT_ENCODER!r} or a local folder with a Hugging Face encoder "
        "(--finetune-model)",
        (_NAME,),
    ),
    "evaluation.finetune_steps": Rule(
        "give a whole number ≥ 1 of optimiser steps per fine-tune (--finetune-steps), or leave "
        "it unset for the defaults",
        (at.Ge(1),),
    ),
    "evaluation.finetune_max_train": Rule(
        "give a whole number ≥ 2 of training texts per fine-tune", (at.Ge(2),)
    ),
    "detox.scorer": Rule("give a toxicity scorer's name (--detox-scorer)", (_NAME,)),
    "detox.model": Rule("give a model name or path (--detox-model), or leave it unset", (_NAME,)),
    "detox.thresholds": Rule("thresholds must lie in [0, 1]", each=(at.Ge(0), at.Le(1))),
    "detox.default_threshold": Rule("thresholds must lie in [0, 1]", (at.Ge(0), at.Le(1))),
    "audit.canaries": Rule(
        "give a whole number ≥ 0 (--canaries), 'auto' (sized from the claimed ε), or leave it "
        "unset",
        (pydantic.AfterValidator(_count_or_auto),),
    ),
    "audit.canary_kind": Rule("give a canary kind", (_NAME,)),
    "audit.shadows": Rule(
        "give 0, or at least 2: LiRA needs models with and without each record (--shadows)",
        (at.Ge(0), pydantic.AfterValidator(_no_single_shadow)),
    ),
    "audit.min_group_size": Rule("give a whole number ≥ 1 of test examples", (at.Ge(1),)),
    "audit.bootstrap": Rule("give a whole number ≥ 0 of bootstrap samples", (at.Ge(0),)),
}
_PATH_OR_NAME = frozenset(
    {"data.spec", "data.public_pool", "encoder.model", "detox.model", "evaluation.finetune_model"}
)

# The groups of RunConfig, and the prefix of each config class's settings in messages.
_GROUPS: dict[str, type] = {
    "data": DataConfig,
    "privacy": PrivacyConfig,
    "encoder": EncoderConfig,
    "evaluation": EvalConfig,
    "detox": DetoxConfig,
    "audit": AuditConfig,
}
_PREFIXES: dict[type, str] = {cls: f"{name}." for name, cls in _GROUPS.items()}


def validate_settings(
    cls: type[T], payload: Mapping[str, Any], *, where: str | None = None, prefix: str = ""
) -> T:
    """The dataclass `cls` built from `payload`, every field checked against its annotation
    (strictly) and the rules of its dotted key `prefix + name`.

    Raises ConfigError that names `where`, each bad key, its value and what is allowed.
    """
    if not isinstance(payload, Mapping):
        raise ConfigError(_message(where, [f"{_show(payload)} is not a mapping of settings"]))
    try:
        checked = _schema(cls, prefix).model_validate(dict(payload))
    except pydantic.ValidationError as error:
        raise ConfigError(_message(where, _problems(error, cls, prefix))) from None
    try:
        return typing.cast(T, _instance(cls, checked))
    except ConfigError as error:  # a check across fields, in a __post_init__
        raise ConfigError(_message(where, [str(error)])) from None


def check_registered(config: RunConfig, *, where: str | None = None) -> None:
    """Refuse names that refer to nothing registered (method, realizer, heads, text models,
    baselines), method options the method's config dataclass does not accept (under DP
    with the DP variant's defaults) and an allocation the method cannot honour. Imports the
    registries, so it is not run on every construction of a RunConfig; `from_dict` and the
    pipeline's `check_config` run it."""
    from tdd_priv.comparison import BASELINES
    from tdd_priv.finetune import finetune_model_problem
    from tdd_priv.heads import HEADS
    from tdd_priv.methods import METHODS
    from tdd_priv.methods.learned import parse_options
    from tdd_priv.realize import REALIZERS
    from tdd_priv.text_models import TEXT_MODELS

    problems = []
    if config.method == EXTERNAL_METHOD:
        if config.release is None:
            problems.append(
                f"method: {EXTERNAL_METHOD!r} names a release made outside tdd-priv; audit one "
                "with `tdd-priv audit --release FILE` (setting: release)"
            )
    elif config.method not in METHODS:
        problems.append(f"method: unknown method {config.method!r}; valid: {', '.join(METHODS)}")
    if config.realize is not None and config.realize not in REALIZERS:
        problems.append(
            f"realize: unknown realizer {config.realize!r}; valid: {', '.join(REALIZERS)}"
        )
    evaluation = config.evaluation
    for key, names, registry in (
        ("evaluation.heads", evaluation.heads, HEADS),
        ("evaluation.text_models", evaluation.text_models, TEXT_MODELS),
        ("evaluation.baselines", evaluation.baselines, BASELINES),
    ):
        for i, name in enumerate(names):
            if name in registry:
                continue
            if registry is HEADS and name in TEXT_MODELS:  # `--heads linear,finetune`
                problems.append(
                    f"{key}[{i}]: {name!r} is a text model, not an embedding head; list it in "
                    f"evaluation.text_models (--text-models tfidf-lr,{name})"
                )
                continue
            problems.append(f"{key}[{i}]: unknown name {name!r}; valid: {', '.join(registry)}")
    if "finetune" in evaluation.text_models:
        problem = finetune_model_problem(evaluation.finetune_model)
        if problem:
            problems.append(f"evaluation.finetune_model: {problem}")
    info = METHODS.get(config.method)
    if info is not None and config.allocation != "equal" and not info.class_sizes:
        supported = ", ".join(name for name, m in METHODS.items() if m.class_sizes)
        problems.append(
            f"allocation: {config.allocation!r} is not available for method "
            f"{config.method!r}, which learns the same number of vectors for every class; "
            f"methods that honour per-class sizes: {supported} (or use allocation equal)"
        )
    if info is not None and info.private is not None:
        try:
            if config.privacy.enabled:
                info.private.options(config.method_options, method=info.name)
            else:
                parse_options(info.private.config_type, config.method_options, method=info.name)
        except ConfigError as error:
            problems.append(str(error))
    if problems:
        raise ConfigError(_message(where, problems))


def _check_instance(instance: Any) -> None:
    """Check a config dataclass built directly (the Python API): its own fields, and the
    fields of the groups it holds. Paths given as str and lists given for tuples are
    converted, so the instance holds the annotated types."""
    cls = type(instance)
    prefix = _PREFIXES.get(cls, "")
    payload: dict[str, Any] = {}
    problems = []
    hints = _hints(cls)
    for item in dataclasses.fields(instance):
        value = getattr(instance, item.name)
        group = _group_type(hints[item.name])
        if group is not None and not isinstance(value, group):
            problems.append(
                f"{prefix}{item.name}: {_show(value)} is not a {group.__name__} (build one, or "
                "use RunConfig.from_dict for nested mappings)"
            )
            continue
        payload[item.name] = dataclasses.asdict(value) if group is not None else value
    if problems:
        raise ConfigError(_message(None, problems))
    try:
        checked = _schema(cls, prefix).model_validate(payload)
    except pydantic.ValidationError as error:
        raise ConfigError(_message(None, _problems(error, cls, prefix))) from None
    for name, value in payload.items():
        converted = getattr(checked, name)
        if _group_type(hints[name]) is None and type(converted) is not type(value):
            object.__setattr__(instance, name, converted)  # frozen: set once, while building


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The field annotations of a config class, resolved (they are strings in the source)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _group_type(annotation: Any) -> type | None:
    """The config class of a field that holds a group of settings (None for a plain one)."""
    return (
        annotation
        if isinstance(annotation, type) and dataclasses.is_dataclass(annotation)
        else None
    )


_SCHEMAS: dict[tuple[type, str], type[pydantic.BaseModel]] = {}


def _schema(cls: type, prefix: str) -> type[pydantic.BaseModel]:
    """A strict pydantic model of the dataclass `cls`: its annotations plus `_RULES` (built
    once per class and prefix)."""
    cached = _SCHEMAS.get((cls, prefix))
    if cached is not None:
        return cached
    hints = _hints(cls)
    fields: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        key = prefix + item.name
        annotation = _field_type(hints[item.name], key)
        if item.default is not dataclasses.MISSING:
            fields[item.name] = (annotation, item.default)
        elif item.default_factory is not dataclasses.MISSING:
            fields[item.name] = (annotation, pydantic.Field(default_factory=item.default_factory))
        else:
            fields[item.name] = (annotation, ...)
    model: type[pydantic.BaseModel] = pydantic.create_model(
        f"{cls.__name__}Schema",
        __config__=pydantic.ConfigDict(strict=True, extra="forbid"),
        **fields,
    )
    _SCHEMAS[(cls, prefix)] = model
    return model


def _field_type(annotation: Any, key: str) -> Any:
    """The annotation as pydantic should check it: groups as their own models, constraints of
    the rule on the value (on the non-None part of an optional), YAML-friendly conversions."""
    optional = _is_optional(annotation)
    inner = _without_none(annotation) if optional else annotation
    group = _group_type(inner)
    if group is not None:
        return _schema(group, key + ".")
    rule = _RULES.get(key)
    origin = typing.get_origin(inner)
    metadata: list[Any] = []
    if inner is Path:
        metadata += [pydantic.Strict(False), pydantic.BeforeValidator(_non_empty_path)]
    elif origin is tuple:
        item = typing.get_args(inner)[0]
        if rule is not None and rule.each:
            inner = tuple[Annotated[item, *rule.each], ...]  # type: ignore[valid-type]
        # YAML gives lists; a single name stands for a list of one.
        metadata += [pydantic.Strict(False), pydantic.BeforeValidator(_one_or_many)]
    elif origin is dict and rule is not None and rule.each:
        key_type, value_type = typing.get_args(inner)
        inner = dict[key_type, Annotated[value_type, *rule.each]]  # type: ignore[valid-type]
    if key in _PATH_OR_NAME:
        metadata.append(pydantic.BeforeValidator(_text_of_path))
    if rule is not None:
        metadata += rule.constraints
    if inner is float:
        metadata.append(pydantic.WrapValidator(_keep_whole_numbers))
    checked = Annotated[inner, *metadata] if metadata else inner
    return checked | None if optional else checked


def _is_optional(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(
        None
    ) in typing.get_args(annotation)


def _without_none(annotation: Any) -> Any:
    rest = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    return rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007


def _instance(cls: type, checked: pydantic.BaseModel) -> Any:
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        value = getattr(checked, item.name)
        group = _group_type(hints[item.name])
        values[item.name] = _instance(group, value) if group is not None else value
    return cls(**values)


# --- error messages ------------------------------------------------------------------------------

_NUMBER_TEXT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _message(where: str | None, problems: list[str]) -> str:
    head = f"{where}: " if where else ""
    if len(problems) == 1:
        return head + problems[0]
    listed = " ".join(f"({i}) {problem}" for i, problem in enumerate(problems, start=1))
    return f"{head}{len(problems)} problems: {listed}"


def _problems(error: pydantic.ValidationError, cls: type, prefix: str) -> list[str]:
    details = error.errors()
    locations = [tuple(map(str, detail["loc"])) for detail in details]
    problems: list[str] = []
    unknown: dict[tuple[str, ...], list[str]] = {}
    for detail, loc in zip(details, locations, strict=True):
        if detail["type"] == "extra_forbidden":
            unknown.setdefault(loc[:-1], []).append(loc[-1])
            continue
        if detail["type"] == "too_short" and any(
            other[: len(loc)] == loc and other != loc for other in locations
        ):
            continue  # an item was refused, so the list looks empty: the item's error says it
        problems.append(_problem(detail, prefix + _dotted(detail["loc"])))
    for parent, names in unknown.items():
        group = ".".join(parent)
        known = sorted(f.name for f in dataclasses.fields(_group_at(cls, parent)))
        listed = ", ".join(f"{prefix}{group}.{name}" if group else prefix + name for name in names)
        problems.append(
            f"unknown setting(s) {listed}"
            f"{f' in {prefix}{group}' if group else ''}; known: {', '.join(known)}"
        )
    return problems


def _group_at(cls: type, path: tuple[str, ...]) -> type:
    for part in path:
        group = _group_type(_hints(cls)[part])
        assert group is not None, f"{part} is not a group of settings"
        cls = group
    return cls


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _rule_for(key: str) -> Rule | None:
    """The rule of a key, of a list item (heads[0]) or of a mapping value (thresholds.x)."""
    key = re.sub(r"\[\d+\]$", "", key)
    if key in _RULES:
        return _RULES[key]
    parent = _RULES.get(key.rsplit(".", 1)[0]) if "." in key else None
    return parent if parent is not None and parent.each else None


def _problem(detail: ErrorDetails, key: str) -> str:
    value, kind = detail["input"], detail["type"]
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        what = f"{_show(value)} is not a mapping of settings"
    else:
        what = f"{_show(value)} {_describe(detail)}"
    rule = _rule_for(key)
    if rule is None:
        return f"{key}: {what}"
    return f"{key}: {what}; {rule.when.get(kind, rule.allowed)}"


def _describe(detail: ErrorDetails) -> str:
    value, kind = detail["input"], detail["type"]
    context: Mapping[str, Any] = detail.get("ctx") or {}
    wanted = {
        "int_type": "a whole number",
        "float_type": "a number",
        "bool_type": "true or false",
        "string_type": "text (a string)",
        "tuple_type": "a list",
        "path_type": "a path",
    }.get(kind)
    if wanted is not None:
        if isinstance(value, bool) and kind != "bool_type":
            return f"is true/false, not {wanted}"
        if isinstance(value, str) and _NUMBER_TEXT.fullmatch(value) and kind != "string_type":
            return f"is quoted text, not {wanted} (write it without quotes)"
        return f"is not {wanted}"
    bounds = {
        "greater_than": ("is not above", "gt"),
        "greater_than_equal": ("is below", "ge"),
        "less_than": ("is not below", "lt"),
        "less_than_equal": ("is above", "le"),
    }
    if kind in bounds:
        words, name = bounds[kind]
        return f"{words} {_number(context[name])}"
    if kind == "literal_error":
        return f"is not one of {context.get('expected')}"
    if kind == "finite_number":
        return "is not finite"
    if kind in ("too_short", "string_too_short"):
        return "is empty"
    if kind == "value_error":
        return str(context.get("error", detail["msg"]))
    message = detail["msg"]
    return message[:1].lower() + message[1:]


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) and math.isfinite(value) else str(value)


def _show(value: Any) -> str:
    text = repr(str(value)) if isinstance(value, Path) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
