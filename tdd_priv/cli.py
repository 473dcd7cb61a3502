"""`tdd-priv` command line (also `python -m tdd_priv`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tdd_priv.config import RunConfig, load_config_file
from tdd_priv.errors import ConfigError, TddPrivError
from tdd_priv.methods import METHODS
from tdd_priv.pipeline import RunResult, preflight, run
from tdd_priv.realize import REALIZERS
from tdd_priv.report import utility_rows
from tdd_priv.report.claim import PrivacyClaim
from tdd_priv.signing import generate_key_pair, key_id
from tdd_priv.verify import verify_run
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
    "orchestrator": "orchestrator",
    "overwrite": "overwrite",
    "out": "out",
    "key": "signing_key",
    "audit": "audit.level",  # audits (issue 5)
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
    data = runner.add_argument_group("data")
    data.add_argument("--data", help="CSV/JSONL/Parquet path, hf:NAME[:CONFIG], or demo")
    data.add_argument("--text-column")
    data.add_argument("--label-column")
    data.add_argument("--group-column", action="append", help="repeat for several")
    data.add_argument("--split-column")
    data.add_argument("--train-split")
    data.add_argument("--test-split")
    data.add_argument("--label-names", type=_csv, help="comma-separated names for label ids")
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
    other = runner.add_argument_group("encoder, evaluation, execution")
    other.add_argument("--encoder", help="local folder or hub name (default: all-MiniLM-L6-v2)")
    other.add_argument("--max-length", type=int)
    other.add_argument("--cache-dir", type=Path)
    other.add_argument("--heads", type=_csv, help="comma-separated: linear,mlp")
    other.add_argument("--eval-seeds", type=int)
    other.add_argument("--orchestrator", choices=["prefect", "local"])
    other.add_argument("--no-progress", action="store_true")
    other.add_argument("--overwrite", action="store_true", default=None)
    other.add_argument(
        "--key",
        type=Path,
        metavar="FILE",
        help="Ed25519 private key to sign the run with (default: $TDD_PRIV_SIGNING_KEY, else "
        "your per-user key, created on first use)",
    )
    _add_detox_options(runner)
    _add_audit_options(runner)
    runner.add_argument("--out", type=Path, required=True, metavar="DIR")
    _add_verify_and_keys(commands)
    _add_detox_command(commands)
    _add_deploy_command(commands)
    _add_study_command(commands)
    return parser


# --- toxicity screening (issue 6) -----------------------------------------------------------------


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


def _add_detox_options(runner: argparse.ArgumentParser) -> None:
    detox = runner.add_argument_group("toxicity screening of the released texts")
    detox.add_argument(
        "--detox",
        choices=["filter", "flag", "off"],
        help="filter: replace texts over a threshold by the next-best clean candidate of the "
        "same class; flag: keep and mark them; off (default): no screening",
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
    verifier = commands.add_parser(
        "verify",
        help="check a run folder's signature, file digests, report schema and ε",
        description="Exit 0 only if every check passes; otherwise list every failed check.",
    )
    verifier.add_argument("dir", type=Path, metavar="DIR", help="the run folder")
    verifier.add_argument(
        "--key",
        type=Path,
        metavar="PUBKEY",
        help="the signer's public key (PEM). Without it the key shipped in the folder is used, "
        "which proves the files are intact but not who signed them",
    )
    keys = commands.add_parser("keys", help="manage Ed25519 signing keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    generate = actions.add_parser(
        "generate", help="write a new private key FILE (mode 0600) and its public key FILE.pub"
    )
    generate.add_argument("file", type=Path, metavar="FILE")


def _run_config(args: argparse.Namespace) -> RunConfig:
    base = load_config_file(args.config) if args.config else RunConfig()
    overrides: dict[str, Any] = {
        setting: getattr(args, option)
        for option, setting in _OVERRIDES.items()
        if getattr(args, option) is not None
    }
    if args.no_dp:
        overrides["privacy.enabled"] = False
    elif args.epsilon is not None:
        overrides["privacy.enabled"] = True
    if args.no_progress:
        overrides["progress"] = False
    if args.method_option:
        overrides["method_options"] = {**base.method_options, **dict(args.method_option)}
    overrides.update(_detox_overrides(args, base))
    return base.with_overrides(overrides)


def _summary(result: RunResult) -> str:
    report = result.report
    rows = utility_rows(report)
    width = max(len(label) for label, _ in rows)
    claim = PrivacyClaim.from_report(report)
    lines = [
        "",
        f"run folder   {result.out}",
        f"method       {report['method']['name']}, {report['synthetic']['size']} texts "
        f"({report['synthetic']['per_class']} per class)",
        f"privacy      {claim.badge}: {claim.statement}",
        "test accuracy (mean ± std over models):",
        *(f"  {label:<{width}}  {value}" for label, value in rows),
    ]
    if "toxicity" in report.get("audits", {}):
        lines.insert(4, f"toxicity     {report['audits']['toxicity']['statement']}")
    return "\n".join(lines)


# --- audits (issue 5) ---------------------------------------------------------------------------


def _add_audit_options(runner: argparse.ArgumentParser) -> None:
    audit = runner.add_argument_group("audits and verdicts")
    audit.add_argument(
        "--audit",
        choices=["none", "basic", "full"],
        help="none: no audits or verdicts; basic (default): membership inference without shadow "
        "models, leakage, fairness; full: adds LiRA/RMIA with shadow re-runs and canaries sized "
        "from the claimed ε",
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
    print(_summary(result))
    verdicts = _verdict_line(result.report)
    if verdicts:
        print(verdicts)
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
    verification = verify_run(args.dir, public_key=args.key)
    for check in verification.checks:
        print(f"{'✓' if check.passed else '✗'} {check.name}: {check.detail}")
    failures = verification.failures
    if not failures:
        print(f"verified: all {len(verification.checks)} checks passed for {args.dir}")
        return 0
    print(
        f"NOT VERIFIED: {len(failures)} of {len(verification.checks)} checks failed for "
        f"{args.dir}: {', '.join(check.name for check in failures)}"
    )
    return 1


def _keys(args: argparse.Namespace) -> int:
    public_key = generate_key_pair(args.file)
    print(f"private key  {args.file}  (mode 0600: keep it secret)")
    print(f"public key   {args.file}.pub  (give it to whoever verifies your runs)")
    print(f"key id       {key_id(public_key)}")
    return 0


# --- privacy–utility studies (issue 8) -----------------------------------------------------------

STUDY_RUNNERS = ("local", "dask")  # flows.runners.RUNNERS (not imported here: it loads Prefect)


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
    study.add_argument(
        "--runner",
        choices=STUDY_RUNNERS,
        default="local",
        help="local (default): one cell after another here; dask: cells as Dask tasks on a "
        "new LocalCluster, or on --dask-address",
    )
    study.add_argument(
        "--dask-address", metavar="ADDR", help="an existing Dask scheduler, e.g. tcp://host:8786"
    )
    study.add_argument(
        "--workers", type=int, metavar="N", help="worker processes of the LocalCluster (default 2)"
    )


def _study(args: argparse.Namespace) -> int:
    from tdd_priv.study import check_study_folder, expand_cells, load_sweep

    if args.runner != "dask" and (args.dask_address or args.workers is not None):
        raise TddPrivError("--dask-address and --workers need --runner dask.")
    if args.dask_address and args.workers is not None:
        raise TddPrivError("--workers sizes a new LocalCluster; an existing one has its workers.")
    sweep = load_sweep(args.config)
    cells = expand_cells(sweep, args.out)  # every cell's config checked; nothing written yet
    check_study_folder(args.out)
    checked: list[Any] = []
    for cell in cells:  # bad data fails now, not after a cluster and a server have started
        if cell.config.data not in checked:
            preflight(cell.config)
            checked.append(cell.config.data)
    from flows.runners import RunnerOptions  # the CLI is the one library module allowed this
    from flows.study import run_study

    options = RunnerOptions(args.runner, workers=args.workers or 2, address=args.dask_address)
    try:
        result = run_study(sweep, args.out, options)
    except KeyboardInterrupt:
        print(
            f"tdd-priv: interrupted; finished cells are kept in {args.out / 'cells'}: run the "
            "same command again to resume.",
            file=sys.stderr,
        )
        return 130
    counts = {s: sum(o.status == s for o in result.outcomes) for s in ("ran", "reused", "failed")}
    print(f"\nstudy folder {result.out}  ({len(cells)} cells, {result.wall_s:.0f} s)")
    print(f"cells        {counts['ran']} ran, {counts['reused']} reused, {counts['failed']} failed")
    print(f"table        {result.out / 'study.csv'}, {result.out / 'study.md'}")
    print(f"figures      {result.out / 'figures'}")
    for outcome in result.failed:
        print(f"tdd-priv: cell {outcome.id} failed: {outcome.error}", file=sys.stderr)
    return 1 if result.failed else 0


# --------------------------------------------------------------------------------------------------


# --- scheduled deployments (issue 8) -------------------------------------------------------------


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


_COMMANDS = {
    "run": _run,
    "verify": _verify,
    "keys": _keys,
    "detox": _detox,
    "deploy": _deploy,
    "study": _study,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except TddPrivError as error:
        print(f"tdd-priv: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tdd-priv: interrupted; no run folder was written.", file=sys.stderr)
        return 130
