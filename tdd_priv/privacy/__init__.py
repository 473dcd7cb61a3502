"""Differential privacy: the mechanisms private data goes through, the ledger, calibration.

Every access to the private training set goes through `tdd_priv.privacy.mechanisms`
(per-example clipping, Gaussian noise σ·C on sums, Poisson sampling, noisy counts); every
mechanism applied is recorded in a `PrivacyLedger`; ε is composed by opacus accountants.
"""

from __future__ import annotations

from tdd_priv.privacy.calibration import (
    PlannedMechanism,
    calibrate_noise,
    check_delta,
    default_delta,
)
from tdd_priv.privacy.ledger import (
    MechanismRecord,
    PrivacyLedger,
    PrivacyReport,
    compute_epsilon,
    epsilon_summary,
)

__all__ = [
    "MechanismRecord",
    "PlannedMechanism",
    "PrivacyLedger",
    "PrivacyReport",
    "calibrate_noise",
    "check_delta",
    "compute_epsilon",
    "default_delta",
    "epsilon_summary",
]
