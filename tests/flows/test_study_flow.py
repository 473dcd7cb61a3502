"""Studies: cells as mapped Prefect tasks (on Dask or locally), each a distill subflow; resume."""

import csv
import json
import os
from pathlib import Path

import pytest

from tdd_priv.config import RunConfig
from tdd_priv.study import Sweep
from tdd_priv.verify import verify_run
from tests.helpers import AG_NEWS_LABELS, QUICK_DP_OPTIONS


def _sweep(data: Path) -> Sweep:
    return Sweep.from_dict(
        {
            "name": "tiny",
            "base": {
                "data": {
                    "spec": str(data),
                    "split_column": "split",
                    "label_names": list(AG_NEWS_LABELS),
                    "public_pool": "internal",
                },
                "per_class": 2,
                "evaluation": {
                    "heads": ["linear"],
                    "seeds": 1,
                    "steps": 30,
                    "baselines": [],
                    "text_models": [],
                },
                "method_options": QUICK_DP_OPTIONS["dm"],  # coresets ignore it
                # LiRA with two shadow re-runs of each cell, spread over the cluster
                "audit": {"level": "full", "shadows": 2, "canaries": 0, "bootstrap": 10},
            },
            "grid": [
                {"method": ["herding"], "epsilon": ["none"]},
                {"method": ["dm"], "epsilon": [4]},
            ],
        }
    )


def _flow_run_names(names: list[str]) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=names))
        )
    return {run.name for run in runs if run.state is not None and run.state.is_completed()}


# First in this file: the flow test below then shows that the harness's server survived it.
def test_without_an_api_url_one_temporary_server_serves_the_whole_study() -> None:
    import httpx
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.runners import RunnerOptions, shared_prefect_api
    from tdd_priv.errors import ConfigError

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert not PREFECT_API_URL.value()
        # workers on another machine could not reach a loopback server: refused up front
        with (
            pytest.raises(ConfigError, match="PREFECT_API_URL"),
            shared_prefect_api(RunnerOptions("dask", address="tcp://10.1.2.3:8786")),
        ):
            pass
        with shared_prefect_api(RunnerOptions("dask", workers=2)) as url:
            # the setting Dask workers inherit with each task (prefect-dask serializes it)
            assert PREFECT_API_URL.value() == url
            assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        assert not PREFECT_API_URL.value()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)  # stopped with the study
    loopback = {PREFECT_API_URL: "http://127.0.0.1:4200/api"}
    with (
        temporary_settings(updates=loopback),
        pytest.raises(ConfigError, match="loopback"),
        shared_prefect_api(RunnerOptions("dask", address="tcp://10.1.2.3:8786")),
    ):
        pass


def test_a_study_runs_on_a_local_dask_cluster_and_resumes(
    tiny_ag_news: Path, tmp_path: Path
) -> None:
    from flows.runners import RunnerOptions
    from flows.study import run_study

    out = tmp_path / "study"
    sweep = _sweep(tiny_ag_news)
    first = run_study(sweep, out, RunnerOptions("dask", workers=2))
    ids = ["method-herding_eps-none", "method-dm_eps-4"]
    assert [(o.id, o.status) for o in first.outcomes] == [(cell, "ran") for cell in ids]
    # every cell is an ordinary signed run folder, and a subflow run named after it
    assert all(verify_run(out / "cells" / cell).passed for cell in ids)
    assert _flow_run_names(ids) == set(ids)
    # ... computed in the worker processes, which reported to this test's Prefect API
    workers = {json.loads((out / "timings" / f"{c}.json").read_text())["worker"] for c in ids}
    assert all(not w.endswith(f":{os.getpid()}") for w in workers)
    for cell in ids:
        report = json.loads((out / "cells" / cell / "report.json").read_text())
        membership = report["audits"]["membership"]
        assert membership["shadows"] == 2 and "lira_online" in membership["attacks"]
    with (out / "study.csv").open(encoding="utf-8") as handle:
        rows = {row["cell"]: row for row in csv.DictReader(handle)}
    assert set(rows) == set(ids)
    assert rows["method-dm_eps-4"]["dp_sgd_accuracy"] and rows["method-dm_eps-4"]["epsilon"] == "4"
    herding = rows["method-herding_eps-none"]
    assert herding["dp_sgd_accuracy"] == "" and herding["canary_epsilon_lower_bound"] == ""
    assert float(herding["realized_accuracy"]) > 0.25  # 4 classes: better than chance
    assert (out / "figures" / "accuracy_vs_epsilon.png").is_file()

    # interrupted: one cell's folder is gone (and a killed run left a staging folder)
    victim, kept = ids
    report_before = (out / "cells" / kept / "report.json").read_bytes()
    (out / "cells" / victim / "report.json").unlink()
    (out / "cells" / f".{victim}.partial-x").mkdir()
    second = run_study(sweep, out, RunnerOptions("local"))
    assert {o.id: o.status for o in second.outcomes} == {victim: "ran", kept: "reused"}
    assert (out / "cells" / kept / "report.json").read_bytes() == report_before
    assert verify_run(out / "cells" / victim).passed
    assert not (out / "cells" / f".{victim}.partial-x").exists()


