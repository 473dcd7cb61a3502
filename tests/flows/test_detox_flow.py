"""The Prefect flow builds the toxicity scorers from audits/ and runs the detox step as a task."""

import json
from pathlib import Path

import pandas as pd

from tdd_priv.config import RunConfig
from tests.helpers import tiny_run_overrides


def test_flow_screens_the_released_texts(
    tiny_ag_news: Path, shared_datasets: Path, run_out: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.distill import distill_flow

    davidson = pd.read_csv(shared_datasets / "davidson_hate_offensive" / "davidson.csv")
    pool = tmp_path / "pool.csv"
    davidson.sample(200, random_state=1)[["text"]].to_csv(pool, index=False)
    config = RunConfig().with_overrides(
        {
            **tiny_run_overrides(tiny_ag_news, run_out),
            "data.public_pool": str(pool),
            "realize": "public-nearest",
            "evaluation.seeds": 1,
            "evaluation.heads": ["linear"],
            "evaluation.baselines": ["random"],
            "evaluation.text_models": [],
            "detox.mode": "filter",
            "detox.scorer": "profanity",
        }
    )
    state = distill_flow(config.to_dict(), return_state=True)
    assert state.is_completed()
    toxicity = json.loads((run_out / "report.json").read_text())["audits"]["toxicity"]
    assert toxicity["counts"]["released"] == 20
    assert toxicity["counts"]["released_over_threshold"] == 0

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
            )
        )
    assert "detox" in {run.name.rsplit("-", 1)[0] for run in runs}
