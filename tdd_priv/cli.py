"""`tdd-priv` command line (also `python -m tdd_priv`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from tdd_priv.config import RunConfig, load_config_file
from tdd_priv.errors import ConfigError, TddPrivError
from tdd_priv.external import audit_release, external_settings, preflight_release
from tdd_priv.methods import METHODS
from tdd_priv.pipeline import RunResult, preflight, run
from tdd_priv.realize import REALIZERS
from tdd_priv.report import per_class_words, utility_rows
from tdd_priv.report.claim import PrivacyClaim
from tdd_priv.report.escape import printable
from tdd_priv.report.figures import headline_metric, metric_name
from tdd_priv.signing import (
    TRUSTED_KEYS_ENV,
    generate_key_pair,
    key_id,
    load_public_key,
    resolve_trust_anchor,
)
from tdd_priv.verify import EXIT_MEANINGS, Verification, VerifyExit, verify_run
from tdd_priv.yamlio import load_yaml

__all__ = ["main"]

# CLI option (argparse dest) -> dotted RunConfig setting it overrides.
_OVERRIDES = {
    "data": "data.spec",
    "text_column": "data.text_column",
    "label_column": "data.label_column",
    "group_column": "data.group_columns",
    "split_column": "data.split_column",
    "train_split": "data.train_split",
    "test_split": "data.test_split",
    "heldout_split": "data.heldout_split",
    "label_names": "data.label_names",
    "public_pool": "data.public_pool",
    "drop_empty": "data.drop_empty",
    "method": "method",
    "per_class": "per_class",
    "allocation": "allocation",
    "total_size": "total_size",
    "fairness": "fairness",
    "epsilon": "privacy.epsilon",
    "delta": "privacy.delta",
    "budget_limit": "privacy.budget_limit",
    "budget_ledger": "privacy.budget_ledger",
    "seed": "seed",
    "realize": "realize",
    "encoder": "encoder.model",
    "max_length": "encoder.max_length",
    "cache_dir": "cache_dir",
    "heads": "evaluation.heads",
    "eval_seeds": "evaluation.seeds",
    "text_models": "evaluation.text_models",
    "finetune_model": "evaluation.finetune_model",
    "finetune_steps": "evaluation.finetune_steps",
    "orchestrator": "orchestrator",
    "threads": "threads",
    "device": "device",
    "overwrite": "overwrite",
    "out": "out",
    "private_out": "private_out",
    "key": "signing_key",
    "audit": "audit.level",  # audits
    "policy": "audit.policy",
    "strict": "audit.strict",
    "canaries": "audit.canaries",
    "shadows": "audit.shadows",
    "detox": "detox.mode",
    "detox_scorer": "detox.scorer",
    "detox_model": "detox.model",
    "detox_exempt_labels": "detox.exempt_labels",
}


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _key_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE with VALUE read as YAML (`500` a number, `[a, b]` a list, `1e-3` a float)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), load_yaml(value, where=f"--method-option {key.strip()}")
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tdd-priv",
        description="Distill a labeled text dataset into a tiny synthetic one, with a report.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run", help="distill one dataset into a run folder")
    runner.add_argument("--config", type=Path, help="YAML config; options below override it")
    data = _add_data_options(runner)
    data.add_argument(
        "--public-pool",
        metavar="SPEC|internal",
        help="public texts to realize from (labels ignored); needed under DP. 'internal': cut "
        "the pool from the train split (rows of your data: the release is then NOT covered)",
    )
    data.add_argument("--drop-empty", action="store_true", default=None, help="drop empty texts")
    method = runner.add_argument_group("distillation")
    method.add_argument("--method", choices=sorted(METHODS))
    method.add_argument("--per-class", type=int, metavar="K")
    method.add_argument(
        "--allocation",
        choices=["equal", "frequency", "difficulty"],
        help="texts per class: equal (default: --per-class K each), or --total-size split by "
        "each class's estimated frequency or difficulty (its share of the expected errors: "
        "frequency × error rate), estimated from the method's own release under DP (pe-vote, "
        "dpsgd-teacher, coresets, public-coreset)",
    )
    method.add_argument(
        "--total-size",
        type=int,
        metavar="N",
        help="texts in all for --allocation frequency|difficulty (default K × classes; at "
        "least one per class)",
    )
    method.add_argument(
        "--method-option",
        action="append",
        type=_key_value,
        metavar="KEY=VALUE",
        help="a method setting, e.g. iterations=500 (repeat for several)",
    )
    method.add_argument(
        "--fairness",
        choices=["none", "balanced"],
        help="balanced: match statistics per (class, group) cell with equal weight, so minority "
        "groups count as much as majority ones (dm, dc; needs a group column); default none",
    )
    method.add_argument("--realize", choices=sorted(REALIZERS))
    method.add_argument("--seed", type=int)
    privacy = runner.add_argument_group("privacy")
    exclusive = privacy.add_mutually_exclusive_group()
    exclusive.add_argument("--epsilon", type=float, metavar="E")
    exclusive.add_argument("--no-dp", action="store_true", help="run without privacy")
    privacy.add_argument("--delta", type=float, metavar="D")
    privacy.add_argument(
        "--budget-limit",
        type=float,
        metavar="E",
        help="refuse the run if the dataset's budget ledger (every DP run on this data) would "
        "compose to more than ε = E",
    )
    privacy.add_argument(
        "--budget-ledger",
        metavar="NAME",
        help="the budget ledger to spend from (default: one per dataset, by its keyed "
        "fingerprint); name one for data that changes between runs",
    )
    _add_execution_options(runner)
    _add_detox_options(runner)
    _add_audit_options(runner)
    _add_output_options(runner)
    _add_audit_command(commands)
    _add_verify_and_keys(commands)
    _add_clean_command(commands)
    _add_detox_command(commands)
    _add_deploy_command(commands)
    _add_study_command(commands)
    _add_benchmark_command(commands)
    return parser


def _add_data_options(command: argparse.ArgumentParser) -> Any:
    """The data options `run` and `audit` share; returns the group for command-specific ones."""
    data = command.add_argument_group("data")
    data.add_argument("--data", help="CSV/JSONL/Parquet path, hf:NAME[:CONFIG], or demo")
    data.add_argument("--text-column")
    data.add_argument("--label-column")
    data.add_argument("--group-column", action="append", help="repeat for several")
    data.add_argument("--split-column")
    data.add_argument("--train-split")
    data.add_argument("--test-split")
    data.add_argument("--label-names", type=_csv, help="comma-separated names for label ids")
    return data


def _add_output_options(command: argparse.ArgumentParser) -> None:
    """The run folders `run` and `audit` write: the release and the private record."""
    command.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="the release: what may be shared"
    )
    command.add_argument(
        "--private-out",
        type=Path,
        metavar="DIR",
        help="the run's private record (splits, row ids, canary secrets; never share it); "
        "default: DIR.private beside --out",
    )


def _add_execution_options(command: argparse.ArgumentParser) -> Any:
    """Encoder, evaluation and execution options `run` and `audit` share; returns the group."""
    other = command.add_argument_group("encoder, evaluation, execution")
    other.add_argument("--encoder", help="local folder or hub name (default: all-MiniLM-L6-v2)")
    other.add_argument("--max-length", type=int)
    other.add_argument("--cache-dir", type=Path)
    other.add_argument("--heads", type=_csv, help="comma-separated: linear,mlp")
    other.add_argument("--eval-seeds", type=int)
    other.add_argument(
        "--text-models",
        type=_csv,
        metavar="NAMES",
        help="comma-separated models trained on the texts themselves: tfidf-lr (default), "
        "finetune (a transformer fine-tuned end to end: slow on CPU); '' for none",
    )
    other.add_argument(
        "--finetune-model",
        metavar="FOLDER",
        help="checkpoint for finetune: a local Hugging Face encoder folder (default: the "
        "bundled all-MiniLM-L6-v2)",
    )
    other.add_argument(
        "--finetune-steps", type=int, metavar="N", help="optimiser steps per fine-tune"
    )
    other.add_argument("--orchestrator", choices=["prefect", "local"])
    other.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="at most N CPU threads for torch (default: every CPU available, within "
        "OMP_NUM_THREADS); small models always use one",
    )
    other.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        help="where tensors live: cpu (default), cuda, or auto (cuda when available)",
    )
    other.add_argument("--no-progress", action="store_true")
    other.add_argument(
        "--overwrite",
        action="store_true",
        default=None,
        help="replace existing run folders, only ones written by tdd-priv (never an input's "
        "folder, the working directory, the home folder or a folder above them)",
    )
    other.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="Ed25519 private key to sign the run with (default: $TDD_PRIV_SIGNING_KEY, else "
        "your per-user key, created on first use)",
    )
    return other


# --- toxicity screening --------------------------------------------------------------------------


def _threshold(text: str) -> tuple[str | None, float]:
    """A threshold for every label ("0.4") or for one ("LABEL=0.4") -> (label or None, T)."""
    label, sep, value = text.rpartition("=")
    try:
        threshold = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected T or LABEL=T, got {text!r}") from None
    if sep and not label.strip():
        raise argparse.ArgumentTypeError(f"expected T or LABEL=T, got {text!r}")
    return (label.strip() if sep else None), threshold


_DETOX_HELP = {
    "filter": "filter: replace texts over a threshold by the next-best clean candidate of the "
    "same class",
    "flag": "flag: keep and mark them",
    "off": "off (default): no screening",
}


def _add_detox_options(
    runner: argparse.ArgumentParser, modes: tuple[str, ...] = ("filter", "flag", "off")
) -> None:
    detox = runner.add_argument_group("toxicity screening of the released texts")
    detox.add_argument(
        "--detox",
        choices=list(modes),
        help="; ".join(_DETOX_HELP[mode] for mode in modes)
        if "filter" in modes
        else "flag: score every released text and mark those over a threshold (nothing is "
        "removed); off (default): no scoring",
    )
    detox.add_argument(
        "--detox-scorer", metavar="detoxify|profanity|classifier", help="default: profanity"
    )
    detox.add_argument(
        "--detox-model",
        metavar="NAME_OR_PATH",
        help="detoxify: a model name (needs network) or a local checkpoint (a pickle: name only "
        "files you trust); classifier: a folder from `tdd-priv detox train`",
    )
    detox.add_argument(
        "--detox-threshold",
        action="append",
        type=_threshold,
        metavar="T|LABEL=T",
        help="threshold in [0, 1] for every scorer label, or for one (repeat); default 0.5",
    )
    detox.add_argument(
        "--detox-exempt-labels",
        type=_csv,
        metavar="CLASS,…",
        help="classes whose texts are scored but never removed (e.g. a hateful class)",
    )


def _detox_overrides(args: argparse.Namespace, base: RunConfig) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    thresholds = dict(base.detox.thresholds)
    for label, value in args.detox_threshold or ():
        if label is None:
            overrides["detox.default_threshold"] = value
        else:
            thresholds[label] = value
    if thresholds != base.detox.thresholds:
        overrides["detox.thresholds"] = thresholds
    return overrides


def _add_detox_command(commands: Any) -> None:
    detox = commands.add_parser("detox", help="toxicity scorers for --detox")
    actions = detox.add_subparsers(dest="detox_command", required=True)
    train = actions.add_parser(
        "train",
        help="train the `classifier` scorer (logistic regression over sentence embeddings)",
        description="Train a toxicity classifier on a labeled file and save it to MODEL "
        "(safetensors weights + JSON); use it with --detox-scorer classifier --detox-model MODEL.",
    )
    train.add_argument("--data", required=True, help="CSV/JSONL/Parquet path or hf:NAME")
    train.add_argument("--text-column", default="text")
    train.add_argument("--label-column", default="toxic", help="a binary column (default toxic)")
    train.add_argument("--positive", default="1", help="the toxic class of it (default 1)")
    train.add_argument("--split-column", help="train on --train-split, hold out --test-split")
    train.add_argument("--train-split", default="train")
    train.add_argument("--test-split", default="test")
    train.add_argument("--score-label", default="toxicity", help="the scorer's label name")
    train.add_argument("--encoder", help="local folder or hub name (default: all-MiniLM-L6-v2)")
    train.add_argument("--max-length", type=int)
    train.add_argument("--cache-dir", type=Path)
    train.add_argument("--regularization", type=float, default=1.0, help="inverse strength C")
    train.add_argument("--no-progress", action="store_true")
    train.add_argument("--out", type=Path, required=True, metavar="MODEL")


def _detox(args: argparse.Namespace) -> int:
    from flows.extensions import train_toxicity_classifier  # the CLI may import flows
    from tdd_priv.config import default_cache_dir
    from tdd_priv.encode import EncoderConfig

    defaults = EncoderConfig()
    trained = train_toxicity_classifier(
        data=args.data,
        out=args.out,
        text_column=args.text_column,
        label_column=args.label_column,
        positive=args.positive,
        split_column=args.split_column,
        train_split=args.train_split,
        test_split=args.test_split,
        label=args.score_label,
        encoder=EncoderConfig(
            model=args.encoder or defaults.model, max_length=args.max_length or defaults.max_length
        ),
        cache_dir=args.cache_dir or default_cache_dir(),
        regularization=args.regularization,
        progress=not args.no_progress,
    )
    metrics = ", ".join(f"{name} {value:.3f}" for name, value in trained.metrics.items())
    print(f"classifier   {trained.out}  ({trained.train_rows} training rows)")
    print(f"held out     {trained.heldout_rows} rows: {metrics or 'none held out'} (at 0.5)")
    print(f"use it with  --detox filter --detox-scorer classifier --detox-model {trained.out}")
    return 0


# --------------------------------------------------------------------------------------------------


def _add_verify_and_keys(commands: Any) -> None:
    exit_codes = "\n".join(
        textwrap.fill(
            f"{int(code)}  {code.name.replace('_', ' ')}: {meaning}",
            width=88,
            initial_indent="  ",
            subsequent_indent="     ",
        )
        for code, meaning in EXIT_MEANINGS.items()
    )
    description = (
        "Run every check on a run folder and list each one (✓ passed, ⚠ passed with a warning, "
        "✗ failed). Who signed is known only against a key you name: the signer's public key "
        "(--key), a keyring (--keyring), or the signer's key id (--key-id); when none is given, "
        f"${TRUSTED_KEYS_ENV} (a key file or keyring folder). Without any, the checks run "
        "against the key shipped in the folder and the result is UNAUTHENTICATED."
    )
    verifier = commands.add_parser(
        "verify",
        help="check a run folder's signature (against keys you trust), digests, schema and ε",
        description=textwrap.fill(description, width=88),
        epilog=f"exit status:\n{exit_codes}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verifier.add_argument("dir", type=Path, metavar="DIR", help="the run folder")
    verifier.add_argument(
        "--key",
        type=Path,
        action="append",
        metavar="PUBKEY",
        help="a trusted public key (PEM), obtained from the signer, not from the folder; repeat "
        "for several (any of them may have signed)",
    )
    verifier.add_argument(
        "--keyring",
        type=Path,
        action="append",
        metavar="FOLDER",
        help="a folder of trusted public keys (*.pub); any of them may have signed",
    )
    verifier.add_argument(
        "--key-id",
        action="append",
        metavar="HEX",
        help="the signer's key id (64 hex, or its first 16 or more): the key shipped in the "
        "folder is used only if its id matches",
    )
    keys = commands.add_parser("keys", help="manage Ed25519 signing keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    generate = actions.add_parser(
        "generate", help="write a new private key FILE (mode 0600) and its public key FILE.pub"
    )
    generate.add_argument("file", type=Path, metavar="FILE")
    identify = actions.add_parser(
        "id", help="print the key id of a public key (to give to a reviewer for --key-id)"
    )
    identify.add_argument("file", type=Path, metavar="PUBKEY")


def _common_overrides(args: argparse.Namespace, base: RunConfig) -> dict[str, Any]:
    """The settings a command's options override (options it does not have are skipped)."""
    overrides: dict[str, Any] = {
        setting: getattr(args, option)
        for option, setting in _OVERRIDES.items()
        if getattr(args, option, None) is not None
    }
    if args.no_progress:
        overrides["progress"] = False
    overrides.update(_detox_overrides(args, base))
    return overrides