def test_map_on_dask_runs_each_call_as_a_task_of_the_cluster() -> None:
    from distributed import Client, LocalCluster, get_worker

    from flows.scatter import map_on_dask

    def task_key(item: int) -> tuple[int, str]:
        return item, str(get_worker().get_current_task())

    def outer(items: list[int]) -> list[tuple[int, str]]:
        return map_on_dask(task_key, items)

    # outside a worker: the builtin map
    assert [item for item, _ in map_on_dask(lambda i: (i, ""), [3, 1])] == [3, 1]
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        # one worker thread: the outer task must secede for its calls to run at all
        results = client.submit(outer, [2, 0, 1]).result(timeout=60)
    assert [item for item, _ in results] == [2, 0, 1]
    assert all(key.startswith("_apply-") for _, key in results)


def test_the_cli_offers_exactly_the_registered_runners() -> None:
    from flows.runners import RUNNERS
    from tdd_priv.cli import STUDY_RUNNERS

    assert tuple(RUNNERS) == STUDY_RUNNERS


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_signal_that_would_end_the_process_stops_the_temporary_server_first(
    monkeypatch: pytest.MonkeyPatch, signame: str
) -> None:
    import signal

    import flows.runners as runners

    class Server:
        stopped = False

        def stop(self) -> None:
            self.stopped = True

    signum = signal.Signals[signame]
    sent: list[int] = []
    monkeypatch.setattr(runners.os, "kill", lambda pid, signum: sent.append(signum))
    before = signal.getsignal(signum)
    assert before is signal.SIG_DFL  # the signal would end the process on the spot
    server = Server()
    with runners._stopped_on_signals(server):
        handler = signal.getsignal(signum)
        assert callable(handler) and handler is not before
        handler(signum, None)  # what Prefect's engine re-sends after its crash report
        assert server.stopped and sent == [signum]
    assert signal.getsignal(signum) is before


def test_a_handler_that_raises_is_left_to_end_the_block() -> None:
    import signal

    import flows.runners as runners

    def raising(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raising)  # the CLI's: the block's exit stops it
    try:
        with runners._stopped_on_signals(object()):
            assert signal.getsignal(signal.SIGTERM) is raising
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("runner_name", ["local", "dask"])
def test_a_cell_on_dask_is_capped_at_one_torch_thread(
    runner_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.study as study
    from tdd_priv import threads

    monkeypatch.setattr(threads, "_usable_cpus", lambda: 4)
    monkeypatch.setattr(threads, "idle_cpus", lambda **_: 4.0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    seen: list[int] = []

    class Flow:
        def with_options(self, **_: object) -> "Flow":
            return self

        def __call__(self, **_: object) -> None:
            with threads.workload_threads("matrix") as count:
                seen.append(count)

    class Spec:
        id = "cell"
        config = RunConfig()

    monkeypatch.setattr(study, "distill_flow", Flow())
    monkeypatch.setattr(study.Cell, "from_dict", staticmethod(lambda _: Spec()))
    monkeypatch.setattr(study, "cell_is_complete", lambda _: False)
    monkeypatch.setattr(study, "remove_partial_folders", lambda _: None)
    monkeypatch.setattr(study, "write_timing", lambda *_, **__: None)
    before = threads.torch.get_num_threads()
    threads.torch.set_num_threads(4)
    try:
        study.run_cell.fn({}, runner_name, "sweep")
    finally:
        threads.torch.set_num_threads(before)
    assert seen == [1 if runner_name == "dask" else 4]
