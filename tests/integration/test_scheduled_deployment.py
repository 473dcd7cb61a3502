"""A scheduled deployment on a real Prefect server: `prefect server start` on a loopback port,
`tdd-priv deploy` registers and serves the distill flow with a cron schedule, a run triggered
through the API completes and writes a signed run folder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from tdd_priv.cli import main
from tests.helpers import own_key, tiny_run_overrides

T = TypeVar("T")
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(what: str, probe: Callable[[], T | None], *, timeout: float, log: Path) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}; log:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    """A `prefect server start` on a free loopback port with its own PREFECT_HOME."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_UI_ENABLED": "false",
    }
    log = tmp_path / "server.log"
    with log.open("wb") as handle:
        server = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )

    def healthy() -> bool | None:
        try:
            return httpx.get(f"{api}/health", timeout=2).status_code == 200 or None
        except httpx.HTTPError:
            return None

    try:
        _wait_for("the Prefect server", healthy, timeout=120, log=log)
        yield api, env, tmp_path
    finally:
        _stop(server)


def _deployment(api: str, name: str) -> dict[str, Any] | None:
    response = httpx.get(f"{api}/deployments/name/tdd-priv-distill/{name}", timeout=5)
    return response.json() if response.status_code == 200 else None


def test_scheduled_deployment_runs_on_a_real_server(
    prefect_server: tuple[str, dict[str, str], Path], tiny_ag_news: Path
) -> None:
    api, env, tmp = prefect_server
    overrides = tiny_run_overrides(tiny_ag_news, tmp / "unused")
    overrides.update({"evaluation.seeds": 1, "audit.level": "none"})
    config = tmp / "nightly.yaml"
    config.write_text(yaml.safe_dump(_nested(overrides)))
    runs = tmp / "runs"
    log = tmp / "serve.log"
    with log.open("wb") as handle:
        serve = subprocess.Popen(
            [
                str(BIN / "tdd-priv"),
                "deploy",
                "--config",
                str(config),
                "--cron",
                "0 2 * * *",
                "--name",
                "ci-nightly",
                "--runs-dir",
                str(runs),
            ],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        deployment = _wait_for(
            "the deployment", lambda: _deployment(api, "ci-nightly"), timeout=120, log=log
        )
        assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 2 * * *"]
        assert deployment["parameters"]["runs_dir"] == str(runs.resolve())

        created = httpx.post(
            f"{api}/deployments/{deployment['id']}/create_flow_run", json={}, timeout=10
        )
        created.raise_for_status()
        run_id = created.json()["id"]

        def finished() -> dict[str, Any] | None:
            state = httpx.get(f"{api}/flow_runs/{run_id}", timeout=5).json()["state"]
            return state if state and state["type"] in {"COMPLETED", "FAILED", "CRASHED"} else None

        state = _wait_for("the triggered run", finished, timeout=420, log=log)
        assert state["type"] == "COMPLETED", log.read_text()[-4000:]
    finally:
        _stop(serve)

    folder, private = sorted(runs.iterdir())  # the release and, beside it, its private record
    assert private.name == f"{folder.name}.private" and (private / "splits.json").is_file()
    report = json.loads((folder / "report.json").read_text())
    assert report["method"]["name"] == "herding"
    assert main(["verify", str(folder), *own_key()]) == 0


def _nested(overrides: dict[str, object]) -> dict[str, Any]:
    """Dotted settings → the nested mapping a YAML config file holds."""
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def test_deploy_refuses_bad_schedules_and_a_missing_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("data: {spec: demo}\n")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert main(["deploy", "--config", str(config), "--cron", "0 2 * * *"]) == 2
    assert "PREFECT_API_URL" in capsys.readouterr().err

    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert main(["deploy", "--config", str(config), "--cron", "every night"]) == 2
    assert "--cron 'every night'" in capsys.readouterr().err
    assert (
        main(["deploy", "--config", str(config), "--cron", "0 2 * * *", "--timezone", "Mars/Base"])
        == 2
    )
    assert "--timezone 'Mars/Base'" in capsys.readouterr().err
    assert not (Path("runs") / "scheduled" / "preflight-check").exists()
