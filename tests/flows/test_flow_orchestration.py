"""The distill flow's operations: retries only where no privacy budget is spent, cached encode
and expert steps across runs, versioned artifacts, fresh folders for scheduled runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

import tdd_priv.pipeline as pipeline
from tdd_priv.config import RunConfig
from tests.helpers import QUICK_DP_OPTIONS, tiny_run_overrides


def _task_states(flow_run_id: UUID) -> dict[str, list[str]]:
    """{step name: final state names of its task runs} of one flow run."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    states: dict[str, list[str]] = {}
    for run in sorted(runs, key=lambda run: str(run.created)):
        states.setdefault(run.name.rsplit("-", 1)[0], []).append(run.state_name or "")
    return states


def _flaky(step: Callable[..., Any], failures: int, calls: list[int]) -> Callable[..., Any]:
    """`step` failing with an I/O error on its first `failures` calls (same __name__)."""

    def flaky(*args: Any) -> Any:
        calls.append(1)
        if len(calls) <= failures:
            raise OSError("the network filesystem went away for a moment")
        return step(*args)

    flaky.__name__ = step.__name__
    return flaky


def test_steps_that_spend_privacy_budget_are_never_retried() -> None:
    from flows.distill import NEVER_RETRIED, STEP_POLICIES, step_policy

    assert {"distill", "experts", "evaluate"} <= NEVER_RETRIED
    assert all(step_policy(name).retries == 0 for name in NEVER_RETRIED)
    assert all(step_policy(name).retries > 0 for name in ("load", "encode", "report"))
    assert set(STEP_POLICIES) - NEVER_RETRIED == {"load", "encode", "report"}


