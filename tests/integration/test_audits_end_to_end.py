"""The audits on a real, tiny, non-private run that copies private records into its release:
they must light up (membership, leakage), record the canaries privately, judge the run by the
policy, and `--strict` must exit non-zero only after the run folder is written and signed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdd_priv.cli import main
from tdd_priv.verify import verify_run
from tests.helpers import AG_NEWS_LABELS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def audited_run(tiny_ag_news: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    folder = tmp_path_factory.mktemp("audited")
    config = folder / "config.yaml"
    config.write_text(
        "evaluation:\n  heads: [linear]\n  text_models: []\n  baselines: []\n"
        "  seeds: 1\n  steps: 150\n",
        encoding="utf-8",
    )
    out = folder / "run"
    code = main(
        [
            "run",
            "--config",
            str(config),
            "--data",
            str(tiny_ag_news),
            "--split-column",
            "split",
            "--label-names",
            ",".join(AG_NEWS_LABELS),
            "--method",
            "herding",
            "--per-class",
            "5",
            "--no-dp",
            "--realize",
            "private-coreset",
            "--orchestrator",
            "local",
            "--no-progress",
            "--audit",
            "full",
            "--shadows",
            "2",
            "--canaries",
            "32",
            "--strict",
            "--out",
            str(out),
        ]
    )
    return out, code


def test_strict_fails_after_writing_and_signing_the_folder(audited_run: tuple[Path, int]) -> None:
    out, code = audited_run
    assert code == 1
    assert not verify_run(out).failures


def test_membership_and_leakage_light_up(audited_run: tuple[Path, int]) -> None:
    report = json.loads((audited_run[0] / "report.json").read_text())
    membership = report["audits"]["membership"]
    # 5 of the ~42 members per class are released verbatim: found without a false positive.
    assert membership["tpr_at_1pct_fpr"] > 0.08
    assert membership["attacks"]["nearest_release"]["tpr_at_1pct_fpr"] > 0.08
    assert membership["shadows"] == 2
    assert {"lira_online", "lira_offline", "rmia_offline"} <= set(membership["attacks"])
    leakage = report["audits"]["leakage"]
    assert leakage["exact_duplicates"] >= 15  # of 20 released (a canary may be among them)
    assert leakage["distance_to_closest_record"]["nearest_is_member_share"] == 1.0
    verdicts = report["verdicts"]
    assert verdicts["exact_duplicates"]["status"] == "FAIL"
    assert verdicts["membership_tpr_at_1pct_fpr"]["status"] == "FAIL"
    assert verdicts["epsilon"]["status"] == "FAIL"  # not private at all
    assert verdicts["canary_bound_below_epsilon"]["status"] == "SKIPPED"
    assert report["policy"]["source"] == "default"
    assert "membership_roc.png" in {Path(f["path"]).name for f in report["figures"]}


def test_canaries_are_recorded_privately_and_never_released(
    audited_run: tuple[Path, int],
) -> None:
    out = audited_run[0]
    report = json.loads((out / "report.json").read_text())
    canary = report["audits"]["canary"]
    assert canary["canaries"] == 32 and 0 < canary["inserted"] < 32
    assert 0.0 <= canary["epsilon_lower_bound"] <= canary["epsilon_ceiling"]
    private = out.with_name(out.name + ".private")
    secrets = json.loads((private / "canaries.json").read_text())
    assert len(secrets) == 32 and sum(s["included"] for s in secrets) == canary["inserted"]
    splits = json.loads((private / "splits.json").read_text())
    assert sorted(s["row"] for s in secrets) == splits["canaries"]
    assert report["dataset"]["sizes"]["canaries"] == 32
    released = "".join(
        (out / name).read_text(encoding="utf-8") for name in ("report.json", "report.md")
    )
    assert not any(secret["text"] in released for secret in secrets)
    assert not (out / "private").exists()
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "Membership inference" in markdown and "Verdicts" in markdown
