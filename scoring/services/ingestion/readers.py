"""Reading import files in chunks, as raw text.

Every value reaches validation as a string (CSV: exactly the text of the cell;
Parquet: the value converted to text by Arrow, a null as ""), so that one set of
vectorised checks serves both formats and nothing is silently coerced.

Row numbers follow a spreadsheet: the header is row 1, the first data row is
row 2. A CSV row is a record, so a quoted value that spans lines counts once
(rows and physical lines differ only in that case). Blank lines are rows too
(reported as empty), so that row numbers match what an editor shows.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scoring.services.errors import ServiceError

FIRST_DATA_ROW = 2  # the header is row 1
FORMAT_CSV = "csv"
FORMAT_PARQUET = "parquet"
_EXTENSIONS = {".csv": FORMAT_CSV, ".csv.gz": FORMAT_CSV, ".parquet": FORMAT_PARQUET}
REPLACEMENT_CHARACTER = "\ufffd"
_READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class ReadLimits:
    """Bounds enforced while a file is read, whatever its compression: bytes after
    decompression, the longest line of CSV (a line is read whole into memory), the
    longest cell, and the uncompressed bytes of one Parquet batch (the memory bound)."""

    decompressed_bytes: int = 8 << 30
    line_bytes: int = 4 << 20
    cell_chars: int = 100_000
    batch_bytes: int = 64 << 20

    @classmethod
    def from_settings(cls) -> ReadLimits:
        from django.conf import settings

        return cls(
            decompressed_bytes=settings.IMPORT_MAX_DECOMPRESSED_MB << 20,
            line_bytes=settings.IMPORT_MAX_LINE_KB << 10,
            cell_chars=settings.IMPORT_MAX_CELL_CHARS,
            batch_bytes=settings.IMPORT_MAX_BATCH_MB << 20,
        )


class FileProblem(ServiceError):
    """A problem that stops the file from being read any further. It becomes
    one or more file-level entries of the report: ``errors`` is a list of
    ``(row, column, message)``."""

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None, more=()):
        super().__init__(message)
        self.errors: list[tuple[int | None, str | None, str]] = [(row, column, message), *more]


def file_format(path: Path) -> str:
    name = path.name.lower()
    for extension, fmt in sorted(_EXTENSIONS.items(), key=lambda item: -len(item[0])):
        if name.endswith(extension):
            return fmt
    raise FileProblem(f"Unsupported file type {path.name!r}: use .csv, .csv.gz or .parquet.")


def encoding_resolve(encoding: str) -> str:
    """The Python codec to read CSV text with. UTF-8 is read as 'utf-8-sig', so a
    byte-order mark written by spreadsheet programs is dropped and a file without
    one reads the same. Raises LookupError for an unknown encoding."""
    name = codecs.lookup(encoding).name
    return "utf-8-sig" if name == "utf-8" else name


@dataclass(frozen=True)
class FileFacts:
    size: int
    sha256: str
    rows_estimate: int  # for the progress bar; the exact count comes from reading


def file_facts(path: Path, fmt: str) -> FileFacts:
    """Size, SHA-256 and a cheap row estimate, in one binary pass over the file
    (plus a decompressing pass for .csv.gz). For CSV the estimate counts line
    breaks, so a quoted value spanning lines makes it a little high."""
    digest = hashlib.sha256()
    newlines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(_READ_BLOCK):
            digest.update(block)
            newlines += block.count(b"\n")
            last = block[-1:]
    size = path.stat().st_size
    if fmt == FORMAT_PARQUET:
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError):
            rows = 0  # reported properly when the file is opened for reading
    else:
        if path.name.lower().endswith(".gz"):
            newlines, last = 0, b"\n"
            try:
                with gzip.open(path, "rb") as handle:
                    while block := handle.read(_READ_BLOCK):
                        newlines += block.count(b"\n")
                        last = block[-1:]
            except (OSError, EOFError):
                pass  # reported when the file is read
        lines = newlines + (0 if last == b"\n" else 1)
        rows = max(lines - 1, 0)
    return FileFacts(size=size, sha256=digest.hexdigest(), rows_estimate=rows)


class TableReader:
    """Open a file, read its header, then yield ``(offset, frame)`` chunks of at most
    ``chunk_rows`` rows: ``offset`` is the 0-based index of the chunk's first data
    row; every frame column holds strings. ``rows`` is the number of data rows
    when the format records it (Parquet), else None."""

    columns: list[str]
    rows: int | None = None

    def chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        raise NotImplementedError


def table_reader_open(
    path: Path, *, fmt: str, encoding: str, chunk_rows: int, limits: ReadLimits | None = None
) -> TableReader:
    limits = limits or ReadLimits()
    if fmt == FORMAT_PARQUET:
        return _ParquetReader(path, chunk_rows=chunk_rows, limits=limits)
    return _CsvReader(path, encoding=encoding, chunk_rows=chunk_rows, limits=limits)


class _LimitedStream(io.RawIOBase):
    """The file's bytes after decompression, refused past ``limits``: more bytes in all
    than ``decompressed_bytes``, or a line longer than ``line_bytes`` (the CSV parser
    would hold it whole in memory). Counted block by block as the parser pulls them,
    so a bomb is stopped after reading one limit's worth, never expanded in memory."""

    def __init__(self, raw, limits: ReadLimits):
        self.raw = raw
        self.limits = limits
        self.total = 0
        self.run = 0  # bytes since the last line break
        self.line = 1

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        block = self.raw.read(min(len(buffer), _READ_BLOCK))
        size = len(block)
        self.total += size
        if self.total > self.limits.decompressed_bytes:
            raise FileProblem(
                f"The file is larger than {self.limits.decompressed_bytes >> 20:,} MB once decompressed "
                "(IMPORT_MAX_DECOMPRESSED_MB); it was not read further."
            )
        last = block.rfind(b"\n")
        if last < 0:
            self.run += size
        else:
            self.line += block.count(b"\n")
            first = block.find(b"\n")
            longest = max(self.run + first, _longest_line(block, first, last), size - last - 1)
            self.run = size - last - 1
            if longest > self.limits.line_bytes:
                self._too_long()
        if self.run > self.limits.line_bytes:
            self._too_long()
        buffer[:size] = block
        return size

    def _too_long(self) -> None:
        raise FileProblem(
            f"A line near line {self.line:,} is longer than {self.limits.line_bytes >> 10:,} KB "
            "(IMPORT_MAX_LINE_KB); the file was not read further.",
        )

    def close(self) -> None:
        self.raw.close()
        super().close()