def _run_config(args: argparse.Namespace) -> RunConfig:
    base = load_config_file(args.config) if args.config else RunConfig()
    overrides = _common_overrides(args, base)
    if args.no_dp:
        overrides["privacy.enabled"] = False
    elif args.epsilon is not None:
        overrides["privacy.enabled"] = True
    if args.method_option:
        overrides["method_options"] = {**base.method_options, **dict(args.method_option)}
    return base.with_overrides(overrides)


def _summary(result: RunResult) -> str:
    report = result.report
    rows = utility_rows(report)
    width = max(len(label) for label, _ in rows)
    claim = PrivacyClaim.from_report(report)
    headline_name = metric_name(headline_metric(report["utility"]))
    lines = [
        "",
        f"run folder   {result.out}",
        f"method       {report['method']['name']}, {report['synthetic']['size']} texts "
        f"({printable(per_class_words(report['synthetic']))})",
        f"privacy      {claim.badge}: {claim.statement}",
        f"test scores, mean ± std over models (headline first: {headline_name}):",
        *(f"  {label:<{width}}  {value}" for label, value in rows),
    ]
    reason = report["utility"].get("protocol", {}).get("headline_reason")
    if reason:
        lines.append(f"  headline {headline_name}, because {reason}")
    if "toxicity" in report.get("audits", {}):
        lines.insert(4, f"toxicity     {report['audits']['toxicity']['statement']}")
    release = report.get("release")
    if release is not None:  # tdd-priv audit: what was audited, and where its copy is
        sizes = release["per_class"]
        lines[2] = (
            f"method       external (made outside tdd-priv), {report['synthetic']['size']} texts "
            f"({sizes['min']}–{sizes['max']} per class; baselines at k = {sizes['baselines']})"
        )
        lines.insert(
            3,
            f"release      {release['file']} ({release['rows']} rows, sha256 "
            f"{release['sha256'][:16]}…), copied to {result.out / release['copy']}",
        )
    if result.private is not None:
        lines.insert(2, f"private      {result.private}  (splits, row ids: never share it)")
    return "\n".join(lines)


