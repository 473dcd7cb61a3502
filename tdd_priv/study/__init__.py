"""Privacy–utility studies: a sweep file expanded into cells (each an ordinary run), and the
table and figures of their reports. Orchestration (Prefect, Dask) lives in flows/study.py; this
package only plans, checks and summarises."""

from tdd_priv.study.cells import CellOutcome, cell_is_complete, remove_partial_folders, write_timing
from tdd_priv.study.outputs import StudyOutputs, check_study_folder, record_sweep, write_outputs
from tdd_priv.study.sweep import Cell, Sweep, expand_cells, load_sweep
from tdd_priv.study.table import StudyTable, study_table

__all__ = [
    "Cell",
    "CellOutcome",
    "StudyOutputs",
    "StudyTable",
    "Sweep",
    "cell_is_complete",
    "check_study_folder",
    "expand_cells",
    "load_sweep",
    "record_sweep",
    "remove_partial_folders",
    "study_table",
    "write_outputs",
    "write_timing",
]
