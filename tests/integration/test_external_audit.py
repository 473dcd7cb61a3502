"""`tdd-priv audit` on releases made outside tdd-priv, built here from real data (tiny AG News):
a release that copies training rows fails leakage, one of public texts does not; neither gets a
privacy claim; the signed folder holds the very file audited; bad files fail before any work;
and `evaluate_release` scores a file under exactly the protocol of the audit."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tdd_priv.cli import main
from tdd_priv.config import RunConfig
from tdd_priv.external import evaluate_release
from tdd_priv.fingerprint import sha256_file
from tdd_priv.signing import generate_key_pair
from tdd_priv.verify import verify_run
from tests.helpers import AG_NEWS_LABELS

pytestmark = pytest.mark.slow

COPIED_PER_CLASS = 3
# a quick protocol: one linear head, one seed, no text models; the three baselines stay
EVALUATION = {
    "evaluation.heads": ["linear"],
    "evaluation.text_models": [],
    "evaluation.seeds": 1,
    "evaluation.steps": 150,
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("external")
    (folder / "config.yaml").write_text(
        "evaluation:\n  heads: [linear]\n  text_models: []\n  seeds: 1\n  steps: 150\n",
        encoding="utf-8",
    )
    generate_key_pair(folder / "signer")
    return folder


@pytest.fixture(scope="module")
def leaky_release(tiny_ag_news: Path, ag_news_pool: Path, folder: Path) -> Path:
    """Per class: 3 training rows copied verbatim and 2 public texts (3 for World: classes of
    uneven size), labels as class names."""
    data, pool = pd.read_csv(tiny_ag_news), pd.read_csv(ag_news_pool)
    train = data[data.split == "train"]
    parts = []
    for label, name in enumerate(AG_NEWS_LABELS):
        copied = train[train.label == label].iloc[10 : 10 + COPIED_PER_CLASS].text.tolist()
        extra = 1 if label == 0 else 0
        public = pool.text.iloc[100 * label : 100 * label + 2 + extra].tolist()  # 100 per class
        parts += [{"text": text, "label": name} for text in copied + public]
    path = folder / "leaky.csv"
    pd.DataFrame(parts).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def public_release(ag_news_pool: Path, folder: Path) -> Path:
    """5 public texts per class (no labeled row among them), labels as class ids, JSON lines."""
    pool = pd.read_csv(ag_news_pool)
    rows = [
        {"text": text, "label": label}
        for label in range(len(AG_NEWS_LABELS))
        for text in pool.text.iloc[100 * label + 50 : 100 * label + 55]
    ]
    path = folder / "public.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _audit(release: Path, data: Path, folder: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    argv = [
        "audit", "--release", str(release), "--data", str(data), "--split-column", "split",
        "--label-names", ",".join(AG_NEWS_LABELS), "--config", str(folder / "config.yaml"),
        "--orchestrator", "local", "--no-progress", "--key", str(folder / "signer"),
        "--out", str(out), *extra,
    ]  # fmt: skip
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def leaky_audit(leaky_release: Path, tiny_ag_news: Path, folder: Path) -> tuple[Path, str]:
    out = folder / "leaky-run"
    code, printed, _ = _audit(leaky_release, tiny_ag_news, folder, out, "--detox", "flag")
    assert code == 0
    return out, printed


@pytest.fixture(scope="module")
def public_audit(
    public_release: Path, tiny_ag_news: Path, ag_news_pool: Path, folder: Path
) -> tuple[Path, str]:
    out = folder / "public-run"
    code, printed, _ = _audit(
        public_release, tiny_ag_news, folder, out, "--public-pool", str(ag_news_pool)
    )
    assert code == 0
    return out, printed


def _report(out: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    return report


def test_a_release_that_copies_training_rows_fails_leakage(leaky_audit: tuple[Path, str]) -> None:
    report = _report(leaky_audit[0])
    leakage = report["audits"]["leakage"]
    copied = COPIED_PER_CLASS * len(AG_NEWS_LABELS)
    assert leakage["exact_duplicates"] == copied
    assert leakage["by_part"]["members"]["exact"] == copied
    assert leakage["release_source"] == "external" and leakage["may_contain_private_rows"]
    assert report["verdicts"]["exact_duplicates"]["status"] == "FAIL"
    assert {"membership", "toxicity"} <= set(report["audits"])
    assert report["audits"]["toxicity"]["mode"] == "flag"


def test_a_release_of_public_texts_does_not_fail_leakage(public_audit: tuple[Path, str]) -> None:
    report = _report(public_audit[0])
    assert report["audits"]["leakage"]["exact_duplicates"] == 0
    assert report["verdicts"]["exact_duplicates"]["status"] == "PASS"
    # every released text is a text of the public pool given to the audit
    assert report["release"]["public_pool"]["exact"] == report["release"]["rows"] == 20


def test_the_report_makes_no_privacy_claim_and_says_so(leaky_audit: tuple[Path, str]) -> None:
    out, printed = leaky_audit
    report = _report(out)
    privacy = report["privacy"]
    assert privacy["mode"] == "none" and privacy["claim"]["status"] == "no-claim"
    assert report["method"]["name"] == "external"
    statement = privacy["claim"]["statement"]
    assert "made outside tdd-priv" in statement
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert "| Privacy | **NO PRIVACY CLAIM**" in markdown and statement in markdown
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<span class="badge fail">NO PRIVACY CLAIM</span>' in html
    assert f"privacy      NO PRIVACY CLAIM: {statement}" in printed
    assert "release      leaky.csv (21 rows" in printed
    # no ε is claimed: the default policy's epsilon check fails, as for any run without DP
    assert report["verdicts"]["epsilon"]["status"] == "FAIL"


def test_the_signed_folder_holds_exactly_the_file_audited(
    leaky_audit: tuple[Path, str], leaky_release: Path, folder: Path, tmp_path: Path
) -> None:
    out = leaky_audit[0]
    report = _report(out)
    release = report["release"]
    assert release["file"] == "leaky.csv" and release["rows"] == 21
    assert release["sha256"] == sha256_file(leaky_release)
    copy = out / release["copy"]
    assert copy.read_bytes() == leaky_release.read_bytes()
    assert {"path": release["copy"], "sha256": release["sha256"]} in report["artifacts"]
    assert not verify_run(out, public_key=folder / "signer.pub").failures
    tampered = tmp_path / "tampered"
    shutil.copytree(out, tampered)
    with (tampered / release["copy"]).open("a", encoding="utf-8") as handle:
        handle.write("one more text,World\n")
    failures = verify_run(tampered, public_key=folder / "signer.pub").failures
    assert any(release["copy"] in check.detail for check in failures)


def test_baselines_get_the_releases_total_size_when_its_classes_are_uneven(
    leaky_audit: tuple[Path, str],
) -> None:
    report = _report(leaky_audit[0])
    sizes = report["release"]["per_class"]
    assert (sizes["min"], sizes["max"], sizes["even"]) == (5, 6, False)
    assert sizes["baselines"] == report["method"]["per_class"] == 5  # round(21 / 4)
    assert report["synthetic"]["label_counts"]["World"] == 6
    assert "5–6 per class; baselines at k = 5" in leaky_audit[1]


def test_members_are_the_train_split_and_non_members_the_test_split(
    leaky_audit: tuple[Path, str],
) -> None:
    report = _report(leaky_audit[0])
    membership = report["release"]["membership"]
    assert (membership["members_split"], membership["nonmembers_split"]) == ("train", "test")
    sizes = report["dataset"]["sizes"]
    assert sizes["members"] == membership["members"] == 240  # 60 train rows per class
    assert sizes["audit"] == membership["nonmembers"] == sizes["test"] == 160
    assert report["audits"]["membership"]["n_members"] == 240
    assert report["audits"]["membership"]["n_nonmembers"] == 160


def test_the_release_is_scored_under_the_audits_protocol(
    public_audit: tuple[Path, str], public_release: Path, tiny_ag_news: Path
) -> None:
    config = RunConfig().with_overrides(
        {
            "data.spec": str(tiny_ag_news),
            "data.split_column": "split",
            "data.label_names": list(AG_NEWS_LABELS),
            "progress": False,
            **EVALUATION,
        }
    )
    evaluation = evaluate_release(config, public_release)
    utility = _report(public_audit[0])["utility"]
    assert set(evaluation.utilities) == {
        "synthetic", "realized", "full_data", "random", "herding", "kcenter", "majority_class",
    }  # fmt: skip
    for name, scores in evaluation.utilities.items():
        reported = {
            key: value for key, value in utility[name].items() if key != "at_or_below_floor"
        }
        assert scores.to_json(list(AG_NEWS_LABELS)) == reported, name
    assert utility["random"]["n_models"] == 1 and utility["synthetic"]["accuracy_mean"] > 0.25


def _bad_release(folder: Path, name: str, content: str) -> Path:
    path = folder / name
    path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("columns.csv", "sentence,category\na,World\n", "no 'text' column"),
        ("labels.csv", "text,label\na,World\nb,Cooking\n", "'Cooking'"),
        ("empty.csv", "text,label\n", "no data rows"),
        ("empty.jsonl", "", "no records"),
    ],
)
def test_a_bad_release_file_fails_fast_with_exit_2(
    name: str,
    content: str,
    expected: str,
    tiny_ag_news: Path,
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_work(*_: object) -> None:
        raise AssertionError("a bad release must fail before anything is encoded")

    monkeypatch.setattr("tdd_priv.external.encode_step", no_work)
    release = _bad_release(tmp_path, name, content)
    code, _, stderr = _audit(release, tiny_ag_news, folder, tmp_path / "run")
    assert code == 2
    error = stderr.splitlines()[-1]  # after the notes of the steps that ran (read, load)
    assert error.startswith("tdd-priv: error: ") and expected in error
    assert "Traceback" not in stderr
    assert not (tmp_path / "run").exists()


def test_data_without_a_split_column_is_refused_with_the_fix(
    public_release: Path, tiny_ag_news: Path, folder: Path, tmp_path: Path
) -> None:
    unsplit = tmp_path / "unsplit.csv"
    pd.read_csv(tiny_ag_news).drop(columns="split").to_csv(unsplit, index=False)
    argv = [
        "audit", "--release", str(public_release), "--data", str(unsplit),
        "--orchestrator", "local", "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(argv) == 2
    assert "no split column" in stderr.getvalue() and "--split-column" in stderr.getvalue()
    assert not (tmp_path / "run").exists()


def test_a_bad_release_fails_before_the_prefect_server_starts(
    tiny_ag_news: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_flow(*_: object) -> None:
        raise AssertionError("the flow must not start for a release that cannot be audited")

    monkeypatch.setattr("flows.external.run_audit_release_flow", no_flow)
    release = _bad_release(tmp_path, "labels.csv", "text,label\na,World\nb,Cooking\n")
    argv = [
        "audit", "--release", str(release), "--data", str(tiny_ag_news), "--split-column",
        "split", "--label-names", ",".join(AG_NEWS_LABELS), "--orchestrator", "prefect",
        "--out", str(tmp_path / "run"),
    ]  # fmt: skip
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert main(argv) == 2
    assert "'Cooking'" in stderr.getvalue() and not (tmp_path / "run").exists()