# --- audits --------------------------------------------------------------------------------------


_AUDIT_HELP = {
    "none": "none: no audits or verdicts",
    "basic": "basic (default): membership inference without shadow models, leakage, fairness",
    "full": "full: adds LiRA/RMIA with shadow re-runs and canaries sized from the claimed ε",
}


def _add_audit_options(
    runner: argparse.ArgumentParser,
    levels: tuple[str, ...] = ("none", "basic", "full"),
    *,
    canaries: bool = True,
) -> None:
    audit = runner.add_argument_group("audits and verdicts")
    audit.add_argument(
        "--audit", choices=list(levels), help="; ".join(_AUDIT_HELP[level] for level in levels)
    )
    audit.add_argument(
        "--policy", type=Path, metavar="FILE", help="YAML thresholds (default: the shipped policy)"
    )
    audit.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="exit with status 1 when any verdict fails (the run folder is still written and "
        "signed first)",
    )
    if not canaries:
        return
    audit.add_argument(
        "--canaries",
        type=_canary_count,
        metavar="N|auto",
        help="canary records for the one-run ε audit, each inserted with probability 1/2: a "
        "count, or auto: the fewest whose audit can fail at the claimed ε (default: auto with "
        "--audit full under DP, else 0)",
    )
    audit.add_argument(
        "--shadows", type=int, metavar="N", help="shadow re-runs for --audit full (default 16)"
    )


