"""The run's report: report.json content, report.md, figures and the run folder's files."""

from tdd_priv.report.folder import released_files, write_run_folder
from tdd_priv.report.markdown import utility_rows
from tdd_priv.report.record import SCHEMA_VERSION, RunRecord, build_report

__all__ = [
    "SCHEMA_VERSION",
    "RunRecord",
    "build_report",
    "released_files",
    "utility_rows",
    "write_run_folder",
]
