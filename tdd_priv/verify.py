"""`tdd-priv verify`: check a run folder without trusting the machine that made it.

Every check runs, even after one fails, so a reviewer sees everything that is wrong at once:
the signature (with the public key given, else the one shipped in the folder), the signed
in-toto Statement, every listed file's SHA-256, that no released file is missing from the list
or missing from disk, that report.json follows its schema and agrees with the signed summary
and with its own artifact list, that it names the key that signed it, and that its ε equals
the ε recomputed with opacus from its privacy ledger.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tdd_priv.fingerprint import sha256_file
from tdd_priv.privacy.ledger import compute_epsilon
from tdd_priv.report.attest import (
    ENVELOPE_FILE,
    PREDICATE_TYPE,
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
    key_id,
    load_public_key,
    open_envelope,
    parse_statement,
    unverified_payload,
)

__all__ = ["EPSILON_RELATIVE_TOLERANCE", "Check", "Verification", "verify_run"]

EPSILON_RELATIVE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verification:
    run_dir: Path
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.passed)


class _Failed(Exception):
    """A check's reason to fail."""


def _preview(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class _Verifier:
    def __init__(self, run_dir: Path, public_key: Path | None) -> None:
        self.run_dir = run_dir
        self.public_key_path = public_key
        self.checks: list[Check] = []
        self.envelope: Mapping[str, Any] | None = None
        self.verifying_key_id: str | None = None
        self.statement: Statement | None = None
        self.report: dict[str, Any] | None = None

    def check(self, name: str, run: Callable[[], str]) -> None:
        try:
            detail = run()
        except _Failed as failure:
            self.checks.append(Check(name, False, str(failure)))
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

    def signature(self) -> str:
        envelope = self.envelope = self._read_envelope()
        if self.public_key_path is not None:
            key_path, source = self.public_key_path, "the key given with --key"
            caveat = ""
        else:
            key_path = self.run_dir / PUBLIC_KEY_FILE
            source = f"the key shipped in the folder ({PUBLIC_KEY_FILE})"
            caveat = (
                ": this proves the files are intact, not who signed them; pass --key with the "
                "signer's public key to check that"
            )
        try:
            public_key = load_public_key(key_path)
        except SigningKeyError as error:
            raise _Failed(str(error)) from error
        try:
            open_envelope(envelope, public_key=public_key)
        except (EnvelopeError, SignatureError) as error:
            raise _Failed(f"{error} (checked with {source})") from error
        if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
            raise _Failed(
                f"payloadType is {envelope.get('payloadType')!r}, expected {IN_TOTO_PAYLOAD_TYPE!r}"
            )
        self.verifying_key_id = key_id(public_key)
        return (
            f"valid Ed25519 signature, key id {self.verifying_key_id[:16]}…, checked with "
            f"{source}{caveat}"
        )

    def statement_check(self) -> str:
        envelope = self.envelope if self.envelope is not None else self._read_envelope()
        try:
            statement = parse_statement(unverified_payload(envelope))
        except (EnvelopeError, StatementError) as error:
            raise _Failed(str(error)) from error
        if statement.predicate_type != PREDICATE_TYPE:
            raise _Failed(
                f"predicateType is {statement.predicate_type!r}, expected {PREDICATE_TYPE!r}"
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
        return f"in-toto Statement v1 ({PREDICATE_TYPE}) listing {len(statement.subjects)} files"

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
        if self.verifying_key_id is None:
            raise _Failed("no verified signature to compare the key with")
        if stated != self.verifying_key_id:
            raise _Failed(
                f"{REPORT_FILE} names key id {str(stated)[:16]}…, but the signature "
                f"was checked with {self.verifying_key_id[:16]}…"
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


def verify_run(run_dir: Path, *, public_key: Path | None = None) -> Verification:
    """Run every check on `run_dir`; `public_key` (PEM) is the signer's key, else the one
    shipped in the folder is used (which proves integrity, not origin)."""
    if not run_dir.is_dir():
        return Verification(run_dir, (Check("run folder", False, f"{run_dir} is not a folder"),))
    verifier = _Verifier(run_dir, public_key)
    steps: tuple[tuple[str, Callable[[], str]], ...] = (
        ("signature", verifier.signature),
        ("signed statement", verifier.statement_check),
        ("listed files present", verifier.listed_present),
        ("file digests", verifier.digests),
        ("no unlisted files", verifier.nothing_unlisted),
        ("report schema", verifier.schema),
        ("summary matches report", verifier.predicate),
        ("artifacts match", verifier.artifacts),
        ("signing key named", verifier.key_named),
        ("privacy ledger ε", verifier.epsilon),
    )
    for name, step in steps:
        verifier.check(name, step)
    return Verification(run_dir, tuple(verifier.checks))
