"""Settings of an audit of a release made elsewhere: what it ignores, what it refuses, and that a
distillation run cannot be mistaken for one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdd_priv.config import EXTERNAL_METHOD, RunConfig
from tdd_priv.errors import ConfigError
from tdd_priv.external import audit_release, external_settings
from tdd_priv.pipeline import check_config


def test_an_audit_drops_the_distillation_and_privacy_settings() -> None:
    reused = RunConfig().with_overrides(
        {"release": "r.csv", "method": "dm", "fairness": "balanced", "realize": "public-nearest"}
    )
    config = external_settings(reused)
    assert config.method == EXTERNAL_METHOD and not config.privacy.enabled
    assert (config.fairness, config.realize, config.method_options) == ("none", None, {})
    assert config.released_dict()["release"] == "r.csv"  # by its name only, like the data


def test_external_names_a_release_and_needs_one() -> None:
    with pytest.raises(ConfigError, match="tdd-priv audit --release FILE"):
        RunConfig().with_overrides({"method": EXTERNAL_METHOD})
    with pytest.raises(ConfigError, match="no release to audit"):
        external_settings(RunConfig())


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"release": "r.csv"}, "audited, not distilled"),
        ({"data.heldout_split": "dev"}, "data.heldout_split"),
    ],
)
def test_a_run_refuses_the_settings_of_an_audit(
    overrides: dict[str, object], expected: str, tmp_path: Path
) -> None:
    config = RunConfig().with_overrides({**overrides, "out": str(tmp_path / "run")})
    with pytest.raises(ConfigError, match=expected):
        check_config(config)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"audit.level": "full"}, "cannot do for a release made elsewhere"),
        ({"audit.canaries": 8}, "drop audit.canaries"),
        ({"detox.mode": "filter"}, "--detox flag"),
        ({"data.public_pool": "internal"}, "--public-pool FILE"),
    ],
)
def test_an_audit_refuses_what_it_cannot_honour_before_reading_anything(
    overrides: dict[str, object], expected: str, tmp_path: Path
) -> None:
    missing = tmp_path / "not-there.csv"  # never read: the settings fail first
    config = RunConfig().with_overrides(
        {**overrides, "release": str(missing), "out": str(tmp_path / "run")}
    )
    with pytest.raises(ConfigError, match=expected):
        audit_release(config)
    assert not (tmp_path / "run").exists()
