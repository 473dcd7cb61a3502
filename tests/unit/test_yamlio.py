"""YAML loading refuses alias bombs from the parser's events, without expanding them."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from tdd_priv.errors import ConfigError
from tdd_priv.study import load_sweep
from tdd_priv.yamlio import YamlLimits, load_yaml


def billion_laughs(levels: int = 9, fan_out: int = 9) -> str:
    """The classic alias bomb: each level is `fan_out` aliases of the one before, so the
    document expands to fan_out ** levels strings (10⁹ lols) from ~1 KB of text."""
    lines = ['lol0: &lol0 "lol"']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*lol{level - 1}"] * fan_out)
        lines.append(f"lol{level}: &lol{level} [{aliases}]")
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_is_refused_fast_without_expanding() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=r"alias bomb|more than 32 YAML aliases"):
        load_yaml(billion_laughs(), where="bomb.yaml")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 5_000_000  # bytes: expanding even level 5 would take far more


def test_few_aliases_that_expand_a_lot_are_refused() -> None:
    # 14 levels of doubling: 28 aliases (under the alias limit), 2**14 nodes once expanded.
    bomb = billion_laughs(levels=14, fan_out=2)
    with pytest.raises(ConfigError, match=r"line \d+: YAML aliases would expand to more than"):
        load_yaml(bomb)
    with pytest.raises(ConfigError, match="more than 3 YAML aliases"):
        load_yaml("a: &a 1\nb: [*a, *a, *a, *a]\n", limits=YamlLimits(aliases=3))


def test_recursive_aliases_and_deep_nesting_are_refused() -> None:
    with pytest.raises(ConfigError, match="recursive"):
        load_yaml("a: &a [1, *a]\n")
    with pytest.raises(ConfigError, match="nested more than 64 deep"):
        load_yaml("a: " + "[" * 100 + "]" * 100)


def test_modest_anchors_and_merge_keys_still_load() -> None:
    text = (
        "defaults: &defaults {heads: [linear], seeds: 2}\n"
        "seeds: &seeds [0, 1]\n"
        "quick: {<<: *defaults, seeds: 1}\n"
        "grid: {seed: *seeds}\n"
    )
    assert load_yaml(text) == {
        "defaults": {"heads": ["linear"], "seeds": 2},
        "seeds": [0, 1],
        "quick": {"heads": ["linear"], "seeds": 1},
        "grid": {"seed": [0, 1]},
    }


def test_exponents_without_a_point_are_numbers_and_errors_are_one_line() -> None:
    assert load_yaml("a: 1e-3\nb: 2E+2\nc: '1e-3'\nd: 1.5\n") == {
        "a": 0.001,
        "b": 200.0,
        "c": "1e-3",
        "d": 1.5,
    }
    with pytest.raises(ConfigError) as caught:
        load_yaml("a: [1, 2\n", where="x.yaml")
    assert str(caught.value).startswith("x.yaml is not valid YAML: ")
    assert "\n" not in str(caught.value)


def test_files_that_are_not_regular_are_refused_unread(tmp_path: Path) -> None:
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_yaml(fifo)
        except ConfigError as error:
            outcome.append(error)

    reader = threading.Thread(target=load, daemon=True)  # a read of the FIFO would block
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "load_yaml opened the FIFO"
    assert "is not a regular file" in str(outcome[0])
    with pytest.raises(ConfigError, match="no such file"):
        load_yaml(tmp_path / "missing.yaml")


def test_sweep_files_use_the_safe_loader(tmp_path: Path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("base:\n  method_options:\n" + _indented(billion_laughs()) + "grid: {}\n")
    with pytest.raises(ConfigError, match=r"sweep file .*: line \d+: "):
        load_sweep(path)


def _indented(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())
