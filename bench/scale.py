"""Scale: a full run on 10k, 100k and 1M short texts, and on SST-2: wall time per step and peak
resident memory, with a cold and a warm embedding cache.

    python bench/scale.py [--cells 10k,100k,1m,sst2] [--modes cold,warm]
                          [--work-dir DIR] [--out-dir docs/benchmarks] [--force]

Each cell (a dataset and a cache state) is one fresh process that runs the pipeline's steps as
`tdd-priv run --orchestrator local` does (default settings: DP, dpsgd-teacher, ε = 4, audits
basic, evaluation with 5 models per head and the baselines), and reports every step's wall time
and the process's peak RSS after it (getrusage: the peak so far, so the step that raises it
shows). `cold`: an empty embedding cache; `warm`: the same cache, filled by the cold cell.

Data: `Nk`/`Nm` cells use N synthetic short texts (8–24 words of AG News's 5,000 most frequent,
4 classes, each class mixing in its own topic words; every text distinct), written once to
WORK_DIR/data, with an external public pool of 20k texts from the same generator (another
seed), so the pool's cost is the same at every size. `sst2`: the SST-2 train split (67,349 rows,
dev as test) with `--public-pool internal`.

Resumable: every finished cell is written at once to OUT_DIR/scale.{json,md,png}, and cells
already there are skipped (unless --force), so a long run can stop and go on. The 1M cells
take hours on 2 cores; run them where the CPUs are quiet.

Tiled cells, `NkxR` (e.g. `100kx10`: 1M rows): the `Nk` cell's rows repeated R times (repeated
data is fine for timing). Their `warm` cell can start without a cold one: the
cache entry is assembled from the `Nk` cell's cached embeddings of the same texts (missing
texts, e.g. canaries, are encoded) through the encode step's own writer, so every step but the
encoding runs on all rows; the encode cost per text is what the cold `Nk` cells measure.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# This checkout's tdd_priv (not an installed one), here and in the children (PYTHONPATH).
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from common import REPO, SHARED, metadata  # noqa: E402

POOL_SIZE = 20_000
TARGET_MIB = 3e9 / 2**20  # the 3 GB at 1M rows, read strictly (10⁹ bytes), in MiB
CLASSES = ("alpha", "beta", "gamma", "delta")
_CELL = re.compile(r"^(\d+)([km]?)(?:x(\d+))?$")
DEFAULT_CELLS = ("10k", "100k", "1m", "sst2")


def cell_rows(name: str) -> int | None:
    """Rows of a synthetic cell ("10k" -> 10_000, "100kx10" -> 1_000_000), None for a named
    dataset."""
    match = _CELL.match(name)
    if match is None:
        return None
    base = int(match.group(1)) * {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2)]
    return base * int(match.group(3) or 1)


def tiled_source(name: str) -> tuple[str, int] | None:
    """("100k", 10) for the tiled cell "100kx10"; None for any other cell."""
    match = _CELL.match(name)
    if match is None or match.group(3) is None:
        return None
    return name.split("x")[0], int(match.group(3))


# --- synthetic data ---------------------------------------------------------------------------


def _vocabulary(size: int = 5000, texts: int = 20_000) -> list[str]:
    """The `size` most frequent lower-case words of 3+ letters in the first `texts` AG News
    texts (news: a neutral, everyday vocabulary)."""
    counts: dict[str, int] = {}
    with (SHARED / "ag_news" / "ag_news.csv").open(encoding="utf-8", newline="") as handle:
        for _, row in zip(range(texts), csv.DictReader(handle), strict=False):
            for word in re.findall(r"[a-z]{3,}", row["text"].lower()):
                counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda word: (-counts[word], word))[:size]


def write_synthetic(path: Path, rows: int, *, seed: int, labeled: bool) -> None:
    """`rows` distinct short texts (and labels) to `path` as CSV, deterministically."""
    import numpy as np

    if path.is_file():
        return
    words = np.array(_vocabulary())
    rng = np.random.default_rng(seed)
    topics = np.array_split(rng.permutation(len(words))[: 4 * 150], len(CLASSES))
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".partial")
    seen: set[str] = set()
    with temp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"] if labeled else ["text"])
        while len(seen) < rows:
            label = int(rng.integers(len(CLASSES)))
            length = int(rng.integers(8, 25))
            topical = rng.random(length) < 0.35
            picks = np.where(
                topical,
                rng.choice(topics[label], size=length),
                rng.integers(0, len(words), size=length),
            )
            text = " ".join(words[picks])
            if text in seen:
                continue
            seen.add(text)
            writer.writerow([text, CLASSES[label]] if labeled else [text])
    temp.replace(path)


def _write_tiled(path: Path, source: Path, repeats: int) -> None:
    if path.is_file():
        return
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    temp = path.with_suffix(".partial")
    with temp.open("w", encoding="utf-8", newline="") as handle:
        handle.write(lines[0])
        for _ in range(repeats):
            handle.writelines(lines[1:])
    temp.replace(path)


# --- one cell, in a child process -------------------------------------------------------------


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _child(settings: dict[str, Any]) -> None:
    """Run the pipeline's steps with `settings` (RunConfig overrides) and print, as JSON, each
    step's wall time and the peak RSS after it."""
    from flows.extensions import build_extensions
    from tdd_priv.config import RunConfig
    from tdd_priv.pipeline import execute

    steps: list[dict[str, Any]] = []

    def timed(step: Any, *args: Any) -> Any:
        started = time.perf_counter()
        result = step(*args)
        steps.append(
            {
                "step": step.__name__.removesuffix("_step"),
                "seconds": time.perf_counter() - started,
                "peak_rss_mb": _rss_mb(),
            }
        )
        print(f"  {steps[-1]['step']:<9} {steps[-1]['seconds']:8.1f} s", file=sys.stderr)
        return result

    config = RunConfig().with_overrides(settings)
    started = time.perf_counter()
    execute(config, call=timed, extensions=build_extensions(config))
    print(
        json.dumps(
            {
                "steps": steps,
                "pipeline_seconds": time.perf_counter() - started,
                "peak_rss_mb": _rss_mb(),
            }
        )
    )


