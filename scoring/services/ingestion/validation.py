"""Validating import files chunk by chunk, with vectorised pandas checks.

A :class:`FileSpec` says which columns a file of one kind must have and what
each may hold; :class:`ChunkValidator` checks the header once, then each chunk,
and returns the chunk's values converted to their types together with a mask of
the valid rows. Problems go to an :class:`ImportReport`, which counts all of
them and keeps the first ``cap`` as ``{row, column, value, message}`` records
(rows numbered as in :mod:`.readers`: the first data row is row 2). Python loops
run only over the problems that fit in the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa

from models import coltypes
from scoring.models import Applicant, DatasetSchema

from .readers import FIRST_DATA_ROW, REPLACEMENT_CHARACTER

REDACTED = "<redacted>"  # kept for callers; the report shows a PII value's shape instead (value_shape)
VALUE_MAX_CHARS = 100
ID_MAX_LENGTH = Applicant._meta.get_field("external_id").max_length
DAYS_PAST_DUE_MAX = 36_500  # a hundred years: anything above is a broken file, not a debtor
_FLAG_TRUE = {"1", "true", "yes"}
_FLAG_FALSE = {"0", "false", "no"}
_MONTH_PATTERN = r"\d{4}-\d{2}(?:-\d{2})?"

HISTORY_COLUMNS = ("applicant_id", "month", "balance", "amount_paid", "days_past_due")
OUTCOME_COLUMNS = ("applicant_id", "defaulted", "observed_on")

# Types beyond the schema's: a reference to an existing applicant, a month, a default flag.
TYPE_REFERENCE = "reference"
TYPE_MONTH = "month"
TYPE_FLAG = "flag"


@dataclass(frozen=True)
class Field:
    """One column of an import file and what its cells may hold."""

    name: str
    role: str
    type: str
    nullable: bool = False
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    max_length: int | None = None
    positive_label: str | None = None
    redact: bool = False  # PII: the report never shows the value
    options: dict = field(default_factory=dict, compare=False, hash=False)  # the schema's column entry

    @property
    def column(self) -> dict:
        """The column as the type registry reads it (its options and role)."""
        return {**self.options, "name": self.name, "role": self.role, "type": self.type,
                "min": self.minimum, "max": self.maximum, "categories": list(self.categories),
                "max_length": self.max_length}  # fmt: skip


@dataclass(frozen=True)
class FileSpec:
    kind: str
    fields: tuple[Field, ...]
    optional: frozenset[str] = frozenset()  # declared columns that may be absent (role "ignore")
    key: tuple[str, ...] = ()  # unique within the file
    duplicate_message: str = "this id is already used in row {row}"

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


def spec_for_applicants(schema: DatasetSchema) -> FileSpec:
    fields = []
    optional = set()
    id_name = ""
    for column in schema.definition["columns"]:
        role = column["role"]
        if role == DatasetSchema.ROLE_IGNORE:
            optional.add(column["name"])
            continue
        if role == DatasetSchema.ROLE_ID:
            id_name = column["name"]
        fields.append(
            Field(
                name=column["name"],
                role=role,
                type=column["type"],
                # Labels are optional (an unlabelled row is an application to score)
                # unless the schema says "nullable": false for its target.
                nullable=bool(column.get("nullable", role == DatasetSchema.ROLE_TARGET))
                and role != DatasetSchema.ROLE_ID,
                minimum=column.get("min"),
                maximum=column.get("max"),
                categories=tuple(column.get("categories") or ()),
                max_length=ID_MAX_LENGTH if role == DatasetSchema.ROLE_ID else column.get("max_length"),
                positive_label=column.get("positive_label"),
                redact=role == DatasetSchema.ROLE_PII,
                options=dict(column),
            )
        )
    return FileSpec(kind="applicants", fields=tuple(fields), optional=frozenset(optional), key=(id_name,))


def spec_for_history() -> FileSpec:
    return FileSpec(
        kind="history",
        fields=(
            Field("applicant_id", DatasetSchema.ROLE_ID, TYPE_REFERENCE, max_length=ID_MAX_LENGTH),
            Field("month", "month", TYPE_MONTH),
            Field("balance", "value", "float"),
            Field("amount_paid", "value", "float"),
            Field("days_past_due", "value", "integer", minimum=0, maximum=DAYS_PAST_DUE_MAX),
        ),
        key=("applicant_id", "month"),
        duplicate_message="this applicant already has a row for this month (row {row})",
    )


def spec_for_outcomes(schema: DatasetSchema) -> FileSpec:
    target = next(iter(schema.columns_with_role(DatasetSchema.ROLE_TARGET)), None) or {}
    return FileSpec(
        kind="outcomes",
        fields=(
            Field("applicant_id", DatasetSchema.ROLE_ID, TYPE_REFERENCE, max_length=ID_MAX_LENGTH),
            Field(
                "defaulted",
                DatasetSchema.ROLE_TARGET,
                TYPE_FLAG,
                categories=tuple(target.get("categories") or ()),
                positive_label=target.get("positive_label"),
            ),
            Field("observed_on", "date", "date"),
        ),
        key=("applicant_id", "observed_on"),
        duplicate_message="this applicant already has an outcome observed on this date (row {row})",
    )


# --- the report ----------------------------------------------------------------


@dataclass
class ImportReport:
    """All problems of one file. ``errors``: the first ``cap`` in row order;
    ``summary``: every (column, problem) pair with its count over the whole file
    (never capped) and its first ``examples`` cells; warnings (cells accepted with a
    change, like an unseen category stored as "other") are summarised the same way
    and do not make a row invalid."""

    cap: int
    examples: int = 5
    errors: list[dict] = field(default_factory=list)
    error_count: int = 0
    warning_count: int = 0
    rows_invalid: int = 0
    rows_read: int = 0
    structural: bool = False  # a problem with the file itself: nothing can be written
    summary: dict[tuple[str, str | None, str], dict] = field(default_factory=dict)

    def file_error(self, message: str, *, row: int | None = None, column: str | None = None) -> None:
        self.structural = True
        self.error_count += 1
        if len(self.errors) < self.cap:
            self.errors.append({"row": row, "column": column, "value": None, "message": message})
        entry = self._entry("error", column, message)
        entry["count"] += 1
        if len(entry["examples"]) < self.examples:
            entry["examples"].append({"row": row, "value": None})

    def _entry(self, severity: str, column: str | None, problem: str) -> dict:
        key = (severity, column, problem)
        if key not in self.summary:
            self.summary[key] = {"severity": severity, "column": column, "problem": problem, "count": 0, "examples": []}
        return self.summary[key]

    def summary_list(self) -> list[dict]:
        """The summary as stored on the job: errors first, then by count, largest first."""
        return sorted(self.summary.values(), key=lambda e: (e["severity"] != "error", -e["count"]))

    @property
    def room(self) -> int:
        return self.cap - len(self.errors)


def value_shape(value: str) -> str:
    """The shape of a value without the value: letters become A/a, digits 9, the
    rest stays (``AB12 3cd`` -> ``AA99 9aa``): enough to see which format failed in a
    personal-data column, not enough to read it."""
    out = []
    for char in value[:VALUE_MAX_CHARS]:
        if char.isdigit():
            out.append("9")
        elif char.isalpha():
            out.append("A" if char.isupper() else "a")
        else:
            out.append(char)
    return "".join(out)


def _shown(value: str, redact: bool) -> str:
    # A NUL cannot be stored in PostgreSQL's jsonb either: the report spells it.
    return (value_shape(value) if redact else value[:VALUE_MAX_CHARS]).replace("\x00", "\\0")


class _ChunkProblems:
    """The problems of one chunk: boolean masks with a column and a message
    (``key``: the problem as summarised, when the message names a row)."""

    def __init__(self, offset: int, size: int, positions: dict[str, int], cell_chars: int = 100_000):
        self.cell_chars = cell_chars
        self.offset = offset
        self.size = size
        self.positions = positions
        self.items: list[tuple[np.ndarray, Field, pd.Series, str | Callable[[int], str], str]] = []
        self.warnings: list[tuple[np.ndarray, Field, pd.Series, str]] = []

    def add(self, mask, fld: Field, raw: pd.Series, message: str | Callable[[int], str], key: str = "") -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self.items.append((mask, fld, raw, message, key or str(message)))

    def warn(self, mask, fld: Field, raw: pd.Series, message: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            self.warnings.append((mask, fld, raw, message))

    def _summarise(self, report: ImportReport, severity: str, mask, fld: Field, raw: pd.Series, key: str) -> int:
        count = int(mask.sum())
        entry = report._entry(severity, fld.name, key)
        entry["count"] += count
        wanted = report.examples - len(entry["examples"])
        for index in np.flatnonzero(mask)[: max(wanted, 0)]:
            entry["examples"].append(
                {"row": self.offset + int(index) + FIRST_DATA_ROW, "value": _shown(str(raw.iat[index]), fld.redact)}
            )
        return count

    def record(self, report: ImportReport) -> np.ndarray:
        """Count into ``report`` and return the mask of invalid rows."""
        invalid = np.zeros(self.size, dtype=bool)
        candidates = []
        room = report.room
        for order, (mask, fld, raw, message, key) in enumerate(self.items):
            invalid |= mask
            report.error_count += self._summarise(report, "error", mask, fld, raw, key)
            if room <= 0:
                continue
            for index in np.flatnonzero(mask)[:room]:
                text = message if isinstance(message, str) else message(int(index))
                candidates.append(
                    (
                        int(index),
                        self.positions.get(fld.name, 0),
                        order,
                        {
                            "row": self.offset + int(index) + FIRST_DATA_ROW,
                            "column": fld.name,
                            "value": _shown(str(raw.iat[index]), fld.redact),
                            "message": text,
                        },
                    )
                )
        for mask, fld, raw, message in self.warnings:
            report.warning_count += self._summarise(report, "warning", mask & ~invalid, fld, raw, message)
        candidates.sort(key=lambda item: item[:3])
        report.errors.extend(item[3] for item in candidates[:room])
        report.rows_invalid += int(invalid.sum())
        return invalid


# --- keys seen in earlier chunks --------------------------------------------------


class SeenKeys:
    """The keys (64-bit hashes) met so far and the row of their first occurrence,
    in sorted arrays merged like a binary counter, so a file of n rows costs
    O(n log^2 n) and 16 bytes a key, never a Python object per row. Two different
    keys sharing a 64-bit hash would be taken for a duplicate: about one chance in
    10^7 for a 20-million-row file."""

    def __init__(self):
        self._levels: list[tuple[np.ndarray, np.ndarray]] = []

    def check_and_add(self, hashes: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For each key, the row where it first appeared (this chunk or earlier), or -1."""
        first = np.full(len(hashes), -1, dtype=np.int64)
        if not len(hashes):
            return first
        order = np.argsort(hashes, kind="stable")
        sorted_hashes, sorted_rows = hashes[order], rows[order]
        run_start = np.ones(len(hashes), dtype=bool)
        run_start[1:] = sorted_hashes[1:] != sorted_hashes[:-1]
        run = np.cumsum(run_start) - 1
        heads, head_rows = sorted_hashes[run_start], sorted_rows[run_start]

        earlier = np.full(len(heads), -1, dtype=np.int64)
        for level_hashes, level_rows in self._levels:
            at = np.minimum(np.searchsorted(level_hashes, heads), len(level_hashes) - 1)
            hit = level_hashes[at] == heads
            earlier[hit] = level_rows[at[hit]]

        first_sorted = np.where(earlier[run] >= 0, earlier[run], np.where(run_start, -1, head_rows[run]))
        first[order] = first_sorted
        new = earlier < 0
        self._push(heads[new], head_rows[new])
        return first

    def _push(self, hashes: np.ndarray, rows: np.ndarray) -> None:
        if not len(hashes):
            return
        self._levels.append((hashes, rows))
        while len(self._levels) > 1 and len(self._levels[-2][0]) <= 2 * len(self._levels[-1][0]):
            (h2, r2), (h1, r1) = self._levels.pop(), self._levels.pop()
            merged_hashes = np.concatenate([h1, h2])
            merged_rows = np.concatenate([r1, r2])
            order = np.argsort(merged_hashes, kind="stable")
            self._levels.append((merged_hashes[order], merged_rows[order]))


