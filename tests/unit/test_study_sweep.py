"""Sweep files: validation up front, grid expansion into cells with stable ids."""

from pathlib import Path

import pytest
import yaml

from tdd_priv.errors import ConfigError
from tdd_priv.study import expand_cells, load_sweep

BASE = {
    "data": {"spec": "demo", "public_pool": "demo"},
    "method": "dm",
    "evaluation": {"seeds": 1},
}


def _sweep(tmp_path: Path, payload: object, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(payload), encoding="utf-8")
    return path


def test_grid_expands_into_the_product_with_readable_ids(tmp_path: Path) -> None:
    path = _sweep(
        tmp_path,
        {"base": BASE, "grid": {"seed": [0, 1], "epsilon": [1, 4.5, "none"], "method": ["dm"]}},
    )
    cells = expand_cells(load_sweep(path), tmp_path / "study")
    assert len(cells) == 6
    ids = [cell.id for cell in cells]
    assert len(set(ids)) == 6
    assert "method-dm_eps-4.5_seed-1" in ids
    by_id = {cell.id: cell for cell in cells}
    dp = by_id["method-dm_eps-4.5_seed-1"].config
    assert dp.privacy.enabled and dp.privacy.epsilon == 4.5 and dp.seed == 1
    assert dp.evaluation.seeds == 1  # the base
    no_dp = by_id["method-dm_eps-none_seed-0"].config
    assert not no_dp.privacy.enabled
    assert no_dp.out == tmp_path / "study" / "cells" / "method-dm_eps-none_seed-0"
    assert no_dp.overwrite and not no_dp.progress


def test_ids_do_not_depend_on_file_order_or_base(tmp_path: Path) -> None:
    one = _sweep(tmp_path, {"base": BASE, "grid": {"k": [2, 3], "method": ["dm", "kip"]}}, "a.yaml")
    other_base = {**BASE, "evaluation": {"seeds": 3}}
    two = _sweep(
        tmp_path, {"base": other_base, "grid": {"method": ["kip", "dm"], "per_class": [3, 2]}}, "b"
    )
    first = {cell.id for cell in expand_cells(load_sweep(one), tmp_path)}
    second = {cell.id for cell in expand_cells(load_sweep(two), tmp_path)}
    assert (
        first
        == second
        == {
            "method-dm_k-2",
            "method-dm_k-3",
            "method-kip_k-2",
            "method-kip_k-3",
        }
    )


def test_a_list_of_grids_is_the_union_of_their_products(tmp_path: Path) -> None:
    path = _sweep(
        tmp_path,
        {
            "base": BASE,
            "grid": [
                {"method": ["dm"], "epsilon": [1, 4]},
                {"method": ["herding"], "epsilon": ["none"], "fairness": ["none"]},
            ],
        },
    )
    cells = expand_cells(load_sweep(path), tmp_path)
    assert [c.id for c in cells] == [
        "method-dm_eps-1",
        "method-dm_eps-4",
        "method-herding_eps-none_fairness-none",
    ]


def test_dotted_settings_and_mappings_are_axes(tmp_path: Path) -> None:
    path = _sweep(
        tmp_path,
        {
            "base": BASE,
            "grid": {
                "evaluation.steps": [50, 100],
                "method_options": [{"iterations": 10}, {"iterations": 20}],
                "method": ["dm"],
            },
        },
    )
    cells = expand_cells(load_sweep(path), tmp_path)
    assert len(cells) == 4
    steps = {c.config.evaluation.steps for c in cells}
    options = {c.config.method_options["iterations"] for c in cells}
    assert steps == {50, 100} and options == {10, 20}
    assert all(c.id.startswith("method-dm_evaluation.steps-") for c in cells)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"base": BASE, "grid": {"seed": [0]}, "grids": {}}, "unknown key(s) grids"),
        ({"base": BASE}, "no `grid`"),
        ({"base": BASE, "grid": {"seed": []}}, "`seed` is an empty list"),
        ({"base": BASE, "grid": {}}, "non-empty mapping"),
        ({"base": BASE, "grid": []}, "empty list"),
        ({"base": BASE, "grid": {"seed": 3}}, "must be a list of values"),
        ({"base": BASE, "grid": {"epsilon": [-1]}}, "not a positive ε"),
        ({"base": BASE, "grid": {"epsilon": ["lots"]}}, "not a positive ε"),
        ({"base": BASE, "grid": {"k": [0]}}, "not an integer ≥ 1"),
        ({"base": BASE, "grid": {"seed": [0, 0]}}, "the same value twice"),
        ({"base": BASE, "grid": {"epsilom": [1]}}, "unknown setting(s) epsilom"),
        ({"base": BASE, "grid": {"privacy.epsilom": [1]}}, "unknown setting(s) privacy.epsilom"),
        ({"base": BASE, "grid": {"privacyy.epsilon": [1]}}, "'privacyy' is not a group"),
        ({"base": BASE, "grid": {"out": ["x"]}}, "cannot be varied"),
        ({"base": BASE, "grid": {"epsilon": [1], "privacy.epsilon": [2]}}, "alias"),
        ({"base": {"nonsense": 1}, "grid": {"seed": [0]}}, "base: unknown setting(s) nonsense"),
    ],
)
def test_bad_sweep_files_fail_with_a_message(tmp_path: Path, payload: object, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_sweep(_sweep(tmp_path, payload))
    assert message in str(error.value)
    assert "sweep.yaml" in str(error.value)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"method": ["herding"], "epsilon": [4]}, "cell method-herding_eps-4: method 'herding'"),
        ({"method": ["no-such-method"]}, "unknown method 'no-such-method'"),
        ({"fairness": ["sometimes"]}, "fairness: 'sometimes' is not one of 'none' or"),
    ],
)
def test_cells_the_pipeline_would_refuse_fail_before_anything_runs(
    tmp_path: Path, grid: dict[str, list[object]], message: str
) -> None:
    out = tmp_path / "study"
    with pytest.raises(ConfigError) as error:
        expand_cells(load_sweep(_sweep(tmp_path, {"base": BASE, "grid": grid})), out)
    assert message in str(error.value)
    assert not out.exists()


def test_a_base_may_be_a_run_config_file_next_to_the_sweep(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**BASE, "per_class": 4}), "utf-8")
    sweep = load_sweep(_sweep(tmp_path, {"base": "base.yaml", "grid": {"seed": [5]}}))
    [cell] = expand_cells(sweep, tmp_path)
    assert cell.config.per_class == 4 and cell.config.seed == 5
    assert sweep.name == "sweep"