def _canary_count(text: str) -> int | str:
    """--canaries: a count (0 or more) or 'auto'."""
    if text == "auto":
        return text
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or 'auto', got {text!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"expected a count of 0 or more, got {count}")
    return count


def _verdict_line(report: dict[str, Any]) -> str | None:
    verdicts = report.get("verdicts", {})
    if not verdicts:
        return None
    counts = dict.fromkeys(("PASS", "FAIL", "INCONCLUSIVE", "SKIPPED"), 0)
    for verdict in verdicts.values():
        counts[verdict["status"]] = counts.get(verdict["status"], 0) + 1
    line = "verdicts     " + ", ".join(f"{n} {status}" for status, n in counts.items())
    details = [
        f"{label}: {', '.join(names)}"
        for label, status in (("failed", "FAIL"), ("inconclusive", "INCONCLUSIVE"))
        if (names := [name for name, v in verdicts.items() if v["status"] == status])
    ]
    return line + (f" ({'; '.join(details)})" if details else "")


def _strict_failures(config: RunConfig, report: dict[str, Any]) -> list[str]:
    """The verdicts that fail a --strict run: FAIL only (INCONCLUSIVE is no evidence against
    the run, and no evidence for it either: the report says so)."""
    if not config.audit.strict:
        return []
    return [name for name, v in report.get("verdicts", {}).items() if v["status"] == "FAIL"]


