"""Every DP method end to end through the CLI on real data: the report's ε is what opacus says
for its ledger, and no private training text is released."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tdd_priv.cli import main
from tdd_priv.privacy import compute_epsilon
from tests.helpers import QUICK_DP_OPTIONS

# case -> (method, method options, realization)
DP_CASES = {
    **{m: (m, options, "public-match") for m, options in QUICK_DP_OPTIONS.items()},
    "dm-per-step": ("dm", {**QUICK_DP_OPTIONS["dm"], "release": "per-step"}, "public-match"),
    "mtt-public-teacher": ("mtt", QUICK_DP_OPTIONS["mtt"], "public-teacher"),
}


@pytest.mark.parametrize("case", sorted(DP_CASES))
def test_dp_run_end_to_end(case: str, tiny_ag_news: Path, tmp_path: Path) -> None:
    method, options, realization = DP_CASES[case]
    out = tmp_path / case
    args = [
        "run",
        "--data",
        str(tiny_ag_news),
        "--split-column",
        "split",
        "--method",
        method,
        "--per-class",
        "3",
        "--epsilon",
        "2",
        "--realize",
        realization,
        "--eval-seeds",
        "1",
        "--heads",
        "linear",
        "--orchestrator",
        "local",
        "--no-progress",
        "--out",
        str(out),
    ]
    for key, value in options.items():
        args += ["--method-option", f"{key}={value}"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    privacy = report["privacy"]
    assert privacy["mode"] == "dp"
    recomputed = compute_epsilon(privacy["mechanisms"], delta=privacy["delta"])
    assert privacy["epsilon"] == pytest.approx(recomputed, rel=1e-9)
    assert privacy["epsilon"] <= 2.0
    assert "dp_sgd" in report["utility"]

    frame = pd.read_csv(tiny_ag_news)
    splits = json.loads((out.with_name(out.name + ".private") / "splits.json").read_text())
    pool = set(frame.text.iloc[splits["public"]])
    members = set(frame.text.iloc[splits["members"]])
    released = [
        json.loads(line)["text"] for line in (out / "synthetic/data.jsonl").read_text().splitlines()
    ]
    assert len(released) == 12
    assert all(text in pool for text in released)
    assert not [text for text in released if text in members and text not in pool]


def test_dp_refuses_private_records(
    tiny_ag_news: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--data",
            str(tiny_ag_news),
            "--split-column",
            "split",
            "--method",
            "dm",
            "--realize",
            "private-coreset",
            "--orchestrator",
            "local",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2
    assert "private-coreset" in capsys.readouterr().err
    code = main(
        [
            "run",
            "--data",
            str(tiny_ag_news),
            "--method",
            "dm",
            "--epsilon",
            "2",
            "--delta",
            "0.5",
            "--orchestrator",
            "local",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2
    assert "--delta" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_privacy_noise_is_secret_not_derived_from_the_published_seed(
    tiny_ag_news: Path, tmp_path: Path
) -> None:
    """`seed` is published in config.resolved.yaml, so the noise must not follow from it: two
    runs with the same seed release different noisy sets, unless a noise seed is given, and a
    given noise seed is never published."""
    import yaml
    from safetensors.numpy import load_file

    from tdd_priv import RunConfig, run
    from tests.helpers import tiny_run_overrides

    base = RunConfig().with_overrides(
        {
            **tiny_run_overrides(tiny_ag_news, tmp_path / "unused"),
            "method": "dm",
            "method_options": QUICK_DP_OPTIONS["dm"],
            "realize": "public-match",
            "privacy.enabled": True,
            "evaluation.seeds": 1,
            "evaluation.heads": ["linear"],
            "evaluation.baselines": [],
            "evaluation.text_models": [],
            "audit.level": "none",
        }
    )

    def released(name: str, noise_seed: int | None) -> dict[str, object]:
        out = tmp_path / name
        run(base.with_overrides({"out": str(out), "privacy.noise_seed": noise_seed}))
        resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
        assert resolved["seed"] == 0 and resolved["privacy"]["noise_seed"] is None
        return load_file(str(out / "synthetic" / "embeddings.safetensors"))

    fresh = [released(f"fresh{i}", None)["embeddings"] for i in range(2)]
    assert not (fresh[0] == fresh[1]).all()
    fixed = [released(f"fixed{i}", 1234)["embeddings"] for i in range(2)]
    assert (fixed[0] == fixed[1]).all()
