"""The run's privacy claim, built once and rendered everywhere.

Whatever says how private a release is — report.json's `privacy.claim` and `privacy.statement`,
the badge and sentences of report.md and report.html, the CLI summary and the Prefect artifacts
— comes from one `PrivacyClaim`, built from what the run actually did: whether it was private,
(ε, δ) and the accountant, where the released texts came from (an external public pool, a pool
cut from the user's own data, or the private records themselves), how many released texts are
unprotected rows of the user's data, what the pool's hygiene check removed, and the budget the
dataset's ledger has spent across runs.

Four outcomes:
- `covered`: a DP run whose texts come from an external public pool. The released texts, labels
  and embeddings are (ε, δ)-DP.
- `not-covered`: a DP run whose texts come from a pool cut from the user's own train split (the
  explicit opt-in `--public-pool internal`). The synthetic vectors are DP, but the released texts
  are rows of the input, so the release is not covered.
- `not-private`: a run without DP (or a report that states no finite ε).
- `no-claim`: a release made outside tdd-priv and audited by `tdd-priv audit`. tdd-priv cannot say
  how it was made (which records its maker read, with what noise if any), so it claims nothing:
  the release is to be treated as private data unless its maker's own guarantee says otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tdd_priv.data import PoolCheck

__all__ = ["ClaimStatus", "PrivacyClaim", "TextOrigin", "build_claim"]

ClaimStatus = Literal["covered", "not-covered", "not-private", "no-claim"]
# where the released texts come from: an external public pool, a pool cut from the labeled
# data, (coresets) the private records themselves, or unknown (a release made outside tdd-priv)
TextOrigin = Literal["external", "internal", "none", "unknown"]

_BADGES: dict[ClaimStatus, str] = {
    "covered": "DIFFERENTIALLY PRIVATE",
    "not-covered": "NOT COVERED",
    "not-private": "NOT PRIVATE",
    "no-claim": "NO PRIVACY CLAIM",
}
_OUTSIDE = (
    "utility numbers, audit results and fairness figures (computed on private data without "
    "noise), and this report itself"
)
_PER_RECORD = "people with several records: protection is per record, not per person"
_MADE_ELSEWHERE = (
    "No privacy claim: this release was made outside tdd-priv. tdd-priv audited it but cannot "
    "say how it was made (which records its maker read, with what noise if any), so it makes no "
    "privacy claim for it: treat it as private data unless its maker's own guarantee says "
    "otherwise. The audits measure what can be observed (copies of labeled rows, membership "
    "signal); passing them is evidence, not a guarantee."
)


@dataclass(frozen=True)
class PrivacyClaim:
    """What a release's privacy amounts to (see the module docstring). `cumulative`: the
    dataset's budget ledger after this run ({ledger, runs, epsilon, delta, accountant, limit}),
    None when the run kept none (not private)."""

    status: ClaimStatus
    epsilon: float | None
    delta: float | None
    accountant: str | None
    mechanisms: int
    members: int | None
    pool_origin: TextOrigin
    released_texts: int
    # released texts that are unprotected rows of the user's data; None when nobody can know
    # (a release made outside tdd-priv: the leakage audit measures the copies it can see)
    unprotected_texts: int | None
    pool_checked: int | None = None
    pool_removed_exact: int = 0
    pool_removed_near: int = 0
    cumulative: Mapping[str, Any] | None = None
    groups: bool = False

    @property
    def badge(self) -> str:
        return _BADGES[self.status]

    @property
    def private(self) -> bool:
        """Whether (ε, δ) covers the release (the badge may be green)."""
        return self.status == "covered"

    def _guarantee(self) -> str:
        members = f"{self.members:,} " if self.members is not None else ""
        return (
            f"(ε = {self.epsilon:.3g}, δ = {self.delta:.1e})-differential privacy for each of "
            f"the {members}records of the private training split, accounted by opacus's "
            f"{str(self.accountant).upper()} accountant over {self.mechanisms} mechanism(s)"
        )

    @property
    def headline(self) -> str:
        """One line: the badge's meaning, for summaries."""
        if self.status == "covered":
            return f"(ε = {self.epsilon:.3g}, δ = {self.delta:.1e})-DP release"
        if self.status == "no-claim":
            return (
                "no privacy claim: made outside tdd-priv and audited here; treat it as private "
                "data unless its maker's guarantee says otherwise"
            )
        if self.status == "not-covered":
            return (
                f"not covered: the {self.unprotected_texts} released texts are unprotected rows "
                "of your data (--public-pool internal); only the synthetic vectors are "
                f"(ε = {self.epsilon:.3g}, δ = {self.delta:.1e})-DP"
            )
        if self.unprotected_texts:
            return f"no privacy: {self.unprotected_texts} released texts are rows of your data"
        return "no privacy: which public texts were released depends on the private data"

    @property
    def pool_sentence(self) -> str:
        """What the pool's hygiene check removed ("" when no pool was checked)."""
        if self.pool_checked is None:
            return ""
        removed = self.pool_removed_exact + self.pool_removed_near
        if self.pool_origin == "unknown":  # an audited release is matched against the pool
            return (
                f" {removed} of the public pool's {self.pool_checked:,} texts were set aside "
                "before the release was matched against it, because they equal or nearly equal "
                "a labeled row."
            )
        where = "external public pool" if self.pool_origin == "external" else "pool"
        return (
            f" {removed} of the {where}'s {self.pool_checked:,} texts were removed before "
            "realization because they equal or nearly equal a labeled row."
        )

    def _budget_sentence(self) -> str:
        if not self.cumulative:
            return ""
        budget = self.cumulative
        limit = budget.get("limit")
        within = f", within its limit of {limit:g}" if limit is not None else ""
        return (
            f" Across runs: this dataset's budget ledger holds {budget['runs']} run(s), "
            f"ε = {budget['epsilon']:.3g} composed at δ = {budget['delta']:.1e} (opacus RDP)"
            f"{within}."
        )

    @property
    def statement(self) -> str:
        """The claim in full, in plain words."""
        if self.status == "no-claim":
            return _MADE_ELSEWHERE
        if self.status == "covered":
            return (
                f"{self._guarantee()}. Covered: the released texts, their labels and the "
                "synthetic embeddings; the texts come from an external public pool."
                + self.pool_sentence
                + self._budget_sentence()
            )
        if self.status == "not-covered":
            return (
                f"The release is NOT covered by the differential-privacy guarantee: its "
                f"{self.unprotected_texts} texts are unprotected rows of the input data, taken "
                "verbatim from a public pool cut from the train split (--public-pool internal). "
                f"Only the synthetic vectors and their labels have {self._guarantee()}."
                + self.pool_sentence
                + self._budget_sentence()
            )
        if self.pool_origin == "none":
            return (
                f"No differential privacy: the released texts are {self.released_texts} records "
                "of the private training set, copied verbatim."
            )
        origin = (
            "an external public pool"
            if self.pool_origin == "external"
            else f"rows of your data (a pool cut from the train split: {self.unprotected_texts} "
            "unprotected rows)"
        )
        return (
            f"No differential privacy: the released texts come from {origin}, and which ones "
            "were chosen depends on the private data without any noise." + self.pool_sentence
        )

    @property
    def covered(self) -> tuple[str, ...]:
        """What (ε, δ) covers."""
        if self.status == "covered":
            return ("the released texts", "their labels (and soft labels)", "synthetic embeddings")
        if self.status == "not-covered":
            return ("synthetic embeddings and their labels",)
        return ()

    @property
    def not_covered(self) -> tuple[str, ...]:
        """What is released but outside the guarantee."""
        if self.status == "no-claim":
            return (
                "everything released: treat every released file as private data unless the "
                "release's maker gives a guarantee for it",
                _OUTSIDE,
            )
        if self.status == "not-private":
            return ("everything released: treat every released file as private data", _OUTSIDE)
        items = [_OUTSIDE, _PER_RECORD]
        if self.status == "not-covered":
            items.insert(0, f"the {self.unprotected_texts} released texts: rows of your data")
        return tuple(items)

    @property
    def declared_public(self) -> tuple[str, ...]:
        """Facts the release states that are assumed public rather than protected (none for a
        release made elsewhere: without a guarantee nothing is assumed public to make one)."""
        if self.status == "no-claim":
            return ()
        items = [
            "the encoder's weights",
            "the public pool's texts" if self.pool_origin != "none" else "",
            "label names",
            "group names" if self.groups else "",
            "hyperparameters, the method and the policy",
            "split sizes (dataset.sizes): δ and the sampling rates are derived from them",
            "how many pool texts the hygiene check removed" if self.pool_checked else "",
        ]
        return tuple(item for item in items if item)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "badge": self.badge,
            "headline": self.headline,
            "statement": self.statement,
            "epsilon": self.epsilon,
            "delta": self.delta,
            "accountant": self.accountant,
            "mechanisms": self.mechanisms,
            "members": self.members,
            "pool": {
                "origin": self.pool_origin,
                "checked": self.pool_checked,
                "removed_exact": self.pool_removed_exact,
                "removed_near": self.pool_removed_near,
            },
            "released_texts": self.released_texts,
            "unprotected_texts": self.unprotected_texts,
            "covered": list(self.covered),
            "not_covered": list(self.not_covered),
            "declared_public": list(self.declared_public),
            "cumulative": dict(self.cumulative) if self.cumulative else None,
            "groups": self.groups,
        }

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> PrivacyClaim:
        """The claim of a report: its `privacy.claim` (schema 2.x), else one derived from the
        mode and ε of an older report (no pool origin is known there: `none` if the texts were
        private records, else `external`)."""
        privacy = report["privacy"]
        stated = privacy.get("claim")
        if stated:
            pool = stated.get("pool", {})
            return cls(
                status=stated["status"],
                epsilon=stated.get("epsilon"),
                delta=stated.get("delta"),
                accountant=stated.get("accountant"),
                mechanisms=stated.get("mechanisms", 0),
                members=stated.get("members"),
                pool_origin=pool.get("origin", "none"),
                released_texts=stated.get("released_texts", 0),
                unprotected_texts=stated.get("unprotected_texts", 0),  # null: unknown
                pool_checked=pool.get("checked"),
                pool_removed_exact=pool.get("removed_exact", 0),
                pool_removed_near=pool.get("removed_near", 0),
                cumulative=stated.get("cumulative"),
                groups=bool(stated.get("groups", False)),
            )
        synthetic = report.get("synthetic", {})
        released = int(synthetic.get("size", 0))
        copied = bool(synthetic.get("releases_private_records"))
        return build_claim(
            summary=privacy if privacy.get("mode") != "none" else None,
            members=report.get("dataset", {}).get("sizes", {}).get("members"),
            pool_origin="none" if copied else "external",
            released_texts=released,
        )