# --------------------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    config = _run_config(args)
    if config.orchestrator == "prefect":
        preflight(config)  # bad input fails in a second, not after the server's start-up
        from flows.distill import run_distill_flow  # the CLI is the one library module allowed this

        result = run_distill_flow(config)
    else:
        from flows.extensions import build_extensions  # toxicity scorers etc. from audits/

        result = run(config, extensions=build_extensions(config))
    return _finish(config, result)


def _finish(config: RunConfig, result: RunResult) -> int:
    """Print the run's summary and verdicts; 1 when --strict and a verdict failed."""
    print(printable(_summary(result)))  # labels and names come from data: no terminal escapes
    verdicts = _verdict_line(result.report)
    if verdicts:
        print(printable(verdicts))
    failed = _strict_failures(config, result.report)
    if failed:
        print(
            f"tdd-priv: --strict: {len(failed)} verdict(s) failed ({', '.join(failed)}); the run "
            f"folder {result.out} was written and signed, with the verdicts in its report.",
            file=sys.stderr,
        )
        return 1
    return 0


def _verify(args: argparse.Namespace) -> int:
    trust = resolve_trust_anchor(
        keys=args.key or (), keyrings=args.keyring or (), key_ids=args.key_id or (),
        environ=os.environ,
    )  # fmt: skip
    verification = verify_run(args.dir, trust=trust)
    for check in verification.checks:
        print(f"{check.symbol} {check.name}: {check.detail}")
    print(_verify_conclusion(verification))
    return int(verification.outcome)


def _verify_conclusion(verification: Verification) -> str:
    """The last line of `verify`: what the outcome proves, in one line."""
    total, folder = len(verification.checks), verification.run_dir
    warned = len(verification.warnings)
    warnings = f" ({warned} warning{'s' if warned != 1 else ''})" if warned else ""
    outcome, signer = verification.outcome, verification.signer
    if outcome is VerifyExit.NOT_VERIFIED:
        failures = verification.failures
        return (
            f"NOT VERIFIED: {len(failures)} of {total} checks failed for {folder}: "
            f"{', '.join(check.name for check in failures)}"
        )
    # Every check passed, the signature included, so a signer is known.
    signer_id = signer.key_id if signer is not None else "?"
    if outcome is VerifyExit.VERIFIED:
        source = signer.source if signer is not None else "a trusted key"
        return (
            f"verified: all {total} checks passed{warnings} for {folder}, signed by key id "
            f"{signer_id} ({source})"
        )
    return (
        f"UNAUTHENTICATED: all {total} checks passed{warnings} for {folder} against the key "
        f"shipped in it (key id {signer_id[:16]}…); that proves only that the files match "
        "what that key signed, and anyone can make such a folder. Name the signer's key with "
        f"--key, --keyring or --key-id (or ${TRUSTED_KEYS_ENV}) to learn who signed it."
    )


