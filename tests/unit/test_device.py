"""The device setting: resolution, refusal without CUDA, the report's record, and device plumbing.

This machine has no GPU, so the CUDA path cannot run here. What can be checked on the CPU is
that no tensor is made where it would land on the wrong device: every tensor factory called
from the code that runs on the device (the methods, the gateways, the heads, DP-SGD, the
selections) names its device, or derives it from a tensor (`*_like`, `new_*`). On a GPU, a
factory without a device makes a CPU tensor, and the first operation mixing it with CUDA
tensors fails; here it is caught by intercepting the factories.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import tdd_priv
from tdd_priv.cli import main
from tdd_priv.config import RunConfig
from tdd_priv.device import describe_device, resolve_device
from tdd_priv.errors import ConfigError
from tdd_priv.heads import LabeledArrays, predict, train_head
from tdd_priv.methods import DistillInput, distill
from tdd_priv.methods.balance import GroupBalance
from tdd_priv.privacy.dpsgd import train_dpsgd
from tdd_priv.privacy.release import distill_privately
from tdd_priv.realize import RealizationInput, RealizeSettings, realize
from tests.unit.test_learned_methods import QUICK, _blobs


def _no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cpu_is_the_cpu_and_auto_falls_back_to_it_without_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_cuda(monkeypatch)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(RunConfig(device="auto")) == torch.device("cpu")


def test_auto_is_cuda_where_cuda_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_without_cuda_is_refused_with_the_reason_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _no_cuda(monkeypatch)
    with pytest.raises(ConfigError) as caught:
        resolve_device("cuda")
    message = str(caught.value)
    assert "CUDA is not available" in message
    assert "--device cpu" in message and "--device auto" in message


def test_the_cli_refuses_cuda_without_cuda_in_one_line_before_reading_data(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _no_cuda(monkeypatch)
    argv = ["run", "--data", str(tmp_path / "absent.csv"), "--no-dp", "--device", "cuda"]
    code = main([*argv, "--orchestrator", "local", "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1 and "CUDA is not available" in error  # not the missing file
    assert "Traceback" not in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"device": "gpu"}, "device: 'gpu' is not one of"),
        ({"threads": 0}, "threads: 0 is below 1"),
        ({"threads": "2"}, "threads: '2' is quoted text"),
    ],
)
def test_bad_device_and_threads_settings_are_refused(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(settings)


def test_the_report_records_what_was_asked_and_what_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cuda(monkeypatch)
    assert describe_device(RunConfig(device="auto")) == {
        "requested": "auto",
        "type": "cpu",
        "name": "cpu",
    }


# --- every tensor factory on the device path names its device -------------------------------

_FACTORIES = {
    torch.zeros, torch.ones, torch.empty, torch.full, torch.eye, torch.arange, torch.rand,
    torch.randn, torch.randint, torch.randperm, torch.tensor, torch.linspace, torch.normal,
}  # fmt: skip
_LIBRARY = Path(tdd_priv.__file__).resolve().parent
# Runs on the CPU by design: the DP mechanisms draw their noise there (tdd_priv.device).
_CPU_BY_DESIGN = {_LIBRARY / "privacy" / "mechanisms.py"}
_TORCH = Path(torch.__file__).resolve().parent
# torch's DataLoader draws its base seed from the loader's generator, on the CPU by design.
_TORCH_CPU_BY_DESIGN = _TORCH / "utils" / "data"


class _DevicelessFactories(TorchFunctionMode):
    """Records each tensor factory called from tdd_priv code without a device."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _FACTORIES and kwargs.get("device") is None:
            caller = self._caller()
            if caller is not None:
                self.found.append(f"{func.__name__} at {caller}")
        return func(*args, **kwargs)

    @staticmethod
    def _caller() -> str | None:
        """The first frame outside torch, when it is library code on the device path."""
        frame = sys._getframe(2)
        while frame is not None:
            path = Path(frame.f_code.co_filename).resolve()
            if path.is_relative_to(_TORCH_CPU_BY_DESIGN):
                return None
            if not path.is_relative_to(_TORCH):
                if path.is_relative_to(_LIBRARY) and path not in _CPU_BY_DESIGN:
                    return f"{path.relative_to(_LIBRARY.parent)}:{frame.f_lineno}"
                return None
            frame = frame.f_back  # type: ignore[assignment]
        return None


@contextmanager
def _factories_without_device() -> Iterator[list[str]]:
    mode = _DevicelessFactories()
    with mode:
        yield mode.found


def _members(name: str, *, balanced: bool = False, **options: object) -> DistillInput:
    x, y, pool, _ = _blobs()
    balance = None
    if balanced:
        ids = np.arange(len(y), dtype=np.int64) % 2
        balance = GroupBalance(ids, ("a", "b"), ("group",), min_cell_size=1)
    return DistillInput(
        x,
        y,
        num_classes=3,
        per_class=4,
        seed=11,
        options={**QUICK.get(name, {}), **options},
        balance=balance,
        public_embeddings=pool,
        device=torch.device("cpu"),
    )


_RUNS: dict[str, Callable[[], object]] = {
    **{name: (lambda name=name: distill(name, _members(name))) for name in QUICK},
    "dm balanced": lambda: distill("dm", _members("dm", balanced=True)),
    "dc balanced": lambda: distill("dc", _members("dc", balanced=True)),
    "dpsgd-teacher": lambda: distill("dpsgd-teacher", _members("dpsgd-teacher", epochs=2)),
    **{
        f"{name} under DP": (
            lambda name=name: distill_privately(
                name, _members(name), epsilon=4.0, delta=1e-3, noise_seed=3
            )
        )
        for name in (*QUICK, "dpsgd-teacher")
    },
    "dc balanced under DP": lambda: distill_privately(
        "dc", _members("dc", balanced=True), epsilon=4.0, delta=1e-3, noise_seed=3
    ),
}


@pytest.mark.parametrize("run", list(_RUNS))
def test_distillation_names_the_device_of_every_tensor_it_makes(run: str) -> None:
    with _factories_without_device() as found:
        _RUNS[run]()
    assert found == []


def test_heads_dpsgd_and_realization_name_the_device_of_every_tensor_they_make() -> None:
    x, y, test_x, _ = _blobs()
    many = LabeledArrays.from_labels(np.tile(x, (3, 1)), np.tile(y, 3), 3)  # > one minibatch
    synthetic = distill("dm", _members("dm"))
    texts = [f"text {i}" for i in range(len(test_x))]
    pool = RealizationInput(public_texts=texts, public_embeddings=test_x)
    with _factories_without_device() as found:
        predict(train_head("mlp", LabeledArrays.from_labels(x[:20], y[:20], 3), seed=0), test_x)
        predict(train_head("linear", many, seed=0), test_x)
        train_dpsgd("linear", many, epsilon=4.0, delta=1e-3, seed=0)
        for strategy in ("public-match", "public-teacher", "public-nearest"):
            realize(strategy, synthetic, pool, RealizeSettings(device="cpu"))
    assert found == []


def test_the_detector_reports_factories_in_library_code_only() -> None:
    library_code = compile("torch.zeros(3)", str(_LIBRARY / "methods" / "probe.py"), "exec")
    with _factories_without_device() as found:
        torch.zeros(3)  # test code: not reported
        exec(library_code, {"torch": torch})
        torch.zeros(3, device="cpu")
    assert len(found) == 1 and "probe.py" in found[0]
