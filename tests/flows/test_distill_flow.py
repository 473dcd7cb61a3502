"""The Prefect flow runs the library's steps as tasks and writes the same run folder."""

import json
from pathlib import Path

import pytest

from tdd_priv.config import RunConfig
from tdd_priv.privacy import compute_epsilon
from tests.helpers import QUICK_DP_OPTIONS, tiny_run_overrides


def test_flow_runs_every_step_as_a_task(tiny_ag_news: Path, run_out: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.distill import distill_flow

    config = RunConfig().with_overrides(tiny_run_overrides(tiny_ag_news, run_out))
    state = distill_flow(config.to_dict(), return_state=True)
    assert state.is_completed()
    report = json.loads((run_out / "report.json").read_text())
    assert report["utility"]["synthetic"]["n_models"] == 4

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    names = {run.name.rsplit("-", 1)[0] for run in runs}
    # the default --audit basic: the flow passes the auditors of flows.extensions (issue 5)
    assert names == {
        *("load", "split", "pool", "encode", "distill", "realize", "evaluate", "audit", "report")
    }
    assert {"membership", "leakage"} <= set(report["audits"])
    assert all(run.state is not None and run.state.is_completed() for run in runs)


def test_failed_validation_fails_the_flow_and_writes_nothing(
    tiny_ag_news: Path, run_out: Path
) -> None:
    from flows.distill import distill_flow

    config = RunConfig().with_overrides(
        {**tiny_run_overrides(tiny_ag_news, run_out), "data.text_column": "missing"}
    )
    state = distill_flow(config.to_dict(), return_state=True)
    assert state.is_failed()
    assert not run_out.exists()
    assert list(run_out.parent.iterdir()) == []


@pytest.mark.parametrize("method", sorted(QUICK_DP_OPTIONS))
def test_every_dp_method_runs_through_the_flow(
    method: str, tiny_ag_news: Path, ag_news_pool: Path, run_out: Path
) -> None:
    from flows.distill import distill_flow

    overrides = {
        **tiny_run_overrides(tiny_ag_news, run_out),
        "data.public_pool": str(ag_news_pool),
        "method": method,
        "method_options": QUICK_DP_OPTIONS[method],
        "per_class": 3,
        "realize": "public-match",
        "privacy.enabled": True,
        "privacy.epsilon": 3.0,
        "evaluation.seeds": 1,
        "evaluation.heads": ["linear"],
        "evaluation.baselines": [],
        "evaluation.text_models": [],
    }
    state = distill_flow(RunConfig().with_overrides(overrides).to_dict(), return_state=True)
    assert state.is_completed()
    privacy = json.loads((run_out / "report.json").read_text())["privacy"]
    assert privacy["mode"] == "dp"
    assert privacy["epsilon"] <= 3.0
    assert privacy["epsilon"] == pytest.approx(
        compute_epsilon(privacy["mechanisms"], delta=privacy["delta"])
    )


def test_a_noise_seed_never_reaches_the_orchestrator(
    tiny_ag_news: Path, ag_news_pool: Path, run_out: Path
) -> None:
    """The CLI's flow run keeps a configured noise seed in-process: the flow run's stored
    parameters hold none, and the flow refuses one handed to it as a parameter."""
    from prefect.client.orchestration import get_client

    from flows.distill import distill_flow, run_distill_flow

    seed = 918_273_645
    overrides = {
        **tiny_run_overrides(tiny_ag_news, run_out),
        "data.public_pool": str(ag_news_pool),
        "method": "dpsgd-teacher",
        "method_options": QUICK_DP_OPTIONS["dpsgd-teacher"],
        "per_class": 2,
        "privacy.enabled": True,
        "privacy.noise_seed": seed,
        "evaluation.seeds": 1,
        "evaluation.heads": ["linear"],
        "evaluation.baselines": [],
        "evaluation.text_models": [],
        "audit.level": "none",
    }
    config = RunConfig().with_overrides(overrides)
    first = run_distill_flow(config)
    second_out = run_out.parent / "second"
    second = run_distill_flow(config.with_overrides({"out": str(second_out)}))
    same = json.loads((second_out / "synthetic/data.jsonl").read_text().splitlines()[0])
    assert first.report["utility"]["synthetic"] == second.report["utility"]["synthetic"]
    assert json.loads((run_out / "synthetic/data.jsonl").read_text().splitlines()[0]) == same
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    stored = json.dumps([run.parameters for run in runs], default=str)
    assert runs and str(seed) not in stored
    state = distill_flow(config.to_dict(), return_state=True)
    assert state.is_failed() and "noise_seed" in str(state.message)