def test_a_failing_io_step_is_retried_and_a_failing_dp_step_is_not(
    tiny_ag_news: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.distill as distill_module

    monkeypatch.setattr(distill_module, "RETRY_DELAY_SECONDS", 0.0)
    load_calls: list[int] = []
    monkeypatch.setattr(pipeline, "load_step", _flaky(pipeline.load_step, 1, load_calls))
    config = RunConfig().with_overrides(tiny_run_overrides(tiny_ag_news, tmp_path / "io"))
    assert distill_module.distill_flow(config.to_dict(), return_state=True).is_completed()
    assert len(load_calls) == 2  # failed once, retried once

    distill_calls: list[int] = []
    monkeypatch.setattr(pipeline, "distill_step", _flaky(pipeline.distill_step, 1, distill_calls))
    dp = config.with_overrides(
        {
            "out": str(tmp_path / "dp"),
            "method": "dm",
            "method_options": QUICK_DP_OPTIONS["dm"],
            "data.public_pool": "internal",
            "privacy.enabled": True,
        }
    )
    assert distill_module.distill_flow(dp.to_dict(), return_state=True).is_failed()
    assert len(distill_calls) == 1  # no second release of noisy statistics
    assert not (tmp_path / "dp").exists()


def test_encode_and_experts_are_cached_across_runs(tiny_ag_news: Path, tmp_path: Path) -> None:
    from flows.distill import distill_flow

    overrides = {
        **tiny_run_overrides(tiny_ag_news, tmp_path / "first"),
        "method": "mtt",
        "method_options": QUICK_DP_OPTIONS["mtt"],
        "per_class": 3,
        "realize": "public-match",
        "data.public_pool": "internal",
        "privacy.enabled": True,
        "privacy.epsilon": 3.0,
        "evaluation.seeds": 1,
        "evaluation.baselines": [],
        "evaluation.text_models": [],
        "audit.level": "none",
    }
    config = RunConfig().with_overrides(overrides)
    cache = Path(config.cache_dir) / "experts"
    first = distill_flow(config.to_dict(), return_state=True)
    assert first.is_completed()
    second_config = config.with_overrides({"out": str(tmp_path / "second")})
    second = distill_flow(second_config.to_dict(), return_state=True)
    assert second.is_completed()
    states = _task_states(second.state_details.flow_run_id)
    assert states["encode"] == ["Cached"]
    assert states["experts"] == ["Cached"]
    assert states["distill"] == ["Completed"]

    # Reusing the experts is reusing one DP release: same set, same ledger, same ε.
    reports = [
        json.loads((tmp_path / run / "report.json").read_text()) for run in ("first", "second")
    ]
    assert reports[0]["privacy"]["mechanisms"] == reports[1]["privacy"]["mechanisms"]
    assert reports[0]["privacy"]["epsilon"] == reports[1]["privacy"]["epsilon"] <= 3.0
    texts = [
        (tmp_path / run / "synthetic" / "data.jsonl").read_text() for run in ("first", "second")
    ]
    assert texts[0] == texts[1]

    # A cached result whose files were deleted is recomputed, not trusted.
    for path in cache.glob("*.safetensors"):
        path.unlink()
    third = distill_flow(
        config.with_overrides({"out": str(tmp_path / "third")}).to_dict(), return_state=True
    )
    assert third.is_completed()
    # the cached result is found stale, and the step runs again
    assert _task_states(third.state_details.flow_run_id)["experts"] == ["Cached", "Completed"]
    assert list(cache.glob("*.safetensors"))

    # Other privacy settings are another release: not served from the cache.
    fourth = distill_flow(
        config.with_overrides({"out": str(tmp_path / "fourth"), "privacy.epsilon": 2.0}).to_dict(),
        return_state=True,
    )
    assert _task_states(fourth.state_details.flow_run_id)["experts"] == ["Completed"]


def test_runs_publish_versioned_artifacts(tiny_ag_news: Path, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.distill import distill_flow

    config = RunConfig().with_overrides(
        {**tiny_run_overrides(tiny_ag_news, tmp_path / "x"), "evaluation.seeds": 1}
    )
    for _ in range(2):  # a scheduled job: each run in a new folder under runs_dir
        state = distill_flow(
            config.to_dict(),
            runs_dir=str(tmp_path / "runs"),
            artifact_name="Nightly AG News!",
            return_state=True,
        )
        assert state.is_completed()
    folders = sorted(f for f in (tmp_path / "runs").iterdir() if f.suffix != ".private")
    assert len(folders) == 2 and all((f / "report.json").is_file() for f in folders)
    private = sorted(f.with_name(f.name + ".private") for f in folders)  # each run's record
    assert sorted((tmp_path / "runs").iterdir()) == sorted([*folders, *private])
    assert not (tmp_path / "x").exists()

    key = "tdd-priv-nightly-ag-news"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"{key}-summary", f"{key}-verdicts", f"{key}-folder"])
            )
        )
    by_key: dict[str, list[Any]] = {}
    for artifact in artifacts:
        by_key.setdefault(str(artifact.key), []).append(artifact)
    assert {name: len(items) for name, items in by_key.items()} == {
        f"{key}-summary": 2,
        f"{key}-verdicts": 2,
        f"{key}-folder": 2,
    }
    summaries = {str(a.data) for a in by_key[f"{key}-summary"]}
    report = json.loads((folders[-1] / "report.json").read_text())
    assert any(report["run_id"] in summary and "Verdicts" in summary for summary in summaries)
    verdict_rows = json.loads(str(by_key[f"{key}-verdicts"][0].data))
    assert {row["check"] for row in verdict_rows} == set(report["verdicts"])
    links = {str(a.data) for a in by_key[f"{key}-folder"]}
    uri = (folders[-1] / "report.html").resolve().as_uri()
    assert any(f"({uri})" in link for link in links)  # stored as a markdown link


def test_prefect_yaml_deployments_load_and_validate() -> None:
    """Each deployment in prefect.yaml names a loadable flow, parameters that the flow accepts,
    a config file that parses, and a valid cron schedule."""
    import yaml
    from prefect.flows import load_flow_from_entrypoint

    from flows.deploy import DeploymentSpec, cron_schedule
    from tdd_priv.config import load_config_file
    from tests.conftest import REPO_ROOT

    project = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())
    assert project["deployments"]
    for deployment in project["deployments"]:
        flow = load_flow_from_entrypoint(str(REPO_ROOT / deployment["entrypoint"]))
        assert flow.name == "tdd-priv-distill"
        parameters = deployment["parameters"]
        flow.validate_parameters(parameters)
        load_config_file(REPO_ROOT / parameters["config_file"])
        for schedule in deployment["schedules"]:
            spec = DeploymentSpec(
                deployment["name"], schedule["cron"], Path("unused"), schedule["timezone"]
            )
            assert cron_schedule(spec).cron == schedule["cron"]
