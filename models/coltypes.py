"""Column types of a dataset schema: one class per type, registered in ``TYPES``.

A type knows everything that varies with it, so no caller compares type names:

- ``roles``: the schema roles that may use it (``options_problems`` checks its own options);
- ``parse``: text cells (already stripped) to stored values, with the masks of the cells
  it refuses and of those it accepted with a change (warnings), all vectorised;
- ``storage``: how a stored value is written (``integer``/``number``: a JSON number,
  ``text``: a JSON string) and ``numeric`` (numbers: banded, ranged, imputed);
- ``detect``: the options under which a sample of text parses (schema inference);
- ``model_inputs`` / ``encode``: the model features a stored column gives (a date gives
  its derived parts: months from a reference date, year, month, day of week).

Adding a type is one class and one line in ``TYPES``. Pure pandas and numpy: the
Django side (schemas, validation of files, forms) asks this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

ROLE_ID, ROLE_NUMERIC, ROLE_CATEGORICAL = "id", "numeric", "categorical"
ROLE_PII, ROLE_PROTECTED, ROLE_TARGET, ROLE_IGNORE = "pii", "protected", "target", "ignore"
ALL_ROLES = frozenset({ROLE_ID, ROLE_NUMERIC, ROLE_CATEGORICAL, ROLE_PII, ROLE_PROTECTED, ROLE_TARGET, ROLE_IGNORE})

_NAN_INF = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
_INTEGER_LIMIT = 2**53  # integers above this are not exact as JSON numbers or floats
DERIVED_SEPARATOR = "__"  # a derived model input is named <column>__<part>


@dataclass
class Parsed:
    """A parsed column: ``values`` (float64 with NaN for numbers, str with "" for
    text), ``problems`` (mask of refused cells, message) and ``warnings`` (mask of
    cells accepted with a change, message)."""

    values: pd.Series
    problems: list[tuple[np.ndarray, str]] = field(default_factory=list)
    warnings: list[tuple[np.ndarray, str]] = field(default_factory=list)

    def bad(self) -> np.ndarray:
        out = np.zeros(len(self.values), dtype=bool)
        for mask, _ in self.problems:
            out |= mask
        return out


def listing(items: Sequence[str], shown: int = 8) -> str:
    text = ", ".join(items[:shown])
    return text + (f", … ({len(items)} in all)" if len(items) > shown else "")


class ColumnType:
    """A column type. Subclasses set the class attributes and override what differs."""

    name: ClassVar[str]
    roles: ClassVar[frozenset[str]]
    storage: ClassVar[str] = "text"  # "integer" | "number" | "text"
    form: ClassVar[str] = "text"  # the input a form shows: "integer" | "number" | "choice" | "date" | "text"
    exact: ClassVar[bool] = False  # parse the cell as written (True) or trimmed of spaces

    @property
    def numeric(self) -> bool:
        return self.storage in ("integer", "number")

    def options_problems(self, column: Mapping[str, Any]) -> list[str]:
        return []

    def parse(self, column: Mapping[str, Any], text: pd.Series, present: np.ndarray) -> Parsed:
        return Parsed(values=text)

    def detect(self, sample: pd.Series) -> dict | None:
        """Options under which every non-empty cell of ``sample`` parses, or None."""
        return None

    def model_inputs(self, column: Mapping[str, Any]) -> list[dict]:
        """The model features this column gives, as column definitions."""
        return [dict(column)]

    def encode(self, column: Mapping[str, Any], stored: pd.Series) -> dict[str, pd.Series]:
        """Stored values of this column to the model features of ``model_inputs``."""
        if column["role"] == ROLE_NUMERIC:
            return {column["name"]: pd.to_numeric(stored, errors="coerce").astype("float64")}
        return {column["name"]: stored}


def _bounds_problems(column: Mapping[str, Any]) -> list[str]:
    problems = []
    for bound in ("min", "max"):
        if bound in column and (not isinstance(column[bound], (int, float)) or isinstance(column[bound], bool)):
            problems.append(f"{bound!r} must be a number.")
    low, high = column.get("min"), column.get("max")
    if isinstance(low, (int, float)) and isinstance(high, (int, float)) and low > high:
        problems.append("'min' is above 'max'.")
    return problems


def _fast_float(text: pd.Series) -> np.ndarray:
    """Text to float64, NaN where empty or no number. Arrow parses a clean column
    twenty times faster than pandas; any odd cell sends the column to pandas."""
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(text, type=pa.large_string())
    try:
        return pc.cast(pc.if_else(pc.equal(array, ""), None, array), pa.float64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


class NumberType(ColumnType):
    """A number as written in the file: optional ``decimal`` (default "."),
    ``thousands`` separator and ``currency`` symbols (a string or a list), with
    ``min``/``max`` on the number read."""

    roles = frozenset({ROLE_NUMERIC, ROLE_PROTECTED, ROLE_IGNORE})
    storage = "number"
    form = "number"
    defaults: ClassVar[dict] = {}
    whole = False

    def _opts(self, column: Mapping[str, Any]) -> tuple[str, str, list[str]]:
        decimal = column.get("decimal", self.defaults.get("decimal", "."))
        thousands = column.get("thousands", self.defaults.get("thousands", ""))
        currency = column.get("currency", self.defaults.get("currency", []))
        return decimal, thousands or "", [currency] if isinstance(currency, str) else list(currency)

    def options_problems(self, column):
        problems = _bounds_problems(column)
        decimal, thousands, currency = self._opts(column)
        if not isinstance(decimal, str) or len(decimal) != 1:
            problems.append("'decimal' must be one character.")
        if not isinstance(thousands, str) or len(thousands) > 1 or (thousands and thousands == decimal):
            problems.append("'thousands' must be one character other than the decimal separator.")
        if not all(isinstance(c, str) and c for c in currency):
            problems.append("'currency' must be a symbol or a list of symbols.")
        return problems

    def _normalise(self, column, text: pd.Series) -> tuple[pd.Series, np.ndarray]:
        """Plain numbers ("-1234.5") and the mask of cells whose grouping is wrong."""
        decimal, thousands, currency = self._opts(column)
        misgrouped = np.zeros(len(text), dtype=bool)
        if not (currency or thousands or decimal != "."):
            return text, misgrouped
        out = text
        if currency:
            for symbol in currency:
                out = out.str.replace(symbol, "", regex=False)
            # "(1,234.00)" is how accounts write a negative amount
            negative = out.str.fullmatch(r"\(.*\)").fillna(False).to_numpy(dtype=bool)
            if negative.any():
                out = out.where(~negative, "-" + out.str.slice(1, -1))
            out = out.str.strip()
        if thousands:
            grouped = out.str.contains(thousands, regex=False).to_numpy(dtype=bool)
            if grouped.any():
                d, t = re.escape(decimal), re.escape(thousands)
                shape = rf"[+-]?\d{{1,3}}(?:{t}\d{{3}})+(?:{d}\d*)?"
                well = out.str.fullmatch(shape).fillna(False).to_numpy(dtype=bool)
                misgrouped = grouped & ~well
                out = out.str.replace(thousands, "", regex=False)
        if decimal != ".":
            out = out.str.replace(".", "\x00", regex=False).str.replace(decimal, ".", regex=False)
        return out, misgrouped

    def _number(self, column, text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        plain, misgrouped = self._normalise(column, text)
        array = _fast_float(plain)
        if misgrouped.any():
            array = np.where(misgrouped, np.nan, array)
        return array, misgrouped

    def _expected(self, column) -> str:
        decimal, thousands, currency = self._opts(column)
        if not (currency or thousands or decimal != "."):
            return "not a number"
        example = f"{currency[0] if currency else ''}1{thousands}234{decimal}50"
        return f"not a number written like {example}"

    def parse(self, column, text, present):
        array, _ = self._number(column, text)
        out = Parsed(values=pd.Series(array, index=text.index))
        odd = present & ~np.isfinite(array)
        nan_inf = np.zeros(len(array), dtype=bool)
        if odd.any():  # tell "nan"/"inf" written out (or overflowing) from text that is no number
            at = np.flatnonzero(odd)
            nan_inf[at] = text.iloc[at].str.lower().isin(_NAN_INF).to_numpy(dtype=bool) | np.isinf(array[at])
        out.problems.append((nan_inf, "NaN and infinity are not allowed"))
        out.problems.append((odd & ~nan_inf, self._expected(column)))
        ok = present & ~odd
        if self.whole:
            with np.errstate(invalid="ignore"):
                fractional = ok & ((np.floor(array) != array) | (np.abs(array) > _INTEGER_LIMIT))
            out.problems.append((fractional, "not a whole number"))
            ok &= ~fractional
        with np.errstate(invalid="ignore"):
            if column.get("min") is not None:
                low = ok & (array < column["min"])
                minimum = column["min"]
                out.problems.append(
                    (low, "negative values are not allowed" if minimum == 0 else f"below the minimum {minimum}")
                )
            if column.get("max") is not None:
                out.problems.append((ok & (array > column["max"]), f"above the maximum {column['max']}"))
        bad = out.bad()
        out.values = pd.Series(np.where(present & ~bad, array, np.nan), index=text.index)
        return out

    def detect(self, sample):
        present = sample[sample != ""]
        if not len(present):
            return None
        for options in self._candidates(present):
            array, _ = self._number(options, present)
            if np.isfinite(array).all() and (not self.whole or (np.floor(array) == array).all()):
                return options
        return None

    def _candidates(self, present: pd.Series) -> list[dict]:
        return [{}]


class IntegerType(NumberType):
    """A whole number."""

    name = "integer"
    roles = NumberType.roles | {ROLE_ID}
    storage = "integer"
    form = "integer"
    whole = True


class FloatType(NumberType):
    """A number, whole or not."""

    name = "float"


_CURRENCY_SYMBOLS = ("$", "€", "£", "¥", "CHF", "USD", "EUR", "GBP")


class MoneyType(NumberType):
    """An amount of money as people write it: ``$60,000.00``, ``1.234,50 €``,
    ``(500.00)`` for a negative amount. Defaults: "$", thousands ",", decimal "."."""

    name = "money"
    defaults: ClassVar[dict] = {"currency": ["$"], "thousands": ",", "decimal": "."}

    def _candidates(self, present):
        symbols = [s for s in _CURRENCY_SYMBOLS if present.str.contains(s, regex=False).any()]
        if not symbols and not present.str.contains(r"\d,\d{3}", regex=True).any():
            return []  # a plain number is a float, not money
        currency = symbols or ["$"]
        return [
            {"currency": currency, "thousands": ",", "decimal": "."},
            {"currency": currency, "thousands": ".", "decimal": ","},
            {"currency": currency, "thousands": " ", "decimal": ","},
        ]


class PercentageType(NumberType):
    """A percentage, stored as a fraction: ``12.5%`` and ``12.5`` are both 0.125
    (``min``/``max`` bound the fraction). ``decimal`` as for numbers."""

    name = "percentage"

    def _number(self, column, text):
        stripped = text.str.rstrip("%").str.rstrip()
        array, misgrouped = super()._number(column, stripped)
        return array / 100.0, misgrouped

    def _expected(self, column):
        return "not a percentage (like 12.5% or 12.5)"

    def _candidates(self, present):
        return [{}] if present.str.endswith("%").mean() > 0.5 else []


_TRUE = ("1", "true", "t", "yes", "y")
_FALSE = ("0", "false", "f", "no", "n")


class BooleanType(ColumnType):
    """A yes/no value, stored as 1/0. Spellings (case-insensitive) default to
    1/true/t/yes/y and 0/false/f/no/n; ``true``/``false`` lists replace them."""

    name = "boolean"
    roles = frozenset({ROLE_NUMERIC, ROLE_PROTECTED, ROLE_IGNORE})
    storage = "integer"
    form = "integer"

    def _spellings(self, column) -> tuple[set[str], set[str]]:
        true = {str(v).lower() for v in column.get("true", _TRUE)}
        false = {str(v).lower() for v in column.get("false", _FALSE)}
        return true, false

    def options_problems(self, column):
        true, false = self._spellings(column)
        return ["'true' and 'false' spellings overlap."] if true & false else []

    def parse(self, column, text, present):
        true, false = self._spellings(column)
        lowered = text.str.lower()
        yes = lowered.isin(true).to_numpy(dtype=bool)
        no = lowered.isin(false).to_numpy(dtype=bool)
        values = pd.Series(np.where(yes, 1.0, np.where(no, 0.0, np.nan)), index=text.index)
        message = f"not a yes/no value: use {'/'.join(sorted(true))} or {'/'.join(sorted(false))}"
        return Parsed(values=values, problems=[(present & ~(yes | no), message)])

    def detect(self, sample):
        present = set(sample[sample != ""].str.lower().unique())
        if len(present) == 2 and present <= set(_TRUE) | set(_FALSE) and present & set(_TRUE) and present & set(_FALSE):
            return {}
        return None


class CategoryType(ColumnType):
    """One of the declared ``categories`` (exact text). ``unseen``: "reject" (the
    default: a problem) or "other" (stored as ``other``, default "other", and
    counted as a warning)."""

    name = "category"
    roles = frozenset({ROLE_CATEGORICAL, ROLE_PROTECTED, ROLE_TARGET, ROLE_IGNORE})
    form = "choice"
    exact = True  # a label is matched exactly as written

    def options_problems(self, column):
        problems = []
        categories = column.get("categories")
        if (
            not isinstance(categories, list)
            or not categories
            or not all(isinstance(c, str) for c in categories)
            or len(set(categories)) != len(categories)
        ):
            problems.append("'categories' must be a non-empty list of distinct strings.")
        unseen = column.get("unseen", "reject")
        if unseen not in ("reject", "other"):
            problems.append("'unseen' must be 'reject' or 'other'.")
        elif unseen == "other" and column.get("role") == ROLE_TARGET:
            problems.append("a target's labels cannot be mapped to 'other'.")
        if not isinstance(column.get("other", "other"), str):
            problems.append("'other' must be a string.")
        return problems

    def parse(self, column, text, present):
        categories = tuple(column.get("categories") or ())
        unknown = present & ~text.isin(categories).to_numpy(dtype=bool)
        if column.get("unseen") == "other" and column.get("role") != ROLE_TARGET:
            other = column.get("other", "other")
            values = text.where(~unknown, other)
            return Parsed(values=values, warnings=[(unknown, f"not a declared category: stored as {other!r}")])
        label = "a label of the target" if column.get("role") == ROLE_TARGET else "one of the declared categories"
        return Parsed(values=text, problems=[(unknown, f"not {label}: {listing(categories)}")])

    def model_inputs(self, column):
        inputs = dict(column)
        if column.get("unseen") == "other":
            other = column.get("other", "other")
            categories = list(column.get("categories") or [])
            inputs["categories"] = categories + ([other] if other not in categories else [])
        return [inputs]


class StringType(ColumnType):
    """Free text, optional ``max_length``."""

    name = "string"
    roles = frozenset({ROLE_ID, ROLE_PII, ROLE_PROTECTED, ROLE_IGNORE})

    def options_problems(self, column):
        length = column.get("max_length")
        ok = length is None or (isinstance(length, int) and not isinstance(length, bool) and length > 0)
        return [] if ok else ["'max_length' must be a positive integer."]

    def parse(self, column, text, present):
        out = Parsed(values=text)
        if column.get("max_length"):
            too_long = present & (text.str.len() > column["max_length"]).to_numpy(dtype=bool)
            out.problems.append((too_long, f"longer than {column['max_length']} characters"))
        return out


ISO_DATE = "%Y-%m-%d"
DATE_PARTS = ("months_from_reference", "year", "month", "day_of_week")
_DETECT_DATE_FORMATS = (
    ISO_DATE, "%d-%b-%y", "%d-%b-%Y", "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y", "%d/%m/%y", "%Y/%m/%d",
    "%d.%m.%Y", "%Y%m%d", "%b %d, %Y", "%d %b %Y",
)  # fmt: skip
_TWO_DIGIT_YEAR = re.compile(r"%y")


class DateType(ColumnType):
    """A calendar date, stored as ISO text (``YYYY-MM-DD``). ``formats``: strftime
    patterns tried in order (default ISO); ``two_digit_year_pivot``: the latest year
    a two-digit year may mean (2025: "26" is 1926; default Python's 1969-2068).

    As a ``numeric`` column a date feeds the models through ``derive``, a list of
    ``months_from_reference`` (months from ``reference``, default 2000-01-01),
    ``year``, ``month``, ``day_of_week`` (default ``["months_from_reference"]``); an
    empty list stores the date without making it a model input (an application
    date kept for out-of-time splits)."""

    name = "date"
    roles = frozenset({ROLE_NUMERIC, ROLE_PII, ROLE_PROTECTED, ROLE_IGNORE})
    form = "date"

    def options_problems(self, column):
        problems = []
        formats = column.get("formats", [ISO_DATE])
        if not isinstance(formats, list) or not formats or not all(isinstance(f, str) and "%" in f for f in formats):
            problems.append("'formats' must be a non-empty list of strftime patterns (like '%d-%b-%y').")
        pivot = column.get("two_digit_year_pivot")
        if pivot is not None and (not isinstance(pivot, int) or isinstance(pivot, bool) or not 1900 <= pivot <= 2200):
            problems.append("'two_digit_year_pivot' must be a year (like 2025).")
        derive = column.get("derive", ["months_from_reference"])
        if not isinstance(derive, list) or not set(derive) <= set(DATE_PARTS):
            problems.append(f"'derive' must be a list of {', '.join(DATE_PARTS)}.")
        try:
            pd.Timestamp(column.get("reference", "2000-01-01"))
        except (TypeError, ValueError):
            problems.append("'reference' must be an ISO date.")
        return problems

    def parse(self, column, text, present):
        # Each distinct value once: a chunk holds a few thousand distinct dates at most.
        codes, uniques = pd.factorize(text)
        formats = column.get("formats", [ISO_DATE])
        # ISO is also taken whatever the declared formats: it is what the service itself
        # writes (stored values, the API, forms), and it cannot be misread.
        parsed = dates_parse(
            pd.Series(uniques, dtype=object),
            formats if ISO_DATE in formats else [*formats, ISO_DATE],
            column.get("two_digit_year_pivot"),
        )
        iso = parsed.dt.strftime(ISO_DATE).fillna("").to_numpy(dtype=object)
        good = parsed.notna().to_numpy()
        values = pd.Series(iso[codes] if len(codes) else np.array([], dtype=object), index=text.index, dtype=object)
        shown = " or ".join(f.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD") for f in formats[:3])
        bad = present & ~(good[codes] if len(codes) else np.zeros(0, dtype=bool))
        values[bad | ~present] = ""
        return Parsed(values=values, problems=[(bad, f"not a date ({shown})")])

    def detect(self, sample):
        present = pd.Series(sample[sample != ""].unique(), dtype=object)
        if not len(present) or not present.str.contains(r"\d").all():
            return None
        for fmt in _DETECT_DATE_FORMATS:
            parsed = dates_parse(present, [fmt], None)
            if parsed.notna().all():
                options: dict[str, Any] = {"formats": [fmt]}
                if "%y" in fmt:
                    options["two_digit_year_pivot"] = pd.Timestamp.today().year
                return options
        return None

    def model_inputs(self, column):
        derive = column.get("derive", ["months_from_reference"]) if column["role"] == ROLE_NUMERIC else []
        return [
            {"name": f"{column['name']}{DERIVED_SEPARATOR}{part}", "role": ROLE_NUMERIC, "type": "float",
             "nullable": bool(column.get("nullable")), "derived_from": column["name"]}
            for part in derive
        ]  # fmt: skip

    def encode(self, column, stored):
        dates = pd.to_datetime(stored.where(stored.astype(bool), None), format=ISO_DATE, errors="coerce")
        reference = pd.Timestamp(column.get("reference", "2000-01-01"))
        parts = {
            "months_from_reference": (dates.dt.year - reference.year) * 12 + (dates.dt.month - reference.month),
            "year": dates.dt.year,
            "month": dates.dt.month,
            "day_of_week": dates.dt.day_of_week,
        }
        return {
            item["name"]: parts[item["name"].rsplit(DERIVED_SEPARATOR, 1)[1]].astype("float64")
            for item in self.model_inputs(column)
        }


def dates_parse(text: pd.Series, formats: Sequence[str], pivot: int | None) -> pd.Series:
    """Text to Timestamps (NaT where no format fits), each format tried in order.
    ISO dates must have their two-digit month and day (strptime also takes "1")."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    todo = np.ones(len(text), dtype=bool)
    for fmt in formats:
        if not todo.any():
            break
        candidates = text[todo]
        if fmt == ISO_DATE:
            candidates = candidates.where(candidates.str.fullmatch(r"\d{4}-\d{2}-\d{2}").fillna(False), "")
        parsed = pd.to_datetime(candidates, format=fmt, errors="coerce")
        if pivot is not None and _TWO_DIGIT_YEAR.search(fmt):
            late = parsed.dt.year > pivot
            if late.any():
                parsed = parsed.where(~late, parsed - pd.DateOffset(years=100))
        found = parsed.notna().to_numpy()
        at = np.flatnonzero(todo)[found]
        out.iloc[at] = parsed[found].to_numpy()
        todo[at] = False
    return out


TYPES: dict[str, ColumnType] = {
    t.name: t
    for t in (IntegerType(), FloatType(), MoneyType(), PercentageType(), BooleanType(), CategoryType(), StringType(), DateType())
}  # fmt: skip

# The type a column gets when its schema entry names none.
DEFAULT_TYPE = {
    ROLE_ID: "string", ROLE_NUMERIC: "float", ROLE_CATEGORICAL: "category", ROLE_PII: "string",
    ROLE_TARGET: "category", ROLE_IGNORE: "string",
}  # fmt: skip


def column_type(column: Mapping[str, Any]) -> ColumnType:
    return TYPES[column.get("type") or DEFAULT_TYPE.get(column["role"], "float")]


def model_input_columns(columns: Sequence[Mapping[str, Any]], roles: Sequence[str]) -> list[dict]:
    """The model features of the schema's columns with these roles, derived ones included."""
    return [item for c in columns if c["role"] in roles for item in column_type(c).model_inputs(c)]


def encode_frame(columns: Sequence[Mapping[str, Any]], rows: list[dict], roles: Sequence[str]) -> pd.DataFrame:
    """The model's static input frame from stored feature dicts: one column per
    model feature (derived date parts included); missing keys are missing values."""
    inputs = [c for c in columns if c["role"] in roles]
    stored = pd.DataFrame.from_records(rows, columns=[c["name"] for c in inputs])
    encoded: dict[str, pd.Series] = {}
    for column in inputs:
        encoded.update(column_type(column).encode(column, stored[column["name"]]))
    return pd.DataFrame(encoded, index=stored.index)