class _Prefilled(Exception):
    """Raised by the prefill child once the encode step's entries are written."""


def _prefill_child(settings: dict[str, Any], source_settings: dict[str, Any]) -> None:
    """Fill the cache of `settings` from the cache of `source_settings` (the same texts, fewer
    rows): run the steps up to encode for both, take the source's embeddings by text and write
    the target's entries with encode_cached, encoding only texts the source lacks."""
    import numpy as np

    from flows.extensions import build_extensions
    from tdd_priv.config import RunConfig
    from tdd_priv.encode import BLOCK_SIZE, SentenceEncoder, encode_cached
    from tdd_priv.pipeline import encode_step, execute, resolve_device

    def texts_before_encoding(overrides: dict[str, Any]) -> tuple[RunConfig, list[Sequence[str]]]:
        found: list[Any] = []

        def call(step: Any, *args: Any) -> Any:
            if step is encode_step:
                loaded = args[0]
                pool = loaded.external_pool
                found.extend([loaded.texts, *([pool.texts] if pool is not None else [])])
                raise _Prefilled
            return step(*args)

        config = RunConfig().with_overrides({**overrides, "out": overrides["out"] + "-prefill"})
        with contextlib.suppress(_Prefilled):
            execute(config, call=call, extensions=build_extensions(config))
        return config, found

    source_config, source_texts = texts_before_encoding(source_settings)
    table: dict[str, np.ndarray] = {}
    for texts in source_texts:
        encoded = encode_cached(
            texts, config=source_config.encoder, cache_dir=source_config.cache_dir, progress=False
        )
        if not encoded.cache_hit:
            raise SystemExit(f"{source_config.cache_dir} has no entry for its cell's texts")
        table.update(zip(texts, encoded.embeddings, strict=True))
    config, target_texts = texts_before_encoding(settings)
    encoder = SentenceEncoder(config.encoder, device=resolve_device(config))

    class TableEncoder:
        """The encoder's interface, answering from the table (and the model for the rest)."""

        config, device, model_hash, dimension = (
            encoder.config, encoder.device, encoder.model_hash, encoder.dimension,
        )  # fmt: skip

        def encode_blocks(self, texts: Sequence[str], **_: Any) -> Any:
            missing = sorted({text for text in texts if text not in table})
            if missing:
                table.update(zip(missing, encoder.encode(missing, progress=False), strict=True))
            for start in range(0, len(texts), BLOCK_SIZE):
                yield np.stack([table[text] for text in texts[start : start + BLOCK_SIZE]])

    for texts in target_texts:
        encode_cached(
            texts, config=config.encoder, cache_dir=config.cache_dir, progress=False,
            encoder=TableEncoder(), device=encoder.device,  # type: ignore[arg-type]
        )  # fmt: skip


