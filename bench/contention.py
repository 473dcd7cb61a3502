"""Thread contention: the evaluate step and a small full run, alone and beside busy processes,
with the thread policy (tdd_priv.threads) on and off.

    python bench/contention.py [--repeats 3] [--load N] [--scenarios evaluate,run]
                               [--policies off,on] [--timeout 1800] [--out-dir docs/benchmarks]

Each measurement runs in a fresh process with torch's default threads (OMP_NUM_THREADS unset)
and TDD_PRIV_THREAD_POLICY=off (what tdd-priv did before the policy: torch's default, one
thread per core, everywhere) or on. "Loaded" starts N pure-Python spin loops first (N = the
usable CPUs by default), spawned by this script and stopped after the measurement: the share
of the CPUs left to the run is then about cpus / (N + the run's own threads), so a run that
does not fight its neighbours should slow down about 1.5–2×, not 20×.

Scenarios (demo data, warm embedding cache; a warm-up run fills it first):
- evaluate: the pipeline's evaluate step alone, timed in-process after the steps before it
  (DP run, dpsgd-teacher, heads linear+mlp, `--eval-seeds` models each, the DP-SGD baseline);
- run: `tdd-priv run --data demo --public-pool demo --orchestrator local` end to end, process
  start included (DP, audits basic, `--eval-seeds` models per head).

Repeats are interleaved (policy off/on alternate which goes first) so drift in the machine's
other load hits both alike (`--policies on` measures the policy alone: the `off` runs take most
of the time). A measurement slower than --timeout is stopped and recorded as
censored at the timeout. Writes OUT_DIR/contention.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# This checkout's tdd_priv (not an installed one), here and in the children (PYTHONPATH).
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from common import REPO, metadata  # noqa: E402

SCENARIOS = ("evaluate", "run")
POLICIES = ("off", "on")  # off: before the policy (torch's default threads everywhere)


def _child_env(policy: str, work: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    env.update(
        {
            "TDD_PRIV_THREAD_POLICY": policy,
            "TDD_PRIV_CACHE": str(work / "cache"),
            "TDD_PRIV_STATE": str(work / "state"),
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": str(REPO),
        }
    )
    return env


def _run_command(work: Path, out: Path, eval_seeds: int) -> list[str]:
    return [
        sys.executable, "-m", "tdd_priv", "run", "--data", "demo", "--public-pool", "demo",
        "--orchestrator", "local", "--no-progress", "--eval-seeds", str(eval_seeds),
        "--out", str(out), "--overwrite", "--cache-dir", str(work / "cache"),
    ]  # fmt: skip


def _evaluate_child(eval_seeds: int) -> None:
    """In a child process: run the steps up to evaluate, then time the evaluate step."""
    import torch

    from tdd_priv.config import RunConfig
    from tdd_priv.pipeline import (
        distill_step,
        encode_step,
        evaluate_step,
        load_step,
        pool_step,
        realize_step,
        split_step,
    )

    config = RunConfig().with_overrides(
        {
            "data.spec": "demo",
            "data.public_pool": "demo",
            "progress": False,
            "privacy.noise_seed": 0,
            "evaluation.seeds": eval_seeds,
        }
    )
    loaded = load_step(config)
    loaded, splits = pool_step(loaded, split_step(loaded, config))
    encoded = encode_step(loaded, config).load()
    synthetic = distill_step(loaded, splits, encoded, config)
    realized = realize_step(loaded, splits, encoded, synthetic, config)
    started = time.perf_counter()
    evaluate_step(loaded, splits, encoded, synthetic, realized, config)
    seconds = time.perf_counter() - started
    import tdd_priv

    print(
        json.dumps(
            {
                "seconds": seconds,
                "torch_default_threads": torch.get_num_threads(),
                "library": str(Path(tdd_priv.__file__).resolve().parent),
            }
        )
    )


@contextmanager
def _spinners(count: int) -> Iterator[list[int]]:
    """`count` busy pure-Python processes for the duration of the block (our own children)."""
    processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(1.0)  # let them reach the CPUs
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def _measure(
    scenario: str, policy: str, work: Path, eval_seeds: int, timeout: float
) -> dict[str, Any]:
    env = _child_env(policy, work)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    if scenario == "evaluate":
        command = [sys.executable, str(Path(__file__).resolve()), "--child", "evaluate"]
        command += ["--eval-seeds", str(eval_seeds)]
    else:
        command = _run_command(work, work / f"run-{policy}", eval_seeds)
    try:
        finished = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO
        )
    except subprocess.TimeoutExpired:
        return {"seconds": timeout, "censored": True, "load_average_1m_before": load_before}
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise SystemExit(f"{scenario} ({policy}) failed:\n{finished.stderr[-3000:]}")
    seconds = wall
    steps = {
        match.group(1): float(match.group(2))
        for match in re.finditer(r"^  (\w+)\s+done in\s+([\d.]+) s$", finished.stderr, re.M)
    }
    if scenario == "evaluate":
        reported = json.loads(finished.stdout.strip().splitlines()[-1])
        if Path(reported["library"]) != REPO / "tdd_priv":
            raise SystemExit(f"the child ran {reported['library']}, not {REPO / 'tdd_priv'}")
        seconds = reported["seconds"]
    return {
        "seconds": seconds,
        "censored": False,
        "load_average_1m_before": load_before,
        "steps": steps,  # the run's per-step seconds, as the CLI prints them
    }


def _summary(measurements: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = [m["seconds"] for m in measurements]
    names = sorted({name for m in measurements for name in m.get("steps", {})})
    return {
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "median_step_seconds": {
            name: statistics.median(m["steps"][name] for m in measurements if name in m["steps"])
            for name in names
        },
        "censored": sum(m["censored"] for m in measurements),
        "load_average_1m_before": [m["load_average_1m_before"] for m in measurements],
    }


def _markdown(result: dict[str, Any]) -> str:
    settings, machine = result["settings"], result["machine"]
    lines = [
        "# Thread contention: alone and beside busy processes, thread policy "
        + " and ".join(settings.get("policies", POLICIES)),
        "",
        f"Commit `{result['commit']}`; {machine['cpus']} CPUs ({machine['platform']}), torch "
        f"{machine['torch']}; background load: {settings['load_processes']} spinning "
        f"processes; {settings['repeats']} interleaved repeats, medians; evaluation with "
        f"{settings['eval_seeds']} model(s) per head. Load average (1 min) of the machine at the "
        f"start {machine['load_average'][0]:.1f}, at the end {result['load_average_end'][0]:.1f} "
        "(other jobs share this machine: 'alone' means without the spinners).",
        "",
        "| scenario | policy | alone (s) | loaded (s) | slowdown under load |",
        "|---|---|---|---|---|",
    ]
    for scenario, by_policy in result["results"].items():
        for policy, cells in by_policy.items():
            alone, loaded = cells["alone"], cells["loaded"]
            censored = "≥ " if loaded["censored"] else ""
            lines.append(
                f"| {scenario} | {policy} | {alone['median_seconds']:.1f} | "
                f"{censored}{loaded['median_seconds']:.1f} | "
                f"{censored}{loaded['median_seconds'] / alone['median_seconds']:.1f}× |"
            )
    run = result["results"].get("run")
    if run is not None:
        columns = [(policy, state) for policy in run for state in ("alone", "loaded")]
        steps = list(next(iter(run.values()))["alone"].get("median_step_seconds", {}))
        if steps:
            lines += [
                "",
                "The run's steps (median seconds, as the CLI reports them):",
                "",
                "| step | " + " | ".join(f"{p} {s}" for p, s in columns) + " |",
                "|---|" + "---|" * len(columns),
            ]
            for step in steps:
                cells = [
                    run[policy][state]["median_step_seconds"].get(step) for policy, state in columns
                ]
                shown = [f"{c:.1f}" if c is not None else "" for c in cells]
                lines.append(f"| {step} | " + " | ".join(shown) + " |")
    if result["speedup_under_load"]:
        lines += ["", "Policy on vs off under load (median seconds, off / on):", ""]
    for scenario, ratio in result["speedup_under_load"].items():
        lines.append(f"- {scenario}: {ratio:.1f}× faster with the policy")
    lines += [
        "",
        "Alone and loaded alternate within each repeat, so drift in the machine's other load "
        "hits both alike. `off` is tdd-priv before the policy (torch's default threads "
        "everywhere); `on` runs small models single-threaded and matrix work on the idle CPUs "
        "(tdd_priv/threads.py). "
        "Command: `" + result["command"] + "`.",
        "",
    ]
    return "\n".join(lines)


def _plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(result["results"])
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 4), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        by_policy = result["results"][scenario]
        for offset, (policy, cells) in enumerate(by_policy.items()):
            medians = [cells[state]["median_seconds"] for state in ("alone", "loaded")]
            xs = [x + (offset - 0.5) * 0.38 for x in range(2)]
            ax.bar(xs, medians, width=0.36, label=f"policy {policy}", color=f"C{offset}")
            for x, state in zip(xs, ("alone", "loaded"), strict=True):
                points = cells[state]["seconds"]
                ax.scatter([x] * len(points), points, color="black", s=10, zorder=3)
        ax.set_xticks(range(2), ["alone", f"{result['settings']['load_processes']} busy procs"])
        ax.set_yscale("log")
        ax.set_ylabel("seconds (log scale, lower is better)")
        ax.set_title(scenario)
        ax.legend()
    fig.suptitle("Thread policy under CPU contention (medians; dots: repeats)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", type=int, default=None, help="spinners (default: usable CPUs)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--eval-seeds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per measurement")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs" / "benchmarks")
    parser.add_argument("--child", choices=["evaluate"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "evaluate":
        _evaluate_child(args.eval_seeds)
        return 0

    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; valid: {', '.join(SCENARIOS)}")
    policies = [p for p in POLICIES if p in args.policies.split(",")]
    if not policies or set(args.policies.split(",")) - set(POLICIES):
        raise SystemExit(f"--policies {args.policies!r}; use a subset of {', '.join(POLICIES)}")
    load = args.load if args.load is not None else len(os.sched_getaffinity(0))
    settings = {
        "repeats": args.repeats,
        "load_processes": load,
        "scenarios": scenarios,
        "policies": policies,
        "eval_seeds": args.eval_seeds,
        "timeout_s": args.timeout,
        "data": "demo (HateCheck), public pool demo, DP (dpsgd-teacher, ε = 4), audits basic",
    }
    info = metadata(settings)
    raw: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {
        s: {p: {"alone": [], "loaded": []} for p in policies} for s in scenarios
    }
    with tempfile.TemporaryDirectory(prefix="tdd-priv-contention-") as folder:
        work = Path(folder)
        print("warm-up: filling the embedding cache", file=sys.stderr)
        _measure("run", "on", work, args.eval_seeds, args.timeout)
        for repeat in range(args.repeats):
            order = policies if repeat % 2 == 0 else policies[::-1]
            for state in ("alone", "loaded"):
                with _spinners(load if state == "loaded" else 0):
                    for scenario in scenarios:
                        for policy in order:
                            cell = _measure(scenario, policy, work, args.eval_seeds, args.timeout)
                            raw[scenario][policy][state].append(cell)
                            load_before = cell["load_average_1m_before"]
                            print(
                                f"repeat {repeat + 1}: {scenario} policy {policy} {state}: "
                                f"{cell['seconds']:.1f} s (load {load_before:.1f})",
                                file=sys.stderr,
                            )
    results = {
        scenario: {
            policy: {state: _summary(cells) for state, cells in states.items()}
            for policy, states in by_policy.items()
        }
        for scenario, by_policy in raw.items()
    }
    result: dict[str, Any] = {
        "benchmark": "contention",
        **info,
        "command": "python bench/contention.py " + " ".join(argv or sys.argv[1:]),
        "results": results,
        "slowdown_under_load": {
            scenario: {
                policy: cells["loaded"]["median_seconds"] / cells["alone"]["median_seconds"]
                for policy, cells in by_policy.items()
            }
            for scenario, by_policy in results.items()
        },
        "speedup_under_load": {
            scenario: by_policy["off"]["loaded"]["median_seconds"]
            / by_policy["on"]["loaded"]["median_seconds"]
            for scenario, by_policy in results.items()
            if len(by_policy) == len(POLICIES)
        },
        "load_average_end": os.getloadavg(),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "contention.json").write_text(
        json.dumps(result, indent=2) + "\n", encoding="utf-8"
    )
    (args.out_dir / "contention.md").write_text(_markdown(result), encoding="utf-8")
    _plot(args.out_dir / "contention.png", result)
    print(json.dumps({"slowdown_under_load": result["slowdown_under_load"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