def _longest_line(block: bytes, first: int, last: int) -> int:
    if first == last:
        return 0
    return max(len(line) for line in block[first + 1 : last].split(b"\n"))


def _header_problems(columns: list[str]) -> list[tuple[int | None, str | None, str]]:
    problems: list[tuple[int | None, str | None, str]] = []
    seen: set[str] = set()
    for position, name in enumerate(columns, start=1):
        if not name.strip():
            problems.append((1, None, f"column {position} of the header has no name"))
        elif name in seen:
            problems.append((1, name, "this column appears twice in the header"))
        seen.add(name)
    return problems


class _CsvReader(TableReader):
    def __init__(self, path: Path, *, encoding: str, chunk_rows: int, limits: ReadLimits):
        self.path = path
        self.encoding = encoding
        self.chunk_rows = chunk_rows
        self.limits = limits
        self.columns = self._header()

    def _binary(self) -> _LimitedStream:
        opener = gzip.open if self.path.name.lower().endswith(".gz") else open
        return _LimitedStream(opener(self.path, "rb"), self.limits)

    def _text(self):
        return io.TextIOWrapper(io.BufferedReader(self._binary()), encoding=self.encoding, errors="replace", newline="")

    def _header(self) -> list[str]:
        try:
            with self._text() as handle:
                header = next(csv.reader(handle), None)
        except (OSError, EOFError, csv.Error) as exc:
            raise FileProblem(f"The file cannot be read as {self.encoding} CSV: {exc}") from None
        if not header:
            raise FileProblem("The file is empty: a header row naming the columns is needed.", row=1)
        if any(REPLACEMENT_CHARACTER in name for name in header):
            raise FileProblem(
                f"The header is not valid {self.encoding} text (undecodable bytes); "
                "save the file as UTF-8 or give its encoding (--encoding latin-1).",
                row=1,
            )
        problems = _header_problems(header)
        if problems:
            first, *more = problems
            raise FileProblem(first[2], row=first[0], column=first[1], more=more)
        return header

    def chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        reader = pd.read_csv(
            io.BufferedReader(self._binary()),
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            encoding=self.encoding,
            encoding_errors="replace",  # undecodable bytes become U+FFFD, reported per cell
            chunksize=self.chunk_rows,
            index_col=False,
            skip_blank_lines=False,
            compression=None,  # decompressed by _binary, where the limits are counted
        )
        offset = 0
        with reader:
            while True:
                try:
                    with warnings.catch_warnings():
                        # pandas only warns (and drops data) when the first row has more
                        # fields than the header; make that an error like later rows.
                        warnings.simplefilter("error", pd.errors.ParserWarning)
                        frame = next(reader)
                except StopIteration:
                    return
                except (pd.errors.ParserError, pd.errors.ParserWarning, csv.Error) as exc:
                    raise self._ragged_row_problem(exc) from None
                except (OSError, EOFError) as exc:
                    raise FileProblem(f"The file cannot be read: {exc}") from None
                frame.index = pd.RangeIndex(len(frame))
                yield offset, frame
                offset += len(frame)

    def _ragged_row_problem(self, exc: Exception) -> FileProblem:
        """pandas names a line, not a record; find the first record with too many
        fields ourselves (only on this error path)."""
        expected = len(self.columns)
        with self._text() as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for index, fields in enumerate(reader):
                if len(fields) > expected:
                    return FileProblem(
                        f"This row has {len(fields)} fields but the header has {expected} columns; "
                        "the rest of the file was not read.",
                        row=index + FIRST_DATA_ROW,
                    )
        return FileProblem(f"The file is not well-formed CSV: {exc}")


