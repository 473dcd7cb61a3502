"""A DP release is exactly what its report says: no private rows, no un-noised private facts,
one privacy claim, and a budget that composes across runs.

Real runs on `tiny_ag_news` with `dpsgd-teacher` (quick options), each through the CLI.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from tdd_priv.cli import main
from tdd_priv.data import ColumnMapping, load_labeled
from tdd_priv.data.overlap import normalize_text
from tdd_priv.privacy.budget import BudgetLedger, ledger_name
from tests.helpers import AG_NEWS_LABELS, QUICK_DP_OPTIONS

NOISE_SEED = 918_273_645  # distinctive: must appear in no released file


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    args = [
        "run",
        "--data",
        str(data),
        "--split-column",
        "split",
        "--label-names",
        ",".join(AG_NEWS_LABELS),
        "--method",
        "dpsgd-teacher",
        "--per-class",
        "3",
        "--epsilon",
        "2",
        "--eval-seeds",
        "1",
        "--heads",
        "linear",
        "--orchestrator",
        "local",
        "--no-progress",
        "--out",
        str(out),
        *extra,
    ]
    for key, value in QUICK_DP_OPTIONS["dpsgd-teacher"].items():
        args += ["--method-option", f"{key}={value}"]
    return args


@pytest.fixture(scope="module")
def planted_pool(tiny_ag_news: Path, ag_news_pool: Path, tmp_path_factory: pytest.TempPathFactory):
    """The external pool plus copies of labeled rows: 3 exact (changed only in case and
    spacing) and 2 near ones (one word changed at the end)."""
    labeled = pd.read_csv(tiny_ag_news)
    texts = labeled.text.tolist()
    exact = [texts[0].upper(), "  " + texts[70], texts[-1].replace(" ", "  ")]
    near = [texts[5].rsplit(" ", 1)[0] + " extra", texts[200].rsplit(" ", 1)[0] + " word"]
    pool = pd.read_csv(ag_news_pool).text.tolist() + exact + near
    path = tmp_path_factory.mktemp("planted") / "pool.csv"
    pd.DataFrame({"text": pool}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def external_run(
    tiny_ag_news: Path, planted_pool: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("runs") / "external"
    config = out.parent / "noise.yaml"
    config.write_text(f"privacy:\n  noise_seed: {NOISE_SEED}\n", encoding="utf-8")
    args = _args(tiny_ag_news, out, "--public-pool", str(planted_pool), "--config", str(config))
    assert main(args) == 0
    return out


def _released_texts(out: Path) -> list[str]:
    lines = (out / "synthetic/data.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines]


def test_dp_without_a_public_pool_is_refused_before_any_data_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-file.csv"  # reading it would fail differently
    code = main(_args(missing, tmp_path / "out"))
    assert code == 2
    error = capsys.readouterr().err
    assert "--public-pool" in error and "not found" not in error
    assert not (tmp_path / "out").exists()


def test_pool_texts_equal_or_near_a_labeled_row_are_removed(
    external_run: Path, tiny_ag_news: Path
) -> None:
    report = json.loads((external_run / "report.json").read_text(encoding="utf-8"))
    check = report["dataset"]["public_pool"]["check"]
    assert check["removed_exact"] >= 3 and check["removed_near"] >= 2
    assert report["privacy"]["claim"]["pool"]["removed_exact"] == check["removed_exact"]
    labeled = {normalize_text(t) for t in pd.read_csv(tiny_ag_news).text}
    assert not [t for t in _released_texts(external_run) if normalize_text(t) in labeled]
    assert report["privacy"]["claim"]["status"] == "covered"


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (str(key), *_strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [str(value)]


def test_no_released_file_holds_a_private_value(
    external_run: Path, tiny_ag_news: Path, planted_pool: Path
) -> None:
    """Walk every released file for what the release must not contain."""
    labeled = load_labeled(
        str(tiny_ag_news),
        columns=ColumnMapping(split="split"),
        label_names=AG_NEWS_LABELS,
    )
    forbidden = {
        "plain dataset fingerprint": labeled.fingerprint,
        "noise seed": str(NOISE_SEED),
        "data path": str(tiny_ag_news.parent),
        "pool path": str(planted_pool.parent),
        "run path": str(external_run.parent),
    }
    # every labeled text long enough not to occur by chance (public texts were checked apart)
    private_texts = [t for t in labeled.dataset["text"] if len(t) >= 40]
    files = [p for p in external_run.rglob("*") if p.is_file()]
    assert files
    for path in files:
        content = unicodedata.normalize("NFC", path.read_bytes().decode("utf-8", "replace"))
        for what, value in forbidden.items():
            assert value not in content, f"{path.name} holds the {what}"
        leaked = [t for t in private_texts if t in content]
        assert not leaked, f"{path.name} holds {len(leaked)} labeled text(s)"
    report = json.loads((external_run / "report.json").read_text(encoding="utf-8"))
    assert "private_id" not in _strings(report)  # no member row ids
    assert "source" not in report["dataset"]


def test_report_json_is_strict_json(external_run: Path) -> None:
    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    for path in external_run.rglob("*.json*"):
        for line in [path.read_text(encoding="utf-8")] if path.suffix == ".json" else []:
            json.loads(line, parse_constant=refuse)


def test_internal_pool_is_an_opt_in_whose_rows_every_renderer_calls_unprotected(
    tiny_ag_news: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "internal"
    assert main(_args(tiny_ag_news, out, "--public-pool", "internal")) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    claim = report["privacy"]["claim"]
    released = len(_released_texts(out))
    assert claim["status"] == "not-covered" and claim["unprotected_texts"] == released
    sentence = f"{released} texts are unprotected rows of the input data"
    assert sentence in report["privacy"]["statement"]
    assert "NOT COVERED" in printed and sentence in printed
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "| Privacy | **NOT COVERED**" in markdown and "DIFFERENTIALLY PRIVATE" not in markdown
    assert sentence in markdown
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<span class="badge fail">NOT COVERED</span>' in html and sentence in html


def test_budget_composes_across_runs_and_its_limit_refuses_the_run_that_would_exceed_it(
    tiny_ag_news: Path, ag_news_pool: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    limit = ["--budget-limit", "2.5", "--budget-ledger", "truth-test"]  # two runs: ε ≈ 2.9
    first = tmp_path / "first"
    assert main(_args(tiny_ag_news, first, "--public-pool", str(ag_news_pool), *limit)) == 0
    cumulative = json.loads((first / "report.json").read_text())["privacy"]["claim"]["cumulative"]
    assert cumulative["runs"] == 1 and cumulative["epsilon"] == pytest.approx(2, rel=1e-3)
    second = tmp_path / "second"
    capsys.readouterr()
    assert main(_args(tiny_ag_news, second, "--public-pool", str(ag_news_pool), *limit)) == 2
    assert "above --budget-limit 2.5" in capsys.readouterr().err
    assert not second.exists()
    assert len(BudgetLedger("truth-test").entries()) == 1
    assert ledger_name(dataset_fingerprint="x", configured="truth-test") == "truth-test"