def _keys(args: argparse.Namespace) -> int:
    if args.keys_command == "id":
        print(key_id(load_public_key(args.file)))
        return 0
    public_key = generate_key_pair(args.file)
    print(f"private key  {args.file}  (mode 0600: keep it secret)")
    print(f"public key   {args.file}.pub  (give it to whoever verifies your runs)")
    print(f"key id       {key_id(public_key)}")
    return 0


# --- auditing a release made elsewhere -----------------------------------------------------------


def _add_audit_command(commands: Any) -> None:
    auditor = commands.add_parser(
        "audit",
        help="audit a synthetic text release made outside tdd-priv into a signed run folder",
        description="Audit a labeled synthetic text file made by anything (an LLM, a "
        "distillation paper's code, another tdd-priv run) against the data it was made from: "
        "leakage against every labeled row, membership inference (members: the train split; "
        "non-members: the held-out split), utility against full data and the random / herding "
        "/ k-center baselines at the same k, fairness, toxicity (flag only), verdicts. Writes "
        "the same signed run folder as `run`, method external, with NO privacy claim. The data "
        "needs a split column. See the README, 'Auditing a release made elsewhere'.",
    )
    auditor.add_argument(
        "--config",
        type=Path,
        help="YAML config (a run config works: its data, encoder, evaluation, audit and output "
        "settings are used, its distillation and privacy settings ignored); options override it",
    )
    auditor.add_argument(
        "--release",
        type=Path,
        required=True,
        metavar="FILE",
        help="the release: CSV/JSONL/Parquet with a 'text' and a 'label' column (class names or "
        "ids of the data), optionally 'soft_label'; a run's synthetic/data.jsonl works too",
    )
    data = _add_data_options(auditor)
    data.add_argument(
        "--heldout-split",
        metavar="S",
        help="the split of rows the release's maker never saw: the membership audit's "
        "non-members (default: the test split, which makers do not train or tune on)",
    )
    data.add_argument(
        "--public-pool",
        metavar="SPEC",
        help="public texts (labels ignored): the report counts the released texts that are "
        "public texts, after setting aside pool texts that equal a labeled row",
    )
    data.add_argument("--drop-empty", action="store_true", default=None, help="drop empty texts")
    other = _add_execution_options(auditor)
    other.add_argument("--seed", type=int)
    _add_detox_options(auditor, ("flag", "off"))
    _add_audit_options(auditor, ("none", "basic"), canaries=False)
    _add_output_options(auditor)


def _audit_config(args: argparse.Namespace) -> RunConfig:
    base = load_config_file(args.config) if args.config else RunConfig()
    overrides = _common_overrides(args, base)
    overrides["release"] = str(args.release)
    return external_settings(base.with_overrides(overrides))


def _audit(args: argparse.Namespace) -> int:
    config = _audit_config(args)
    if config.orchestrator == "prefect":
        preflight_release(config)  # a bad release fails in a second, not after server start-up
        from flows.external import run_audit_release_flow  # the CLI may import flows

        result = run_audit_release_flow(config)
    else:
        from flows.extensions import build_extensions  # auditors and scorers from audits/

        result = audit_release(config, extensions=build_extensions(config))
    return _finish(config, result)


# --- privacy–utility studies ---------------------------------------------------------------------

STUDY_RUNNERS = ("local", "dask")  # flows.runners.RUNNERS (not imported here: it loads Prefect)


def _add_runner_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--runner",
        choices=STUDY_RUNNERS,
        default="local",
        help="local (default): one cell after another here; dask: cells as Dask tasks on a "
        "new LocalCluster, or on --dask-address",
    )
    command.add_argument(
        "--dask-address", metavar="ADDR", help="an existing Dask scheduler, e.g. tcp://host:8786"
    )
    command.add_argument(
        "--workers", type=int, metavar="N", help="worker processes of the LocalCluster (default 2)"
    )


def _runner_options(args: argparse.Namespace) -> Any:
    if args.runner != "dask" and (args.dask_address or args.workers is not None):
        raise TddPrivError("--dask-address and --workers need --runner dask.")
    if args.dask_address and args.workers is not None:
        raise TddPrivError("--workers sizes a new LocalCluster; an existing one has its workers.")
    from flows.runners import RunnerOptions  # the CLI is the one library module allowed this

    return RunnerOptions(args.runner, workers=args.workers or 2, address=args.dask_address)


def _stopped_with_cells_kept(stop: KeyboardInterrupt, folder: Path) -> int:
    signum = stop.signum if isinstance(stop, Stopped) else signal.SIGINT
    print(
        f"tdd-priv: stopped by {signal.Signals(signum).name}; finished cells are kept in "
        f"{folder}: run the same command again to resume.",
        file=sys.stderr,
    )
    return 128 + signum


