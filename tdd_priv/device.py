"""Where a run's tensors live: the `device` setting (`--device auto|cpu|cuda`).

`cpu` (the default) runs everything on the CPU. `cuda` runs the encoder, distillation (the
methods' tensors and generators), DP-SGD (opacus) and the evaluation heads on the current CUDA
device, and refuses to start when CUDA is not available. `auto` is `cuda` when available, else
`cpu`. Data loading, splits, TF-IDF, the DP-SGD fine-tune's training and the audits' statistics
stay on the CPU; the `finetune` text model trains on the device.

Seeds and devices: one seed still fixes a run on a given device. Each named stream's seed
(`tdd_priv.seeding.derive_seed`) is the same on every device, and a generator is made on the
device of the tensors it draws (`torch_generator(..., device=...)`): CPU generators are
Mersenne Twister, CUDA generators Philox, so the same seed draws different numbers on each.
Results on CUDA are therefore not bit-identical to results on the CPU (and may differ between
GPU models or CUDA versions: float reductions are ordered differently); the report records the
device in `environment.device`. The noise of the gateway's own mechanisms is drawn on the CPU
whatever the device; opacus's DP-SGD noise is drawn on the device.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import torch

from tdd_priv.errors import ConfigError

__all__ = ["DEVICES", "DeviceSetting", "describe_device", "resolve_device"]

DeviceSetting = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[DeviceSetting, ...] = ("auto", "cpu", "cuda")


class _HasDevice(Protocol):
    @property
    def device(self) -> str: ...


def resolve_device(setting: str | _HasDevice) -> torch.device:
    """The torch device for a `device` setting (or for a config that has one).

    `auto`: cuda when available, else cpu. `cuda` without CUDA: a ConfigError that says why and
    what to use instead.
    """
    name = setting if isinstance(setting, str) else setting.device
    if name not in DEVICES:
        raise ConfigError(f"device {name!r} is not one of {', '.join(DEVICES)} (--device)")
    available = torch.cuda.is_available()
    if name == "cuda" and not available:
        built = torch.version.cuda
        reason = (
            f"this torch ({torch.__version__}) is built without CUDA"
            if built is None
            else f"torch {torch.__version__} (CUDA {built}) finds no usable GPU"
        )
        raise ConfigError(
            f"--device cuda: CUDA is not available ({reason}); use --device cpu, or --device "
            "auto to use a GPU only where there is one"
        )
    return torch.device("cuda" if name == "cuda" or (name == "auto" and available) else "cpu")


def describe_device(setting: str | _HasDevice) -> dict[str, Any]:
    """report.json's environment.device: what was asked for, what ran, and its name."""
    name = setting if isinstance(setting, str) else setting.device
    device = resolve_device(name)
    described: dict[str, Any] = {"requested": name, "type": device.type}
    if device.type == "cuda":
        index = torch.cuda.current_device()
        described["name"] = torch.cuda.get_device_name(index)
        described["cuda"] = torch.version.cuda
    else:
        described["name"] = "cpu"
    return described