def _settings(cell: str, work: Path) -> dict[str, Any]:
    rows = cell_rows(cell)
    common: dict[str, Any] = {
        "orchestrator": "local",
        "progress": False,
        "overwrite": True,
        "out": str(work / "runs" / cell),
        "cache_dir": str(work / "cache" / cell),
    }
    if rows is not None:
        data = work / "data" / f"synthetic-{cell}.csv"
        pool = work / "data" / f"synthetic-pool-{POOL_SIZE}.csv"
        tiled = tiled_source(cell)
        if tiled is None:
            write_synthetic(data, rows, seed=rows, labeled=True)
        else:
            _write_tiled(data, Path(_settings(tiled[0], work)["data.spec"]), tiled[1])
        write_synthetic(pool, POOL_SIZE, seed=-1 % 2**32, labeled=False)
        return {
            **common,
            "data.spec": str(data),
            "data.label_names": list(CLASSES),
            "data.public_pool": str(pool),
        }
    if cell == "sst2":
        return {
            **common,
            "data.spec": str(SHARED / "sst2" / "sst2.csv"),
            "data.split_column": "split",
            "data.test_split": "dev",
            "data.label_names": ["negative", "positive"],
            "data.public_pool": "internal",
        }
    raise SystemExit(f"unknown cell {cell!r}; use Nk, Nm or sst2")


def _run_cell(cell: str, mode: str, work: Path) -> dict[str, Any]:
    settings = _settings(cell, work)
    if mode == "cold":
        shutil.rmtree(settings["cache_dir"], ignore_errors=True)
    elif not Path(settings["cache_dir"], "embeddings").is_dir():
        tiled = tiled_source(cell)
        if tiled is None:
            raise SystemExit(f"{cell} warm: run the cold cell first (it fills the cache)")
        _prefill(settings, _settings(tiled[0], work), work)
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "TDD_PRIV_STATE": str(work / "state" / cell / mode),
        }
    )
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(settings)]
    load_before = os.getloadavg()
    started = time.perf_counter()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{cell} {mode} failed:\n{finished.stderr[-4000:]}")
    measured = json.loads(finished.stdout.strip().splitlines()[-1])
    return {
        **measured,
        "wall_seconds": wall,
        "rows": _rows_of(settings),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        **{k: v for k, v in metadata({}).items() if k in ("commit", "machine")},
    }


def _prefill(settings: dict[str, Any], source: dict[str, Any], work: Path) -> None:
    print(f"  prefilling {settings['cache_dir']} from {source['cache_dir']}", file=sys.stderr)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--prefill",
        json.dumps([settings, source]),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env["TDD_PRIV_STATE"] = str(work / "state" / "prefill")
    finished = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    if finished.returncode != 0:
        raise SystemExit(f"prefill failed:\n{finished.stderr[-4000:]}")


def _rows_of(settings: dict[str, Any]) -> int:
    with Path(settings["data.spec"]).open(encoding="utf-8", newline="") as handle:
        return sum(1 for _ in csv.DictReader(handle))


# --- results ----------------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    if path.is_file():
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    return {"benchmark": "scale", "cells": {}}


