"""`tdd-priv verify`: check a run folder without trusting the machine that made it.

Every check runs, even after one fails, so a reviewer sees everything that is wrong at once:
the signature, the signed in-toto Statement, every listed file's SHA-256, that no released file
is missing from the list or missing from disk, that no private material (splits, canary secrets,
row ids) lies in the folder, that report.json follows its schema and agrees with the signed
summary and with its own artifact list, that it names the key that signed it, and that its ε
equals the ε recomputed with opacus from its privacy ledger.

Who signed is known only against a trust anchor, keys the reviewer names (`TrustAnchor`). Without
one the signature is checked with the key shipped in the folder, which proves only that the files
match what that key signed (anyone can make such a folder): the outcome is then UNAUTHENTICATED,
never VERIFIED.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path, PurePosixPath
from typing import Any

from tdd_priv.fingerprint import sha256_file
from tdd_priv.privacy.ledger import compute_epsilon
from tdd_priv.report.attest import (
    ENVELOPE_FILE,
    PREDICATE_TYPES,
    PRIVATE_DIR,
    PUBLIC_KEY_FILE,
    REPORT_FILE,
    released_files,
    report_summary,
)
from tdd_priv.report.schema import schema_errors
from tdd_priv.signing import (
    IN_TOTO_PAYLOAD_TYPE,
    EnvelopeError,
    SignatureError,
    SigningKeyError,
    Statement,
    StatementError,
    TrustAnchor,
    TrustedKey,
    key_id,
    load_public_key,
    open_envelope,
    parse_statement,
    resolve_trust_anchor,
    unverified_payload,
)

__all__ = [
    "EPSILON_RELATIVE_TOLERANCE",
    "EXIT_MEANINGS",
    "PRIVATE_FILE_NAMES",
    "Check",
    "Verification",
    "VerifyExit",
    "verify_run",
]

EPSILON_RELATIVE_TOLERANCE = 1e-6
# Files of the private record (splits, canary secrets, realized row ids): never in a release.
PRIVATE_FILE_NAMES = ("splits.json", "canaries.json", "realized_rows.json")
# Report schema majors written when `private/` lived inside the run folder by design.
_MAJORS_WITH_PRIVATE_INSIDE = (0, 1)


class VerifyExit(IntEnum):
    """The exit status of `tdd-priv verify` (also `Verification.outcome`)."""

    VERIFIED = 0
    NOT_VERIFIED = 1
    ERROR = 2
    UNAUTHENTICATED = 3


EXIT_MEANINGS: dict[VerifyExit, str] = {
    VerifyExit.VERIFIED: "every check passed, and the signature verifies with a key you named "
    "(--key, --keyring, --key-id or $TDD_PRIV_TRUSTED_KEYS)",
    VerifyExit.NOT_VERIFIED: "at least one check failed (each is listed); this wins over 3",
    VerifyExit.ERROR: "nothing was checked: a named key, keyring or key id cannot be used",
    VerifyExit.UNAUTHENTICATED: "every check passed, but you named no trusted key: the files "
    "match what the key shipped in the folder signed, and anyone can make such a folder",
}


@dataclass(frozen=True)
class Check:
    """One check's outcome. `warning`: it passed, but something needs the reader's attention."""

    name: str
    passed: bool
    detail: str
    warning: bool = False

    @property
    def symbol(self) -> str:
        return "✗" if not self.passed else "⚠" if self.warning else "✓"


@dataclass(frozen=True)
class Verification:
    """Every check of one run folder, and the key whose signature verified.

    `passed` says only that every check passed, against whatever key was used; `outcome` (and
    `verified`) also require that key to be one the user named (`anchored`).
    """

    run_dir: Path
    checks: tuple[Check, ...]
    anchored: bool = False  # a trust anchor was named: only its keys could pass the signature
    signer: TrustedKey | None = None  # the key whose signature verified, if any

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)

    @property
    def warnings(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.passed and check.warning)

    @property
    def outcome(self) -> VerifyExit:
        """NOT_VERIFIED if any check failed; else VERIFIED with a trust anchor, UNAUTHENTICATED
        without one."""
        if not self.passed:
            return VerifyExit.NOT_VERIFIED
        return VerifyExit.VERIFIED if self.anchored else VerifyExit.UNAUTHENTICATED

    @property
    def verified(self) -> bool:
        return self.outcome is VerifyExit.VERIFIED


class _Failed(Exception):
    """A check's reason to fail."""