# --- checking a chunk ----------------------------------------------------------------


@dataclass
class ChunkValues:
    """A validated chunk: ``valid`` marks rows without problems; ``values`` holds
    each column converted (float64 numbers with NaN for missing, str text with ""
    for missing, bool flags, ISO dates); ``applicant_pk`` the referenced
    applicant's primary key (history and outcomes, -1 when unknown)."""

    offset: int
    valid: np.ndarray
    values: dict[str, pd.Series]
    applicant_pk: np.ndarray | None = None


ApplicantLookup = Callable[[list[str]], pd.Series]  # ids -> Series of pks indexed by id


class ChunkValidator:
    """Checks a file's header and then its chunks in order (duplicate ids are
    tracked across chunks, so one validator reads one file once)."""

    def __init__(self, spec: FileSpec, report: ImportReport, *, applicant_lookup: ApplicantLookup | None = None):
        self.spec = spec
        self.report = report
        self.applicant_lookup = applicant_lookup
        from django.conf import settings

        self.cell_chars = settings.IMPORT_MAX_CELL_CHARS
        self.seen = SeenKeys()
        self.positions: dict[str, int] = {}
        self.present: list[Field] = []

    def header_check(self, columns: list[str]) -> None:
        """Missing and undeclared columns are file-level problems, reported on row 1."""
        self.positions = {name: position for position, name in enumerate(columns)}
        declared = {f.name for f in self.spec.fields} | self.spec.optional
        for f in self.spec.fields:
            if f.name not in self.positions:
                self.report.file_error("this column is missing from the file", row=1, column=f.name)
        for name in columns:
            if name not in declared:
                hint = (
                    "a new schema version must declare it"
                    if self.spec.kind == "applicants"
                    else (
                        f"the columns of a {self.spec.kind} file are exactly {', '.join(f.name for f in self.spec.fields)}"
                    )
                )
                self.report.file_error(f"this column is not declared ({hint})", row=1, column=name)
        self.present = [f for f in self.spec.fields if f.name in self.positions]

    def validate(self, offset: int, frame: pd.DataFrame) -> ChunkValues:
        problems = _ChunkProblems(offset, len(frame), self.positions, self.cell_chars)
        values: dict[str, pd.Series] = {}
        usable: dict[str, np.ndarray] = {}
        blank = np.logical_and.reduce([(frame[name] == "").to_numpy(dtype=bool) for name in frame.columns])
        if blank.any() and self.present:  # one problem for a blank line, not one per column
            first = min(self.present, key=lambda f: self.positions[f.name])
            problems.add(blank, first, frame[first.name], "the row is blank")
        for f in self.present:
            values[f.name], usable[f.name] = _field_check(f, frame[f.name], problems, skip=blank)

        applicant_pk = None
        if self.spec.key and all(name in values for name in self.spec.key):
            key_ok = np.logical_and.reduce([usable[name] for name in self.spec.key])
            self._duplicates_check(offset, frame, values, key_ok, problems)
        id_field = self.spec.fields[0]
        if id_field.type == TYPE_REFERENCE and id_field.name in values:
            applicant_pk = self._references_check(frame, values[id_field.name], usable[id_field.name], problems)
        invalid = problems.record(self.report)
        return ChunkValues(offset=offset, valid=~invalid, values=values, applicant_pk=applicant_pk)

    def _duplicates_check(self, offset, frame, values, key_ok, problems) -> None:
        rows_at = np.flatnonzero(key_ok)
        if not len(rows_at):
            return
        hashes = _keys_hash([values[name].iloc[rows_at] for name in self.spec.key])
        first = self.seen.check_and_add(hashes, rows_at.astype(np.int64) + offset)
        duplicate = np.zeros(len(frame), dtype=bool)
        first_row = np.full(len(frame), -1, dtype=np.int64)
        duplicate[rows_at] = first >= 0
        first_row[rows_at] = first
        column = self.spec.field(self.spec.key[-1])
        template = self.spec.duplicate_message
        problems.add(
            duplicate,
            column,
            frame[column.name],
            lambda index: template.format(row=int(first_row[index]) + FIRST_DATA_ROW),
            key=template.replace("{row}", "…"),
        )

    def _references_check(self, frame, ids: pd.Series, ok: np.ndarray, problems) -> np.ndarray:
        pks = np.full(len(frame), -1, dtype=np.int64)
        if self.applicant_lookup is None or not ok.any():
            return pks
        # Each distinct id once: a history chunk holds a few thousand applicants.
        codes, uniques = pd.factorize(ids.where(ok, ""))
        known = self.applicant_lookup([u for u in uniques.tolist() if u != ""])
        unique_pks = known.reindex(pd.Index(uniques, dtype=object)).to_numpy(dtype="float64", na_value=np.nan)
        found = ok & ~np.isnan(unique_pks[codes])
        pks[found] = unique_pks[codes[found]].astype(np.int64)
        problems.add(
            ok & ~found,
            self.spec.fields[0],
            frame[self.spec.fields[0].name],
            "no applicant with this id in the portfolio; import the applicants first",
        )
        return pks


