"""Read a dataset spec into plain columns of Python values, failing with errors that teach.

Everything downstream (label mapping, validation) sees one shape: a `RawTable`, whatever the
source format. Row numbers in messages are 1-based data rows, the header not counted.
"""

from __future__ import annotations

import codecs
import csv
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdd_priv.errors import DataValidationError

__all__ = [
    "SUPPORTED_SUFFIXES",
    "RawTable",
    "check_scalars",
    "check_texts",
    "format_rows",
    "is_missing",
    "read_spec",
]

log = logging.getLogger(__name__)

HF_PREFIX = "hf:"
HF_SPLIT_COLUMN = "split"
SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")
_MAX_LISTED = 10
# Long documents (clinical notes) exceed the csv module's 128 KiB default field limit.
_CSV_FIELD_LIMIT = 1 << 30


@dataclass(frozen=True)
class RawTable:
    """Columns as equal-length lists of Python values (str, int, float, bool or None).

    `class_names` holds the names of label-like columns whose source declared them (a
    Hugging Face ClassLabel); `split_names` is the Hugging Face split order, if any.
    """

    columns: dict[str, list[Any]]
    n_rows: int
    name: str
    source: str
    class_names: dict[str, tuple[str, ...]]
    split_names: tuple[str, ...] = ()


def format_rows(rows: Sequence[int]) -> str:
    """'row 3' / 'rows 3, 7, 12 and 4 more': short lists for error messages."""
    shown = ", ".join(str(row) for row in rows[:_MAX_LISTED])
    more = f" and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else ""
    return f"{'row' if len(rows) == 1 else 'rows'} {shown}{more}"


def format_values(values: Iterable[object]) -> str:
    """Quoted, comma-separated, at most ~10 values: for listing columns, labels, splits."""
    items = [repr(str(value)) for value in values]
    more = f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return ", ".join(items[:_MAX_LISTED]) + more


def is_missing(value: object) -> bool:
    """None, NaN, or a string that is empty after stripping whitespace."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and not value.strip()


def _kind(value: object) -> str:
    """What a cell holds, in words, for errors about cells of the wrong type."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping (struct)"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    return f"a {type(value).__name__}"


def check_texts(values: Sequence[Any], *, source: str, column: str, fix: str) -> None:
    """Refuse a text column whose cells are not strings (lists, mappings, numbers, booleans):
    turning them into text with str() would train on, and release, their Python repr. Missing
    cells (None, NaN) are left to the caller. Rows are 1-based data rows. A CSV's cells are
    always strings; JSON lines, Parquet and Hugging Face columns are typed."""
    wrong = [
        row
        for row, value in enumerate(values, start=1)
        if not isinstance(value, str) and not is_missing(value)
    ]
    if wrong:
        kinds = sorted({_kind(values[row - 1]) for row in wrong})
        raise DataValidationError(
            f"{source}: column {column!r} holds {' and '.join(kinds)} instead of text in "
            f"{format_rows(wrong)} (1-based data rows). Each text must be one string: {fix}"
        )


def check_scalars(values: Sequence[Any], *, source: str, column: str, role: str, flag: str) -> None:
    """Refuse lists, mappings and bytes in a label, group or split column: each cell must be
    one value (a name or a number), not a structure whose repr would become a class name."""
    wrong = [
        row
        for row, value in enumerate(values, start=1)
        if isinstance(value, list | tuple | dict | bytes | bytearray)
    ]
    if wrong:
        kinds = sorted({_kind(values[row - 1]) for row in wrong})
        raise DataValidationError(
            f"{source}: column {column!r} holds {' and '.join(kinds)} in {format_rows(wrong)} "
            f"(1-based data rows); each {role} must be one name or number. Flatten the column, "
            f"or pass {flag} with another column."
        )