def build_claim(
    *,
    summary: Mapping[str, Any] | None,
    members: int | None,
    pool_origin: TextOrigin,
    released_texts: int,
    pool_check: PoolCheck | None = None,
    cumulative: Mapping[str, Any] | None = None,
    groups: bool = False,
) -> PrivacyClaim:
    """The claim of a run. `summary`: the privacy ledger's summary (mode, epsilon, delta,
    accountant, mechanisms), None when the run was not private; a summary without a finite ε
    claims nothing. `pool_check`: what the pool's hygiene check removed, when it ran.
    `pool_origin` "unknown" (a release made outside tdd-priv) claims nothing whatever the
    summary says: only the release's maker knows how it was made."""
    made_elsewhere = pool_origin == "unknown"
    epsilon = summary.get("epsilon") if summary and not made_elsewhere else None
    private = isinstance(epsilon, int | float) and math.isfinite(epsilon)
    unprotected: int | None = released_texts if pool_origin in ("internal", "none") else 0
    if made_elsewhere:
        status: ClaimStatus = "no-claim"
        unprotected = None
    elif not private:
        status = "not-private"
    elif pool_origin == "external":
        status = "covered"
    else:
        status = "not-covered"
    return PrivacyClaim(
        status=status,
        epsilon=float(epsilon) if private and epsilon is not None else None,
        delta=summary.get("delta") if private and summary else None,
        accountant=summary.get("accountant") if private and summary else None,
        mechanisms=len(summary.get("mechanisms", [])) if private and summary else 0,
        members=members,
        pool_origin=pool_origin,
        released_texts=released_texts,
        unprotected_texts=unprotected,
        pool_checked=pool_check.checked if pool_check is not None else None,
        pool_removed_exact=pool_check.removed_exact if pool_check is not None else 0,
        pool_removed_near=pool_check.removed_near if pool_check is not None else 0,
        cumulative=cumulative if private else None,
        groups=groups,
    )