_PARQUET_INDEX_PREFIX = "__index_level_"  # a pandas index saved with the frame: not data


class _ParquetReader(TableReader):
    def __init__(self, path: Path, *, chunk_rows: int, limits: ReadLimits):
        self.path = path
        self.chunk_rows = chunk_rows
        self.limits = limits
        try:
            self.file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as exc:
            raise FileProblem(f"The file is not a readable Parquet file: {exc}") from None
        schema = self.file.schema_arrow
        self.columns = [name for name in schema.names if not name.startswith(_PARQUET_INDEX_PREFIX)]
        self.rows = self.file.metadata.num_rows
        problems = _header_problems(self.columns)
        for name in self.columns:
            kind = schema.field(name).type
            if pa.types.is_dictionary(kind):
                kind = kind.value_type
            if not (
                pa.types.is_string(kind)
                or pa.types.is_large_string(kind)
                or pa.types.is_integer(kind)
                or pa.types.is_floating(kind)
                or pa.types.is_boolean(kind)
                or pa.types.is_date(kind)
                or pa.types.is_timestamp(kind)
                or pa.types.is_decimal(kind)
            ):
                problems.append(
                    (1, name, f"Parquet type {kind} is not supported; use text, numbers, booleans or dates")
                )
        if problems:
            first, *more = problems
            raise FileProblem(first[2], row=first[0], column=first[1], more=more)
        self.batch_rows = self._limits_check()

    def _limits_check(self) -> int:
        """Parquet says how large its columns are once decompressed: a file over the
        limit, or whose cells of a column average more than a cell may hold, is refused
        before a page is decompressed. Returns the rows per batch that keep one batch
        under the memory bound."""
        metadata = self.file.metadata
        wanted = set(self.columns)
        total = 0
        widest = 0.0
        per_column: dict[str, int] = {}
        for g in range(metadata.num_row_groups):
            group = metadata.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                name = chunk.path_in_schema
                if name in wanted:
                    per_column[name] = per_column.get(name, 0) + chunk.total_uncompressed_size
                    total += chunk.total_uncompressed_size
        rows = max(metadata.num_rows, 1)
        if total > self.limits.decompressed_bytes:
            raise FileProblem(
                f"The file holds {total >> 20:,} MB once decompressed; at most "
                f"{self.limits.decompressed_bytes >> 20:,} MB are accepted (IMPORT_MAX_DECOMPRESSED_MB)."
            )
        cell_bytes = self.limits.cell_chars * 4  # UTF-8: at most four bytes a character
        for name, size in per_column.items():
            widest = max(widest, size / rows)
            if size / rows > cell_bytes:
                raise FileProblem(
                    f"The cells of this column average {size / rows / 1024:,.0f} KB once decompressed; a cell may "
                    f"hold at most {self.limits.cell_chars:,} characters (IMPORT_MAX_CELL_CHARS).",
                    row=1,
                    column=name,
                )
        row_bytes = max(total / rows, 1.0)
        return int(max(1, min(self.chunk_rows, self.limits.batch_bytes // row_bytes)))

    def chunks(self) -> Iterator[tuple[int, pd.DataFrame]]:
        offset = 0
        try:
            for batch in self.file.iter_batches(
                batch_size=self.batch_rows, columns=self.columns, use_pandas_metadata=False
            ):
                arrays = [_arrow_as_text(batch.column(i)) for i in range(batch.num_columns)]
                frame = pa.Table.from_arrays(arrays, names=self.columns).to_pandas()
                yield offset, frame
                offset += len(frame)
        except (pa.ArrowException, OSError) as exc:
            raise FileProblem(f"The Parquet file cannot be read past row {offset + 1}: {exc}") from None


def _arrow_as_text(array: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if pa.types.is_timestamp(array.type):
        # A date saved as a timestamp at midnight reads as the date; any other time
        # of day stays visible and fails the date check.
        text = pc.strftime(array, format="%Y-%m-%dT%H:%M:%S")
        array = pc.replace_substring_regex(text, pattern="T00:00:00$", replacement="")
    elif not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    return pc.fill_null(array, "")
