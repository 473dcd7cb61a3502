"""A full tiny run on real data (AG News), through the CLI and the Python API."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tdd_priv import pipeline
from tdd_priv.cli import main
from tdd_priv.config import RunConfig
from tdd_priv.pipeline import run
from tests.helpers import tiny_run_overrides


@pytest.fixture(scope="module")
def finished_run(tiny_ag_news: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "herding"
    run(RunConfig().with_overrides(tiny_run_overrides(tiny_ag_news, out)))
    return out


def test_run_folder_has_the_contracted_files(finished_run: Path) -> None:
    for name in (
        "synthetic/data.jsonl",
        "synthetic/data.parquet",
        "synthetic/embeddings.safetensors",
        "report.json",
        "report.md",
        "config.resolved.yaml",
        "figures/utility.png",
    ):
        assert (finished_run / name).is_file(), name
    private = finished_run.with_name("herding.private")  # beside the release, never inside
    assert sorted(path.name for path in private.iterdir()) == [
        ".tdd-priv-folder",
        "config.yaml",  # the full config, local paths included, for the owner
        "realized_rows.json",
        "splits.json",
    ]
    assert not (finished_run / "private").exists()
    rows = [
        json.loads(line)
        for line in (finished_run / "synthetic/data.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 20
    assert {row["label_name"] for row in rows} == {"World", "Sports", "Business", "Sci/Tech"}


def test_report_contract_and_accuracy_band(finished_run: Path) -> None:
    report = json.loads((finished_run / "report.json").read_text())
    for key in (
        "schema_version",
        "run_id",
        "dataset",
        "method",
        "privacy",
        "utility",
        "audits",
        "verdicts",
        "artifacts",
        "environment",
    ):
        assert key in report, key
    assert report["privacy"]["mode"] == "none"
    assert "verbatim" in report["privacy"]["statement"]
    assert report["environment"]["device"] == {"requested": "cpu", "type": "cpu", "name": "cpu"}
    utility = report["utility"]
    for name in ("synthetic", "full_data", "random"):
        assert utility[name]["n_models"] == 4  # 2 heads x 2 seeds
    # 4 balanced classes: chance is 0.25. MiniLM embeddings separate AG News topics well.
    assert 0.55 < utility["synthetic"]["accuracy_mean"] <= 1.0
    assert 0.70 < utility["full_data"]["accuracy_mean"] <= 1.0
    assert utility["full_data"]["accuracy_mean"] > utility["random"]["accuracy_mean"] - 0.05
    released = {item["path"] for item in report["artifacts"]}
    assert "synthetic/data.jsonl" in released
    assert not any(path.startswith("private/") for path in released)


def test_released_texts_are_private_members(finished_run: Path, tiny_ag_news: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(tiny_ag_news)
    splits = json.loads((finished_run.with_name("herding.private") / "splits.json").read_text())
    members = set(frame.text.iloc[splits["members"]])
    rows = [
        json.loads(line)
        for line in (finished_run / "synthetic/data.jsonl").read_text().splitlines()
    ]
    assert all(row["text"] in members for row in rows)


def test_second_run_hits_the_cache_and_repeats_the_set(
    finished_run: Path, tiny_ag_news: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tdd_priv.encode as encode

    def refuse(*_: object, **__: object) -> np.ndarray:
        raise AssertionError("the cache should have been hit")

    monkeypatch.setattr(encode.SentenceEncoder, "__init__", refuse)
    monkeypatch.setattr(encode.SentenceEncoder, "encode_blocks", refuse)
    again = run(RunConfig().with_overrides(tiny_run_overrides(tiny_ag_news, tmp_path / "again")))
    assert again.out == tmp_path / "again"
    first = (finished_run / "synthetic/data.jsonl").read_bytes()
    assert (tmp_path / "again/synthetic/data.jsonl").read_bytes() == first


def test_cli_run_prints_a_summary(
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
            "kcenter",
            "--per-class",
            "3",
            "--no-dp",
            "--eval-seeds",
            "1",
            "--heads",
            "linear",
            "--orchestrator",
            "local",
            "--no-progress",
            "--out",
            str(tmp_path / "cli"),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "synthetic (vectors)" in printed and "full private train" in printed
    report = json.loads((tmp_path / "cli/report.json").read_text())
    assert report["method"]["name"] == "kcenter"
    assert report["synthetic"]["size"] == 12


def test_missing_column_fails_cleanly(
    tiny_ag_news: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    code = main(
        [
            "run",
            "--data",
            str(tiny_ag_news),
            "--text-column",
            "body",
            "--no-dp",
            "--orchestrator",
            "local",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    message = capsys.readouterr().err
    assert "body" in message and "text" in message and "label" in message
    assert "--text-column" in message
    assert list(tmp_path.iterdir()) == []


def test_privacy_is_required_to_be_turned_off_explicitly(
    tiny_ag_news: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--data",
            str(tiny_ag_news),
            "--method",
            "herding",
            "--orchestrator",
            "local",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2
    assert "--no-dp" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_existing_run_folder_is_refused_without_overwrite(
    finished_run: Path, tiny_ag_news: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (finished_run / "report.json").read_bytes()
    code = main(
        [
            "run",
            "--data",
            str(tiny_ag_news),
            "--no-dp",
            "--orchestrator",
            "local",
            "--out",
            str(finished_run),
        ]
    )
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (finished_run / "report.json").read_bytes() == before


def test_full_data_text_models_train_before_the_member_embeddings_are_read(
    tiny_ag_news: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large run must never hold the TF-IDF working memory beside the members' embeddings
    (docs/operations.md §8): in the evaluate step, the full-data text models come first."""
    events: list[str] = []

    def spy(name: str, function: Any) -> Any:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            events.append(name)
            return function(*args, **kwargs)

        return recorded

    monkeypatch.setattr(pipeline, "_evaluate", spy("evaluate", pipeline._evaluate))
    monkeypatch.setattr(pipeline, "judge_texts", spy("full-data texts", pipeline.judge_texts))
    monkeypatch.setattr(pipeline, "_member_input", spy("member rows", pipeline._member_input))
    out = tmp_path / "run"
    run(RunConfig().with_overrides(tiny_run_overrides(tiny_ag_news, out)))
    evaluate = events[events.index("evaluate") + 1 :]
    assert evaluate == ["full-data texts", "member rows"]
    report = json.loads((out / "report.json").read_text())
    full_data = report["utility"]["full_data"]["cross_architecture"]["tfidf-lr"]
    assert len(full_data["accuracies"]) == 1 and full_data["accuracy_mean"] > 0.5