def _keys_hash(columns: list[pd.Series]) -> np.ndarray:
    """A 64-bit hash of each row's key, hashing each distinct value once."""

    def column_hash(column: pd.Series) -> np.ndarray:
        codes, uniques = pd.factorize(column)
        return pd.util.hash_array(np.asarray(uniques, dtype=object))[codes]

    combined = column_hash(columns[0])
    for column in columns[1:]:  # boost's hash_combine, in wrapping uint64 arithmetic
        hashed = column_hash(column)
        combined = combined ^ (
            hashed + np.uint64(0x9E3779B97F4A7C15) + (combined << np.uint64(6)) + (combined >> np.uint64(2))
        )
    return combined


def _field_check(
    f: Field, raw: pd.Series, problems: _ChunkProblems, *, skip: np.ndarray
) -> tuple[pd.Series, np.ndarray]:
    """Check one column of a chunk, except the ``skip`` rows. Returns the converted
    values and the mask of cells that are present and valid (used for keys and
    references)."""
    # Before any other check: a cell over the limit is not parsed (nor shown whole).
    huge = (raw.str.len() > problems.cell_chars).to_numpy(dtype=bool)
    problems.add(huge, f, raw, f"longer than {problems.cell_chars:,} characters (IMPORT_MAX_CELL_CHARS)")
    if huge.any():
        raw = raw.where(~huge, "")
        skip = skip | huge
    undecodable = raw.str.contains(REPLACEMENT_CHARACTER, regex=False).to_numpy(dtype=bool)
    problems.add(
        undecodable,
        f,
        raw,
        "undecodable text: the bytes are not valid in the file's encoding (save as UTF-8 or pass --encoding)",
    )
    # PostgreSQL text cannot hold U+0000 (COPY would fail the whole job): a cell error.
    nul = raw.str.contains("\x00", regex=False).to_numpy(dtype=bool) & ~undecodable
    problems.add(nul, f, raw, "contains a NUL byte (\\0), which cannot be stored: remove it from the file")
    stripped = raw.str.strip()
    empty = (stripped == "").to_numpy(dtype=bool)
    checkable = ~undecodable & ~nul & ~skip
    if not f.nullable:
        is_id = f.role == DatasetSchema.ROLE_ID
        problems.add(empty & checkable, f, raw, "the id is empty" if is_id else "a value is required here")
    present = checkable & ~empty
    bad = np.zeros(len(raw), dtype=bool)

    if f.type == TYPE_FLAG:
        values, bad = _flag_check(f, raw, stripped, present, problems)
    elif f.type == TYPE_MONTH:
        values, bad = _months_check(f, stripped, present, raw, problems)
    elif f.type == TYPE_REFERENCE:
        values, bad = raw, np.zeros(len(raw), dtype=bool)
    else:
        values, bad = _typed_check(f, raw, stripped, present, problems)
    if f.role == DatasetSchema.ROLE_ID:
        values = raw  # ids stay text, exactly as written
        if f.max_length:
            too_long = present & (raw.str.len() > f.max_length).to_numpy(dtype=bool)
            problems.add(too_long, f, raw, f"longer than {f.max_length} characters")
            bad |= too_long
    return values, present & ~bad


