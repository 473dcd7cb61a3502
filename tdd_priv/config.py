"""Run configuration: one frozen dataclass tree, read from YAML, overridden by the CLI.

`RunConfig` is the single source of every setting of a run; `config.resolved.yaml` in the run
folder is `RunConfig.to_dict()` after defaults and overrides, so a run can be repeated from it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from tdd_priv.encode import EncoderConfig
from tdd_priv.errors import ConfigError

__all__ = [
    "INTERNAL_POOL",
    "PRIVATE_SUFFIX",
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
    "default_cache_dir",
    "load_config_file",
]

Orchestrator = Literal["prefect", "local"]
INTERNAL_POOL = "internal"  # data.public_pool: cut the pool from the train split (an opt-in)
PRIVATE_SUFFIX = ".private"  # the private record's folder: <out>.private
_NOT_PATHS = ("demo", INTERNAL_POOL)  # data specs that name no file
# --fairness: "balanced" matches per (class, group) cell with equal weight (dm, dc; issue 5).
FairnessMode = Literal["none", "balanced"]


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


@dataclass(frozen=True)
class EvalConfig:
    """How synthetic sets are judged: fresh heads, several seeds each, on the real test split."""

    heads: tuple[str, ...] = ("linear", "mlp")
    text_models: tuple[str, ...] = ("tfidf-lr",)
    baselines: tuple[str, ...] = ("random", "herding", "kcenter")
    seeds: int = 5
    steps: int = 300


# --- toxicity screening (issue 6) -----------------------------------------------------------------

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
        if self.mode not in get_args(DetoxMode):
            raise ConfigError(
                f"detox.mode must be one of {', '.join(get_args(DetoxMode))}, got {self.mode!r}."
            )
        limits = {**self.thresholds, "default_threshold": self.default_threshold}
        for label, value in limits.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ConfigError(
                    f"detox threshold for {label!r} must lie in [0, 1], got {value!r}."
                )


# --------------------------------------------------------------------------------------------------


# --- audits (issue 5) ---------------------------------------------------------------------------

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
        if self.level not in get_args(AuditLevel):
            raise ConfigError(
                f"audit.level must be one of {', '.join(get_args(AuditLevel))}, got {self.level!r}."
            )
        canaries = self.canaries
        if isinstance(canaries, bool) or not (
            canaries is None or canaries == "auto" or isinstance(canaries, int)
        ):
            raise ConfigError(
                f"audit.canaries must be a count, 'auto' (sized from the claimed ε) or unset, "
                f"got {canaries!r}."
            )
        if isinstance(canaries, int) and canaries < 0:
            raise ConfigError(f"audit.canaries must be 0 or more, got {canaries}.")
        if self.shadows < 0 or self.shadows == 1:
            raise ConfigError(
                f"audit.shadows must be 0 or at least 2 (LiRA needs models with and without each "
                f"record), got {self.shadows}."
            )

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
    # Ed25519 private key that signs the run folder; None: $TDD_PRIV_SIGNING_KEY, else the
    # per-user key (created on first use). See tdd_priv.signing.
    signing_key: Path | None = None

    def __post_init__(self) -> None:
        if self.per_class < 1:
            raise ConfigError(f"per_class must be at least 1, got {self.per_class}.")
        if self.evaluation.seeds < 1:
            raise ConfigError(f"evaluation.seeds must be at least 1, got {self.evaluation.seeds}.")
        if self.fairness not in get_args(FairnessMode):
            raise ConfigError(
                f"fairness must be one of {', '.join(get_args(FairnessMode))}, got "
                f"{self.fairness!r} (balanced: group-balanced matching for dm and dc)."
            )
        if self.orchestrator not in get_args(Orchestrator):
            raise ConfigError(
                f"orchestrator must be one of {get_args(Orchestrator)}, got {self.orchestrator!r}."
            )
        for name in ("test_fraction", "audit_fraction", "public_fraction"):
            value = getattr(self.data, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"data.{name} must lie in [0, 1), got {value}.")

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
        pool, policy and encoder files are named by their file name only). The full config goes
        to the private folder."""
        settings = self.to_dict()
        settings["privacy"]["noise_seed"] = None
        for key in ("out", "private_out", "cache_dir", "signing_key"):
            settings[key] = None
        data = settings["data"]
        data["spec"] = _file_name_only(data["spec"])
        data["public_pool"] = _file_name_only(data["public_pool"])
        settings["audit"]["policy"] = _file_name_only(settings["audit"]["policy"])
        settings["encoder"]["model"] = _file_name_only(settings["encoder"]["model"])
        return settings

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> RunConfig:
        """Build from a nested mapping; unknown keys are errors that list the known ones."""
        return _build(cls, payload, where="config")

    def with_overrides(self, overrides: Mapping[str, Any]) -> RunConfig:
        """A copy with dotted-key overrides applied, e.g. {"data.spec": "x.csv", "seed": 3}."""
        merged = self.to_dict()
        for dotted, value in overrides.items():
            node = merged
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node[part]
            node[leaf] = value
        return RunConfig.from_dict(merged)


def load_config_file(path: Path) -> RunConfig:
    """Read a YAML config file; relative `out` and `cache_dir` stay relative to the CWD."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        payload = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(payload, Mapping):
        raise ConfigError(f"{path} must hold a mapping of settings at its top level.")
    return _build(RunConfig, payload, where=str(path))


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


_NESTED: dict[str, type] = {
    "data": DataConfig,
    "privacy": PrivacyConfig,
    "encoder": EncoderConfig,
    "evaluation": EvalConfig,
    "detox": DetoxConfig,
    "audit": AuditConfig,
}
_PATHS = {"out", "private_out", "cache_dir", "signing_key", "policy"}
_TUPLES = {"group_columns", "label_names", "heads", "text_models", "baselines", "exempt_labels"}


def _build(cls: type, payload: Mapping[str, Any], *, where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(payload) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)} for {cls.__name__}; "
            f"known: {', '.join(sorted(known))}."
        )
    kwargs: dict[str, Any] = {}
    for key, value in payload.items():
        if cls is RunConfig and key in _NESTED:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: '{key}' must be a mapping of settings.")
            kwargs[key] = _build(_NESTED[key], value, where=f"{where}: {key}")
        elif key in _PATHS and value is not None:
            kwargs[key] = Path(value)
        elif key in _TUPLES and value is not None:
            kwargs[key] = (value,) if isinstance(value, str) else tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)