def read_spec(
    spec: str, *, needed: Sequence[str] | None = None, label_column: str | None = None
) -> RawTable:
    """Read a local CSV/JSONL/JSON/Parquet path or an `hf:NAME[:CONFIG]` spec.

    `needed` names the columns the caller will use, so Hugging Face datasets only convert those
    (a missing one is left for the caller to report with the right CLI flag). Hugging Face
    splits without labels in `label_column` are skipped.
    """
    if spec.startswith(HF_PREFIX):
        return _read_hf(spec, needed=needed, label_column=label_column)
    path = Path(spec).expanduser()
    if path.is_dir():
        raise DataValidationError(
            f"{spec}: is a folder, not a data file. Pass a .csv/.jsonl/.parquet file, or "
            f"hf:{spec} to load the folder as a Hugging Face dataset."
        )
    if not path.exists():
        raise DataValidationError(
            f"{spec}: no such file. Check the path (relative paths start at {Path.cwd()}), "
            "or pass `demo` to try the bundled demo dataset."
        )
    if not path.is_file():  # stat only: a FIFO is never opened, so nothing blocks
        raise DataValidationError(
            f"{spec}: is not a regular file (a FIFO, device or socket). Save the data to a "
            ".csv/.jsonl/.parquet file and pass that."
        )
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataValidationError(
            f"{spec}: unsupported file type {suffix or '(no extension)'!r}. "
            f"Supported: {', '.join(SUPPORTED_SUFFIXES)} (.json: JSON lines or one array of "
            "objects), or hf:NAME[:CONFIG] for a Hugging Face dataset."
        )
    source = str(path.resolve())
    if suffix == ".parquet":
        columns = _read_parquet(path, source)
    elif suffix == ".csv":
        # Decoded once to report bad bytes with their offset, then parsed from the file: the
        # csv module over one in-memory string would hold it again at 4 bytes per character.
        if not _decode_utf8(path.read_bytes(), source).strip():
            raise DataValidationError(f"{source}: the file is empty; expected a header row.")
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                columns = _parse_csv(handle, source)
        except UnicodeDecodeError:
            raise DataValidationError(f"{source}: the file changed while it was read") from None
    else:
        columns = _parse_json(_decode_utf8(path.read_bytes(), source), source)
    n_rows = len(next(iter(columns.values()), []))
    if n_rows == 0:
        raise DataValidationError(f"{source}: has a header but no data rows.")
    return RawTable(columns=columns, n_rows=n_rows, name=path.stem, source=source, class_names={})


def _decode_utf8(raw: bytes, source: str) -> str:
    # Spreadsheet exports often start with a BOM, which would corrupt the first column name.
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = exc.start + bom
        line = raw.count(b"\n", 0, offset) + 1
        column = offset - (raw.rfind(b"\n", 0, offset) + 1)
        raise DataValidationError(
            f"{source}: not valid UTF-8 at line {line}, byte {column} of that line "
            f"(byte offset {offset} in the file, byte 0x{raw[offset]:02x}). Re-encode the file "
            "as UTF-8, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv` if it is Latin-1."
        ) from None


def _parse_csv(lines: Iterable[str], source: str) -> dict[str, list[Any]]:
    """The columns of CSV `lines` (a file opened with newline="", or a list of lines)."""
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    # The csv module, not pandas: pandas turns texts such as "NA" or "null" into NaN and can
    # silently shift a row with an extra field into an index column.
    reader = csv.reader(lines, strict=True)
    try:
        names: list[str] = []
        for name in next(reader):
            names.append(_unique(name, names))
        columns: dict[str, list[Any]] = {name: [] for name in names}
        for data_row, fields in enumerate(reader, start=1):
            if len(fields) != len(names):
                raise DataValidationError(
                    f"{source}: data row {data_row} (line {reader.line_num}) has "
                    f"{len(fields)} fields but the header has {len(names)}. Quote fields that "
                    'contain commas or line breaks ("a, b"), as standard CSV writers do.'
                )
            for name, value in zip(names, fields, strict=True):
                columns[name].append(value)
    except csv.Error as exc:
        raise DataValidationError(
            f"{source}: cannot parse CSV near line {reader.line_num}: {exc}. Check the quoting "
            "there (an unclosed double quote swallows the rest of the file)."
        ) from None
    return columns


def _unique(name: str, earlier: Sequence[str]) -> str:
    """Suffix repeated header names ('a', 'a.1') as pandas does, so no column is lost."""
    candidate, n = name, 0
    while candidate in earlier:
        n += 1
        candidate = f"{name}.{n}"
    return candidate