def _typed_check(f: Field, raw: pd.Series, stripped: pd.Series, present: np.ndarray, problems):
    """A schema column: its type (from the registry) parses and checks it."""
    column = f.column
    kind = coltypes.TYPES[f.type]
    if f.role == DatasetSchema.ROLE_ID and f.type == "integer":
        bad = present & ~stripped.str.fullmatch(r"[+-]?\d+").to_numpy(dtype=bool)
        problems.add(bad, f, raw, "not a whole-number id")
        return raw, bad
    parsed = kind.parse(column, raw if kind.exact else stripped, present)
    for mask, message in parsed.problems:
        problems.add(present & mask, f, raw, message)
    for mask, message in parsed.warnings:
        problems.warn(present & mask, f, raw, message)
    return parsed.values, present & parsed.bad()


_listing = coltypes.listing


def _flag_check(f: Field, raw: pd.Series, stripped: pd.Series, present: np.ndarray, problems):
    # The target's own labels first (exact), then the usual spellings of a flag.
    flags = pd.Series(np.nan, index=raw.index, dtype="object")
    if f.categories:
        labelled = raw.isin(f.categories).to_numpy(dtype=bool)
        flags[labelled] = (raw[labelled] == f.positive_label).to_numpy()
    else:
        labelled = np.zeros(len(raw), dtype=bool)
    lowered = stripped.str.lower()
    yes = ~labelled & lowered.isin(_FLAG_TRUE).to_numpy(dtype=bool)
    no = ~labelled & lowered.isin(_FLAG_FALSE).to_numpy(dtype=bool)
    flags[yes] = True
    flags[no] = False
    bad = present & ~(labelled | yes | no)
    labels = f" or a label of the target ({_listing(f.categories)})" if f.categories else ""
    problems.add(bad, f, raw, f"not a default flag: use 0/1, true/false, yes/no{labels}")
    return flags, bad


