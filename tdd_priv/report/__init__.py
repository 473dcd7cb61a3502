"""The run's report: report.json (with its schema), report.md, report.html, figures, the run
folder's files and their signature."""

from tdd_priv.report.attest import (
    ENVELOPE_FILE,
    PREDICATE_TYPE,
    PUBLIC_KEY_FILE,
    report_summary,
    sign_run_folder,
)
from tdd_priv.report.folder import PRIVATE_DIR, released_files, write_run_folder
from tdd_priv.report.markdown import per_class_words, render_markdown, utility_rows
from tdd_priv.report.record import RunRecord, build_report
from tdd_priv.report.schema import (
    SCHEMA_VERSION,
    ReportSchemaError,
    load_report,
    schema_errors,
    validate_report,
)

__all__ = [
    "ENVELOPE_FILE",
    "PREDICATE_TYPE",
    "PRIVATE_DIR",
    "PUBLIC_KEY_FILE",
    "SCHEMA_VERSION",
    "ReportSchemaError",
    "RunRecord",
    "build_report",
    "load_report",
    "per_class_words",
    "released_files",
    "render_markdown",
    "report_summary",
    "schema_errors",
    "sign_run_folder",
    "utility_rows",
    "validate_report",
    "write_run_folder",
]