def _add_study_command(commands: Any) -> None:
    study = commands.add_parser(
        "study",
        help="privacy–utility sweep: a grid of runs, then a table and figures",
        description="Run every cell of a sweep file (a base run config and a grid of settings) "
        "as a run folder DIR/cells/<id>/, then write DIR/study.csv, DIR/study.md and "
        "DIR/figures/. Finished cells are reused, so an interrupted study resumes. See "
        "docs/studies.md.",
    )
    study.add_argument("--config", type=Path, required=True, metavar="SWEEP", help="sweep YAML")
    study.add_argument("--out", type=Path, required=True, metavar="DIR")
    _add_runner_options(study)


def _study(args: argparse.Namespace) -> int:
    from tdd_priv.study import check_study_folder, expand_cells, load_sweep

    options = _runner_options(args)
    sweep = load_sweep(args.config)
    cells = expand_cells(sweep, args.out)  # every cell's config checked; nothing written yet
    check_study_folder(args.out)
    checked: list[Any] = []
    for cell in cells:  # bad data fails now, not after a cluster and a server have started
        if cell.config.data not in checked:
            preflight(cell.config)
            checked.append(cell.config.data)
    from flows.study import run_study  # the CLI is the one library module allowed this

    try:
        result = run_study(sweep, args.out, options)
    except KeyboardInterrupt as stop:
        return _stopped_with_cells_kept(stop, args.out / "cells")
    counts = {s: sum(o.status == s for o in result.outcomes) for s in ("ran", "reused", "failed")}
    print(f"\nstudy folder {result.out}  ({len(cells)} cells, {result.wall_s:.0f} s)")
    print(f"cells        {counts['ran']} ran, {counts['reused']} reused, {counts['failed']} failed")
    print(f"table        {result.out / 'study.csv'}, {result.out / 'study.md'}")
    print(f"figures      {result.out / 'figures'}")
    for outcome in result.failed:
        print(f"tdd-priv: cell {outcome.id} failed: {outcome.error}", file=sys.stderr)
    return 1 if result.failed else 0


def _add_benchmark_command(commands: Any) -> None:
    benchmark = commands.add_parser(
        "benchmark",
        help="a standard benchmark: every method and its peers under one protocol, a leaderboard",
        description="Run a benchmark suite (datasets, methods, k, ε, runs, evaluation) as one "
        "study per dataset, then write DIR/leaderboard.{csv,json,md,html} and DIR/figures/. "
        "Finished cells are reused, so an interrupted benchmark resumes. See "
        "docs/benchmarks/README.md for the suites and the protocol.",
    )
    benchmark.add_argument(
        "--suite",
        required=True,
        metavar="standard|full|quick|FILE",
        help="a shipped suite (standard: the three shared datasets at k = 1, 10, 50; full: every "
        "k from 1 to 50 and more methods; quick: one dataset, two methods, one k and ε) or a "
        "suite YAML file",
    )
    benchmark.add_argument("--out", type=Path, required=True, metavar="DIR")
    benchmark.add_argument(
        "--datasets",
        type=Path,
        default=Path("../shared/datasets"),
        metavar="DIR",
        help="the shared datasets folder that {datasets} in a suite names "
        "(default ../shared/datasets)",
    )
    benchmark.add_argument(
        "--external",
        action="append",
        default=[],
        metavar="DATASET:NAME=FILE",
        help="also score a labeled synthetic text file made elsewhere on DATASET as NAME "
        "(repeat for several); audit it with `tdd-priv audit`",
    )
    _add_runner_options(benchmark)


def _benchmark(args: argparse.Namespace) -> int:
    from tdd_priv.benchmark import dataset_sweep, load_suite, parse_external, prepare_dataset
    from tdd_priv.study import expand_cells

    options = _runner_options(args)
    suite = load_suite(args.suite, datasets=args.datasets)
    externals = [parse_external(text) for text in args.external]
    from flows.benchmark import check_benchmark_folder, run_benchmark

    check_benchmark_folder(args.out)
    for entry in suite.datasets:  # every cell checked and every dataset read before any run
        if not isinstance(entry.public_pool, str):
            continue  # a simulated pool is cut from data read when the benchmark starts
        sweep = dataset_sweep(suite, prepare_dataset(entry, args.out), args.out)
        preflight(expand_cells(sweep, args.out / "preflight")[0].config)
    try:
        result = run_benchmark(suite, args.out, options, externals=externals)
    except KeyboardInterrupt as stop:
        return _stopped_with_cells_kept(stop, args.out / "studies")
    rows = [row for row in result.leaderboard.rows if row.kind in ("method", "reference")]
    print(f"\nbenchmark    {result.out}  ({len(rows)} rows, {result.wall_s:.0f} s)")
    print(f"leaderboard  {result.out / 'leaderboard.md'} (.csv, .json, .html)")
    print(f"figures      {result.out / 'figures'}")
    if result.failed:
        print(
            f"tdd-priv: {result.failed} cell(s) failed; see each study's study.json",
            file=sys.stderr,
        )
    return 1 if result.failed else 0