def _write(out_dir: Path, result: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    temp = out_dir / ".scale.json.tmp"
    temp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    temp.replace(out_dir / "scale.json")
    (out_dir / "scale.md").write_text(_markdown(result), encoding="utf-8")
    _plot(out_dir / "scale.png", result)


def _ordered(cells: dict[str, Any]) -> list[str]:
    return sorted(cells, key=lambda name: (cell_rows(name) is None, cell_rows(name) or 0, name))


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Scale: wall time per step and peak memory",
        "",
        "One fresh process per cell, `tdd-priv run --orchestrator local` with default settings "
        "(DP, dpsgd-teacher, ε = 4, audits basic, 5 models per head, baselines); synthetic "
        f"short texts with an external pool of {POOL_SIZE:,} texts, or SST-2 with an internal "
        "pool. cold: empty embedding cache; warm: filled. Peak RSS by getrusage, in MiB (2²⁰ "
        f"bytes; the 3 GB target is {TARGET_MIB:,.0f} MiB). `load avg`: "
        "the machine's 1-minute load when the cell started (other jobs share it); the `load` "
        "column is the load step's seconds.",
        "",
    ]
    cells = result["cells"]
    names = _ordered(cells)
    steps: list[str] = []
    for name in names:
        for measured in cells[name].values():
            for step in measured["steps"]:
                if step["step"] not in steps:
                    steps.append(step["step"])
    header = ["cell", "cache", "rows", "wall (s)", "peak RSS (MiB)", *steps, "load avg", "commit"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        for mode, measured in cells[name].items():
            by_step = {step["step"]: step["seconds"] for step in measured["steps"]}
            row = [
                name,
                mode,
                f"{measured['rows']:,}",
                f"{measured['wall_seconds']:.0f}",
                f"{measured['peak_rss_mb']:.0f}",
                *(f"{by_step[s]:.1f}" if s in by_step else "" for s in steps),
                f"{measured['load_average_before'][0]:.1f}",
                f"`{(measured.get('commit') or '?')[:10]}`",
            ]
            lines.append("| " + " | ".join(row) + " |")
    for name in names:
        tiled = tiled_source(name)
        if tiled is not None:
            lines += [
                "",
                f"`{name}`: the `{tiled[0]}` cell's rows repeated {tiled[1]} times "
                f"({cell_rows(name):,} rows); its warm cache was assembled from the `{tiled[0]}` "
                "cell's cached embeddings of the same texts, so every step but the encoding ran "
                f"on all rows (the encode cost per text is the cold `{tiled[0]}` cell's).",
            ]
    lines += ["", "Step columns are seconds. Commands: see docs/operations.md (scale).", ""]
    return "\n".join(lines)


def _plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = result["cells"]
    synthetic = [name for name in _ordered(cells) if cell_rows(name) is not None]
    fig, (wall_ax, rss_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for offset, mode in enumerate(("cold", "warm")):
        points = [(cells[n][mode]["rows"], cells[n][mode]) for n in synthetic if mode in cells[n]]
        if not points:
            continue
        rows = [r for r, _ in points]
        wall_ax.plot(
            rows, [m["wall_seconds"] for _, m in points], "o-", label=mode, color=f"C{offset}"
        )
        rss_ax.plot(
            rows, [m["peak_rss_mb"] for _, m in points], "o-", label=mode, color=f"C{offset}"
        )
        encode = [
            next((s["seconds"] for s in m["steps"] if s["step"] == "encode"), None)
            for _, m in points
        ]
        if mode == "cold" and all(e is not None for e in encode):
            wall_ax.plot(rows, encode, "s--", label="encode step (cold)", color="C2")
    if "sst2" in cells:
        for offset, (mode, measured) in enumerate(cells["sst2"].items()):
            wall_ax.scatter(
                [measured["rows"]], [measured["wall_seconds"]], marker="*", s=120,
                color=f"C{offset}", label=f"SST-2 {mode}", zorder=3,
            )  # fmt: skip
            rss_ax.scatter(
                [measured["rows"]], [measured["peak_rss_mb"]], marker="*", s=120,
                color=f"C{offset}", zorder=3,
            )  # fmt: skip
    rss_ax.axhline(TARGET_MIB, color="grey", linestyle="--", label="3 GB (3·10⁹ bytes) target")
    for ax, label in ((wall_ax, "wall time (s)"), (rss_ax, "peak RSS (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("labeled rows")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    wall_ax.set_title("Full run: wall time")
    rss_ax.set_title("Full run: peak resident memory")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=",".join(DEFAULT_CELLS))
    parser.add_argument("--modes", default="cold,warm")
    parser.add_argument(
        "--work-dir", type=Path, default=Path.home() / ".cache" / "tdd-priv-bench" / "scale"
    )
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "benchmarks")
    parser.add_argument("--force", action="store_true", help="rerun cells already measured")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--prefill", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(json.loads(args.child))
        return 0
    if args.prefill is not None:
        _prefill_child(*json.loads(args.prefill))
        return 0
    modes = [mode for mode in args.modes.split(",") if mode]
    if set(modes) - {"cold", "warm"}:
        raise SystemExit("--modes takes cold and/or warm")
    result = _load(args.out_dir / "scale.json")
    for cell in [c for c in args.cells.split(",") if c]:
        for mode in modes:
            if mode in result["cells"].get(cell, {}) and not args.force:
                print(f"{cell} {mode}: already measured, skipped", file=sys.stderr)
                continue
            print(f"{cell} {mode}: running", file=sys.stderr)
            measured = _run_cell(cell, mode, args.work_dir)
            result["cells"].setdefault(cell, {})[mode] = measured
            _write(args.out_dir, result)  # at once: a long run can stop and go on
            print(
                f"{cell} {mode}: {measured['wall_seconds']:.0f} s, "
                f"peak RSS {measured['peak_rss_mb']:.0f} MiB",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
