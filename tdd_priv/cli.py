"""`tdd-priv` command line (also `python -m tdd_priv`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tdd_priv.config import RunConfig, load_config_file
from tdd_priv.errors import TddPrivError
from tdd_priv.methods import METHODS
from tdd_priv.pipeline import RunResult, preflight, run
from tdd_priv.realize import REALIZERS
from tdd_priv.report import utility_rows

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
    "epsilon": "privacy.epsilon",
    "delta": "privacy.delta",
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
}


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


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
    data.add_argument("--public-pool", help="texts to realize from (labels ignored)")
    data.add_argument("--drop-empty", action="store_true", default=None, help="drop empty texts")
    method = runner.add_argument_group("distillation")
    method.add_argument("--method", choices=sorted(METHODS))
    method.add_argument("--per-class", type=int, metavar="K")
    method.add_argument("--realize", choices=sorted(REALIZERS))
    method.add_argument("--seed", type=int)
    privacy = runner.add_argument_group("privacy")
    exclusive = privacy.add_mutually_exclusive_group()
    exclusive.add_argument("--epsilon", type=float, metavar="E")
    exclusive.add_argument("--no-dp", action="store_true", help="run without privacy")
    privacy.add_argument("--delta", type=float, metavar="D")
    other = runner.add_argument_group("encoder, evaluation, execution")
    other.add_argument("--encoder", help="local folder or hub name (default: all-MiniLM-L6-v2)")
    other.add_argument("--max-length", type=int)
    other.add_argument("--cache-dir", type=Path)
    other.add_argument("--heads", type=_csv, help="comma-separated: linear,mlp")
    other.add_argument("--eval-seeds", type=int)
    other.add_argument("--orchestrator", choices=["prefect", "local"])
    other.add_argument("--no-progress", action="store_true")
    other.add_argument("--overwrite", action="store_true", default=None)
    runner.add_argument("--out", type=Path, required=True, metavar="DIR")
    return parser


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
    return base.with_overrides(overrides)


def _summary(result: RunResult) -> str:
    report = result.report
    rows = utility_rows(report)
    width = max(len(label) for label, _ in rows)
    privacy = report["privacy"]
    lines = [
        "",
        f"run folder   {result.out}",
        f"method       {report['method']['name']}, {report['synthetic']['size']} texts "
        f"({report['synthetic']['per_class']} per class)",
        f"privacy      {privacy['mode']}: {privacy['statement']}",
        "test accuracy (mean ± std over models):",
        *(f"  {label:<{width}}  {value}" for label, value in rows),
    ]
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    config = _run_config(args)
    if config.orchestrator == "prefect":
        preflight(config)  # bad input fails in a second, not after the server's start-up
        from flows.distill import run_distill_flow  # the CLI is the one library module allowed this

        result = run_distill_flow(config)
    else:
        result = run(config)
    print(_summary(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except TddPrivError as error:
        print(f"tdd-priv: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tdd-priv: interrupted; no run folder was written.", file=sys.stderr)
        return 130