class _Warned(Exception):
    """A check passes, with something the reader must know."""


def _preview(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class _Verifier:
    def __init__(self, run_dir: Path, trust: TrustAnchor) -> None:
        self.run_dir = run_dir
        self.trust = trust
        self.checks: list[Check] = []
        self.envelope: Mapping[str, Any] | None = None
        self.signer: TrustedKey | None = None
        self.statement: Statement | None = None
        self.report: dict[str, Any] | None = None

    def check(self, name: str, run: Callable[[], str]) -> None:
        try:
            detail = run()
        except _Failed as failure:
            self.checks.append(Check(name, False, str(failure)))
        except _Warned as warning:
            self.checks.append(Check(name, True, str(warning), warning=True))
        else:
            self.checks.append(Check(name, True, detail))

    # --- envelope and signature ---------------------------------------------------------------

    def _read_envelope(self) -> Mapping[str, Any]:
        path = self.run_dir / ENVELOPE_FILE
        if not path.is_file():
            raise _Failed(f"{ENVELOPE_FILE} is missing: the folder is not signed")
        try:
            envelope = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _Failed(f"{ENVELOPE_FILE} is not JSON: {error}") from error
        if not isinstance(envelope, dict):
            raise _Failed(f"{ENVELOPE_FILE} is not a JSON object")
        return envelope

    def _shipped_key(self) -> TrustedKey:
        """The public key shipped in the folder; trusted by nothing but its own presence."""
        try:
            public_key = load_public_key(self.run_dir / PUBLIC_KEY_FILE)
        except SigningKeyError as error:
            raise _Failed(str(error)) from error
        source = f"the key shipped in the folder ({PUBLIC_KEY_FILE})"
        return TrustedKey(public_key, key_id(public_key), source)

    def _candidate_keys(self) -> list[TrustedKey]:
        """The keys whose signature this verification accepts: with no anchor, the shipped key;
        else the named keys, plus the shipped key if a pinned key id matches it."""
        if self.trust.empty:
            return [self._shipped_key()]
        candidates = list(self.trust.keys)
        if not self.trust.pinned_ids:
            return candidates
        try:
            shipped = self._shipped_key()
        except _Failed:
            if candidates:  # the named keys may still verify the signature
                return candidates
            raise
        pin = self.trust.pin_for(shipped.key_id)
        if pin is not None:
            source = f"{shipped.source}, pinned by --key-id {pin[:16]}…"
            candidates.append(TrustedKey(shipped.public_key, shipped.key_id, source))
        elif not candidates:
            raise _Failed(
                f"the shipped {PUBLIC_KEY_FILE} has key id {shipped.key_id[:16]}…, not "
                f"{self.trust.describe()}: the folder was not signed by the key you pinned"
            )
        return candidates

    def signature(self) -> str:
        envelope = self.envelope = self._read_envelope()
        candidates = self._candidate_keys()
        signer = next(
            (key for key in candidates if self._signed_by(envelope, key)),
            None,
        )
        if signer is None:
            raise _Failed(self._no_signature_verifies(envelope, candidates))
        if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
            raise _Failed(
                f"payloadType is {envelope.get('payloadType')!r}, expected {IN_TOTO_PAYLOAD_TYPE!r}"
            )
        self.signer = signer
        if self.trust.empty:
            return (
                f"valid Ed25519 signature by key id {signer.key_id[:16]}…, checked with "
                f"{signer.source}, which anyone could have put there: no trusted key named"
            )
        return f"valid Ed25519 signature by trusted key id {signer.key_id[:16]}… ({signer.source})"

    @staticmethod
    def _signed_by(envelope: Mapping[str, Any], key: TrustedKey) -> bool:
        try:
            open_envelope(envelope, public_key=key.public_key)
        except EnvelopeError as error:
            raise _Failed(str(error)) from error
        except SignatureError:
            return False
        return True

    def _no_signature_verifies(
        self, envelope: Mapping[str, Any], candidates: list[TrustedKey]
    ) -> str:
        count = len(envelope.get("signatures") or [])
        if self.trust.empty:
            return (
                f"none of the envelope's {count} signature(s) verifies with {candidates[0].source} "
                f"(key id {candidates[0].key_id[:16]}…)"
            )
        shipped = ""
        if (self.run_dir / PUBLIC_KEY_FILE).is_file():
            try:
                shipped_id = key_id(load_public_key(self.run_dir / PUBLIC_KEY_FILE))
            except SigningKeyError:
                pass
            else:
                shipped = f"; the folder's shipped key has id {shipped_id[:16]}…"
        return (
            f"none of the envelope's {count} signature(s) verifies with {self.trust.describe()}: "
            f"the folder was not signed by a key you trust{shipped}"
        )

    def statement_check(self) -> str:
        envelope = self.envelope if self.envelope is not None else self._read_envelope()
        try:
            statement = parse_statement(unverified_payload(envelope))
        except (EnvelopeError, StatementError) as error:
            raise _Failed(str(error)) from error
        if statement.predicate_type not in PREDICATE_TYPES:
            raise _Failed(
                f"predicateType is {statement.predicate_type!r}, expected one of "
                f"{', '.join(PREDICATE_TYPES)}"
            )
        unsafe = [
            name
            for name in statement.subjects
            if PurePosixPath(name).is_absolute()
            or ".." in PurePosixPath(name).parts
            or "\\" in name
            or name.split("/")[0] == PRIVATE_DIR
            or name in (ENVELOPE_FILE, PUBLIC_KEY_FILE)
        ]
        if unsafe:
            raise _Failed(f"subjects outside the released files: {_preview(unsafe)}")
        self.statement = statement
        return (
            f"in-toto Statement v1 ({statement.predicate_type}) listing "
            f"{len(statement.subjects)} files"
        )

    def _subjects(self) -> dict[str, str]:
        if self.statement is None:
            raise _Failed("no readable signed statement to check against")
        return self.statement.subjects

    # --- files ------------------------------------------------------------------------------------

    def listed_present(self) -> str:
        subjects = self._subjects()
        missing = sorted(name for name in subjects if not (self.run_dir / name).is_file())
        if missing:
            raise _Failed(f"{len(missing)} listed file(s) missing: {_preview(missing)}")
        return f"all {len(subjects)} listed files are present"

    def digests(self) -> str:
        subjects = self._subjects()
        changed = sorted(
            name
            for name, digest in subjects.items()
            if (self.run_dir / name).is_file() and sha256_file(self.run_dir / name) != digest
        )
        if changed:
            raise _Failed(
                f"{len(changed)} file(s) differ from their signed SHA-256: {_preview(changed)}"
            )
        return "every present listed file matches its signed SHA-256"

    def nothing_unlisted(self) -> str:
        subjects = self._subjects()
        extra = [name for name in released_files(self.run_dir) if name not in subjects]
        if extra:
            raise _Failed(
                f"{len(extra)} released file(s) not in the signed list: {_preview(extra)}"
            )
        return f"no file outside {PRIVATE_DIR}/ is missing from the signed list"

    def no_private_material(self) -> str:
        found = _private_material(self.run_dir)
        if not found:
            return f"no {PRIVATE_DIR}/ folder and no {', '.join(PRIVATE_FILE_NAMES)} in the folder"
        listed = _preview(found)
        move = ", ".join(f"`{name}`" for name in found[:5]) + (" …" if len(found) > 5 else "")
        if _declared_schema_major(self.run_dir) in _MAJORS_WITH_PRIVATE_INSIDE:
            raise _Warned(
                f"private material is inside this folder; do not share it as is — move {move} "
                f"out (found: {listed}; reports of schema 0.x/1.x kept it there by design)"
            )
        raise _Failed(
            f"private material is inside this folder ({listed}): a release must not hold the "
            f"splits, canary secrets or row ids; move {move} out (since schema 2.0.0 a run "
            "writes them to DIR.private, beside the folder)"
        )

    # --- report.json ------------------------------------------------------------------------------

    def _report(self) -> dict[str, Any]:
        if self.report is None:
            raise _Failed(f"{REPORT_FILE} could not be read")
        return self.report

    def schema(self) -> str:
        path = self.run_dir / REPORT_FILE
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _Failed(f"{REPORT_FILE} cannot be read as JSON: {error}") from error
        if not isinstance(report, dict):
            raise _Failed(f"{REPORT_FILE} is not a JSON object")
        self.report = report
        problems = schema_errors(report)
        if problems:
            raise _Failed(f"{len(problems)} problem(s): " + "; ".join(problems[:5]))
        return f"follows report schema {report['schema_version']}"

    def predicate(self) -> str:
        report = self._report()
        if self.statement is None:
            raise _Failed("no readable signed statement to compare with")
        try:
            summary = report_summary(report)
        except (KeyError, TypeError, AttributeError) as error:
            raise _Failed(f"{REPORT_FILE} lacks a field of the summary: {error}") from error
        if summary != self.statement.predicate:
            differing = sorted(
                key
                for key in set(summary) | set(self.statement.predicate)
                if summary.get(key) != self.statement.predicate.get(key)
            )
            raise _Failed(
                f"the signed summary differs from {REPORT_FILE} in: {', '.join(differing)}"
            )
        return f"the signed summary equals {REPORT_FILE}'s"

    def artifacts(self) -> str:
        report = self._report()
        subjects = {k: v for k, v in self._subjects().items() if k != REPORT_FILE}
        try:
            listed = {item["path"]: item["sha256"] for item in report["artifacts"]}
        except (KeyError, TypeError) as error:
            raise _Failed(f"{REPORT_FILE} artifacts are malformed: {error}") from error
        if listed != subjects:
            differing = sorted(set(listed.items()) ^ set(subjects.items()))
            names = sorted({name for name, _ in differing})
            raise _Failed(
                f"{REPORT_FILE} artifacts disagree with the signed list on: {_preview(names)}"
            )
        return f"{REPORT_FILE} lists the same {len(listed)} files and digests"

    def key_named(self) -> str:
        report = self._report()
        stated = (report.get("signing") or {}).get("key_id")
        if self.signer is None:
            raise _Failed("no verified signature to compare the key with")
        if stated != self.signer.key_id:
            raise _Failed(
                f"{REPORT_FILE} names key id {str(stated)[:16]}…, but the signature "
                f"was checked with {self.signer.key_id[:16]}…"
            )
        return f"{REPORT_FILE} names the key that signed it"

    def epsilon(self) -> str:
        report = self._report()
        privacy = report.get("privacy")
        if not isinstance(privacy, Mapping):
            raise _Failed(f"{REPORT_FILE} has no privacy section")
        mechanisms = privacy.get("mechanisms") or []
        stated = privacy.get("epsilon")
        if privacy.get("mode") == "none":
            if stated is not None or mechanisms:
                raise _Failed("mode 'none' but the report states an ε or mechanisms")
            return "not private (mode none): no ε is claimed, nothing to recompute"
        delta, accountant = privacy.get("delta"), privacy.get("accountant")
        if not isinstance(stated, int | float) or not mechanisms:
            raise _Failed("a private run must state ε and list its mechanisms")
        if not isinstance(delta, int | float) or not 0 < delta < 1:
            raise _Failed(f"a private run must state δ in (0, 1), not {delta!r}")
        if accountant not in ("rdp", "prv"):
            raise _Failed(f"accountant must be 'rdp' or 'prv', not {accountant!r}")
        try:
            recomputed = compute_epsilon(mechanisms, delta=delta, accountant=accountant)
        except Exception as error:  # a malformed ledger must fail the check, not crash verify
            raise _Failed(f"opacus could not recompute ε from the ledger: {error}") from error
        if not math.isclose(stated, recomputed, rel_tol=EPSILON_RELATIVE_TOLERANCE):
            raise _Failed(
                f"stated ε = {stated:.6g} but the ledger gives ε = {recomputed:.6g} "
                f"({accountant}, δ = {delta:.1e}, {len(mechanisms)} mechanisms)"
            )
        return (
            f"ε = {stated:.6g} recomputed with opacus ({accountant}, δ = {delta:.1e}, "
            f"{len(mechanisms)} mechanism(s))"
        )


def _private_material(run_dir: Path) -> list[str]:
    """`private/` and every file named like a part of the private record, anywhere in
    `run_dir` (POSIX paths relative to it, sorted; files under `private/` not repeated)."""
    found = [f"{PRIVATE_DIR}/"] if (run_dir / PRIVATE_DIR).exists() else []
    found += sorted(
        path.relative_to(run_dir).as_posix()
        for path in run_dir.rglob("*")
        if path.name in PRIVATE_FILE_NAMES
        and path.relative_to(run_dir).parts[0] != PRIVATE_DIR
        and path.is_file()
    )
    return found


def _declared_schema_major(run_dir: Path) -> int | None:
    """The major schema version report.json declares, or None when it cannot be read."""
    try:
        version = json.loads((run_dir / REPORT_FILE).read_text(encoding="utf-8"))["schema_version"]
        return int(str(version).split(".")[0])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None


def verify_run(
    run_dir: Path, *, trust: TrustAnchor | None = None, public_key: Path | None = None
) -> Verification:
    """Run every check on `run_dir`.

    `trust` is the set of keys the user named (see `tdd_priv.signing.resolve_trust_anchor`);
    `public_key` (a PEM file) is shorthand for one more named key. With neither, the signature
    is checked with the key shipped in the folder, and the outcome is at best UNAUTHENTICATED.
    Raises SigningKeyError when `public_key` cannot be read.
    """
    trust = trust or TrustAnchor()
    if public_key is not None:
        named = resolve_trust_anchor(keys=[public_key])
        trust = TrustAnchor(trust.keys + named.keys, trust.pinned_ids)
    anchored = not trust.empty
    if not run_dir.is_dir():
        failed = Check("run folder", False, f"{run_dir} is not a folder")
        return Verification(run_dir, (failed,), anchored=anchored)
    verifier = _Verifier(run_dir, trust)
    steps: tuple[tuple[str, Callable[[], str]], ...] = (
        ("signature", verifier.signature),
        ("signed statement", verifier.statement_check),
        ("listed files present", verifier.listed_present),
        ("file digests", verifier.digests),
        ("no unlisted files", verifier.nothing_unlisted),
        ("no private material", verifier.no_private_material),
        ("report schema", verifier.schema),
        ("summary matches report", verifier.predicate),
        ("artifacts match", verifier.artifacts),
        ("signing key named", verifier.key_named),
        ("privacy ledger ε", verifier.epsilon),
    )
    for name, step in steps:
        verifier.check(name, step)
    return Verification(run_dir, tuple(verifier.checks), anchored=anchored, signer=verifier.signer)