# --------------------------------------------------------------------------------------------------


# --- scheduled deployments -----------------------------------------------------------------------


def _add_deploy_command(commands: Any) -> None:
    deploy = commands.add_parser(
        "deploy",
        help="serve a scheduled deployment of the distill flow (needs a Prefect server)",
        description="Register a deployment of the distill flow with a cron schedule on the "
        "Prefect server at $PREFECT_API_URL and run its scheduled (and triggered) runs here "
        "until interrupted. Each run writes a new folder RUNS_DIR/<UTC start>-<flow run name>. "
        "See docs/operations.md.",
    )
    deploy.add_argument("--config", type=Path, required=True, help="YAML run config")
    deploy.add_argument("--cron", required=True, help='cron schedule, e.g. "0 2 * * *"')
    deploy.add_argument("--timezone", default="UTC", help="IANA time zone of --cron (UTC)")
    deploy.add_argument("--name", help="deployment name (default: the config file's stem)")
    deploy.add_argument(
        "--runs-dir", type=Path, default=Path("runs/scheduled"), help="default runs/scheduled"
    )
    deploy.add_argument("--paused", action="store_true", help="register with the schedule paused")


def _deploy(args: argparse.Namespace) -> int:
    from flows.deploy import DeploymentSpec, serve_deployment  # the CLI may import flows

    spec = DeploymentSpec(
        name=args.name or args.config.stem,
        cron=args.cron,
        runs_dir=args.runs_dir,
        timezone=args.timezone,
        paused=args.paused,
    )
    serve_deployment(load_config_file(args.config), spec)
    return 0


# --- cleaning up after killed runs ---------------------------------------------------------------


def _add_clean_command(commands: Any) -> None:
    clean = commands.add_parser(
        "clean",
        help="remove what killed runs left behind (staging folders, cache temporaries)",
        description="Remove hidden staging folders (.NAME.partial-*) of runs that are no longer "
        "alive, temporaries of cache writes whose writer is gone, and free lock files, in each "
        "DIR and the folders directly inside it. A live run's files are never touched (each "
        "is guarded by a lock its run holds). See docs/operations.md.",
    )
    clean.add_argument(
        "dirs",
        type=Path,
        nargs="*",
        metavar="DIR",
        help="folders to clean (default: the embedding cache folder and the current folder)",
    )


def _clean(args: argparse.Namespace) -> int:
    from tdd_priv.config import default_cache_dir
    from tdd_priv.rundir import clean_stale

    roots = args.dirs or [default_cache_dir(), Path.cwd()]
    removed = clean_stale(roots, depth=1)
    for path in removed:
        print(f"removed {path}")
    where = ", ".join(str(root) for root in roots)
    print(f"{len(removed)} leftover(s) of interrupted runs removed from {where}")
    return 0


_COMMANDS = {
    "run": _run,
    "audit": _audit,
    "verify": _verify,
    "keys": _keys,
    "detox": _detox,
    "deploy": _deploy,
    "study": _study,
    "benchmark": _benchmark,
    "clean": _clean,
}

# --- stop signals --------------------------------------------------------------------------------

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stop signal, raised in the main thread wherever it was when the signal came, so that
    every `finally` and `except BaseException` on the way up removes what it staged, and the
    temporary Prefect server is stopped. A KeyboardInterrupt, because Prefect and other
    libraries treat those as a person stopping the program (no crash traceback)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """For the block: SIGINT, SIGTERM and SIGHUP raise `Stopped` (those the process was not told
    to ignore); once one has, the others are ignored so that the clean-up runs to its end
    (SIGKILL still ends the process)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        for other in STOP_SIGNALS:
            signal.signal(other, signal.SIG_IGN)
        raise Stopped(signum)

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers live in the main thread only
        return
    previous = {
        signum: signal.signal(signum, stop)
        for signum in STOP_SIGNALS
        if signal.getsignal(signum) is not signal.SIG_IGN  # e.g. SIGHUP under nohup: stay deaf
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():  # None: set outside Python
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        with _stop_signals_raise():
            return _COMMANDS[args.command](args)
    except TddPrivError as error:
        print(f"tdd-priv: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        signum = stop.signum if isinstance(stop, Stopped) else signal.SIGINT
        print(
            f"tdd-priv: stopped by {signal.Signals(signum).name}; what it had staged was removed "
            "and no unfinished run folder was written.",
            file=sys.stderr,
        )
        return 128 + signum
