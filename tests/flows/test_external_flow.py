"""The Prefect flow audits a release made elsewhere with the same steps, as tasks, and writes the
same signed run folder as the local orchestrator."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tdd_priv.config import RunConfig
from tdd_priv.verify import verify_run
from tests.helpers import AG_NEWS_LABELS


def test_the_audit_flow_runs_every_step_as_a_task(
    tiny_ag_news: Path, tmp_path: Path, run_out: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.external import audit_release_flow

    data = pd.read_csv(tiny_ag_news)
    train = data[data.split == "train"]
    release = tmp_path / "release.csv"
    pd.concat([train[train.label == c].head(2) for c in range(4)])[["text", "label"]].to_csv(
        release, index=False
    )
    config = RunConfig().with_overrides(
        {
            "release": str(release),
            "data.spec": str(tiny_ag_news),
            "data.split_column": "split",
            "data.label_names": list(AG_NEWS_LABELS),
            "evaluation.heads": ["linear"],
            "evaluation.text_models": [],
            "evaluation.seeds": 1,
            "evaluation.steps": 100,
            "progress": False,
            "out": str(run_out),
        }
    )
    state = audit_release_flow(config.to_dict(), return_state=True)
    assert state.is_completed()
    report = json.loads((run_out / "report.json").read_text())
    assert report["privacy"]["claim"]["status"] == "no-claim"
    assert report["audits"]["leakage"]["exact_duplicates"] == 8
    assert not verify_run(run_out).failures

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    names = {run.name.rsplit("-", 1)[0] for run in runs}
    assert names == {
        "read_release", "load", "label_release", "membership", "encode", "encode_release",
        "evaluate", "audit_release", "report",
    }  # fmt: skip
    assert all(run.state is not None and run.state.is_completed() for run in runs)