def _parse_json(text: str, source: str) -> dict[str, list[Any]]:
    """JSON lines (one object per line); a .json file holding one array of objects also works."""
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataValidationError(
                f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}."
            ) from None
        numbered = list(enumerate(records, start=1))
    else:
        numbered = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                numbered.append((line_no, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataValidationError(
                    f"{source}: line {line_no} is not valid JSON ({exc.msg}). Each line must "
                    'be one JSON object, e.g. {"text": "...", "label": 1}.'
                ) from None
    if not numbered:
        raise DataValidationError(f"{source}: the file has no records.")
    columns: dict[str, list[Any]] = {}
    for index, (line_no, record) in enumerate(numbered):
        if not isinstance(record, dict):
            raise DataValidationError(
                f"{source}: record at line/position {line_no} is a {type(record).__name__}, "
                'not a JSON object. Write one object per record, e.g. {"text": "...", '
                '"label": 1}.'
            )
        for key, value in record.items():
            # A key first seen late is missing (None) in the records before it.
            columns.setdefault(str(key), [None] * index).append(value)
        for values in columns.values():
            if len(values) == index:
                values.append(None)
    return columns


def _read_parquet(path: Path, source: str) -> dict[str, list[Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataValidationError(
            f"{source}: cannot read as Parquet ({exc}). Check that the file is complete and "
            "really Parquet, or export it as CSV."
        ) from None
    return {str(name): values for name, values in table.to_pydict().items()}


def _read_hf(spec: str, *, needed: Sequence[str] | None, label_column: str | None) -> RawTable:
    import datasets

    name, _, config = spec.removeprefix(HF_PREFIX).partition(":")
    if not name:
        raise DataValidationError(
            f"{spec}: no dataset name. Use hf:NAME or hf:NAME:CONFIG, e.g. hf:glue:sst2."
        )
    try:
        loaded = datasets.load_dataset(name, config or None)
    except Exception as exc:  # the hub raises many types; all mean "cannot load this spec"
        raise DataValidationError(
            f"{spec}: cannot load Hugging Face dataset {name!r}"
            f"{f' (config {config!r})' if config else ''}: {exc}. Check the name and config; "
            "the hub needs network access (with HF_HUB_OFFLINE=1 only cached datasets load). "
            "Or save the data as CSV/JSONL/Parquet and pass the file."
        ) from exc
    parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"": loaded}
    if label_column is not None and any(label_column in p.column_names for p in parts.values()):
        parts = {s: p for s, p in parts.items() if _is_labeled(p, label_column, spec, s)}
    columns: dict[str, list[Any]] = {}
    class_names: dict[str, tuple[str, ...]] = {}
    n_rows = 0
    for split, part in parts.items():
        wanted = [c for c in part.column_names if needed is None or c in needed]
        values = part.select_columns(wanted).to_dict()
        for c in wanted:
            feature = part.features[c]
            if isinstance(feature, datasets.ClassLabel):
                class_names.setdefault(c, tuple(feature.names))
                values[c] = [None if v == -1 else v for v in values[c]]  # -1 means "no label"
        if split and HF_SPLIT_COLUMN not in part.column_names:
            values[HF_SPLIT_COLUMN] = [split] * part.num_rows
        for c in values.keys() | columns.keys():
            # A column absent from some splits is missing (None) in their rows.
            columns.setdefault(c, [None] * n_rows).extend(values.get(c, [None] * part.num_rows))
        n_rows += part.num_rows
    if n_rows == 0:
        raise DataValidationError(f"{spec}: the dataset has no labeled rows.")
    return RawTable(
        columns=columns,
        n_rows=n_rows,
        name=spec,
        source=spec,
        class_names=class_names,
        split_names=tuple(parts),
    )


def _is_labeled(part: Any, label_column: str, spec: str, split: str) -> bool:
    """False for splits that withhold labels (no column, all null, or ClassLabel all -1)."""
    import datasets

    if label_column not in part.column_names:
        log.info("%s: skipping split %r, it has no %r column", spec, split, label_column)
        return False
    withheld = -1 if isinstance(part.features[label_column], datasets.ClassLabel) else None
    if all(value is None or value == withheld for value in part[label_column]):
        log.info("%s: skipping split %r, its labels are all withheld", spec, split)
        return False
    return True