def _months_check(f: Field, stripped: pd.Series, present: np.ndarray, raw: pd.Series, problems):
    """A history month (``YYYY-MM`` or a full date), stored as its first day."""
    # Only the distinct values are checked: a history chunk holds a few dozen months.
    codes, uniques = pd.factorize(stripped)
    uniques = pd.Series(uniques, dtype=object)
    shaped = uniques.str.fullmatch(_MONTH_PATTERN)
    normal = uniques.str.slice(0, 7) + "-01"
    full = uniques.where(uniques.str.len() == 10, normal)  # a full date must exist too
    parsed = pd.to_datetime(full.where(shaped.fillna(False).astype(bool), ""), format="%Y-%m-%d", errors="coerce")
    good = parsed.notna().to_numpy()
    bad = present & ~good[codes]
    problems.add(bad, f, raw, "not a month (YYYY-MM or YYYY-MM-DD)")
    text = pd.Series(
        pa.array(normal.to_numpy(dtype=object), type=pa.large_string()).take(pa.array(codes)), dtype=raw.dtype
    )
    return text.set_axis(raw.index), bad


def observed_on_default(schema: DatasetSchema) -> date:
    """The date outcomes read from an applicant file's target column are observed
    on: the schema's ``outcome_observed_on``, else today."""
    from django.utils import timezone

    declared = schema.definition.get("outcome_observed_on")
    return date.fromisoformat(declared) if declared else timezone.localdate()
