"""Turning validated chunks into the rows the bulk writers take (Arrow tables).

Feature and protected-attribute dicts are built as JSON text column by column
(Arrow string kernels), not by a ``json.dumps`` per row: a float feature is
written as a JSON float (``52300.0``), an integer one as an integer, a missing
nullable value as ``null``. The separators are those of ``json.dumps`` so the
text matches what Django writes to SQLite for the same dict.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from models import coltypes
from scoring.models import DatasetSchema

from .validation import ChunkValues, Field, FileSpec

FEATURE_ROLES = (DatasetSchema.ROLE_NUMERIC, DatasetSchema.ROLE_CATEGORICAL)


def _large(text: str) -> pa.Scalar:
    return pa.scalar(text, type=pa.large_string())


def _text(series: pd.Series) -> pa.Array:
    return pa.array(series, type=pa.large_string())


def _valid_values(chunk: ChunkValues) -> dict[str, pd.Series]:
    keep = chunk.valid
    return {name: series[keep].reset_index(drop=True) for name, series in chunk.values.items()}


def _json_texts(f: Field, series: pd.Series) -> pa.Array:
    """Each value of a column as JSON text, as its type stores it."""
    storage = coltypes.TYPES[f.type].storage if f.type in coltypes.TYPES else "text"
    if storage in ("integer", "number"):
        numbers = series.to_numpy(dtype="float64")
        missing = np.isnan(numbers)
        if storage == "integer":
            text = pc.cast(pa.array(np.where(missing, 0, numbers).astype(np.int64)), pa.large_string())
        else:
            text = pc.cast(pa.array(numbers), pa.large_string())
            whole = pc.match_substring_regex(text, r"^-?\d+$")  # Arrow writes 52300.0 as "52300"
            text = pc.if_else(whole, pc.binary_join_element_wise(text, _large(".0"), _large("")), text)
        return pc.if_else(pa.array(missing), _large("null"), text)
    text = _text(series)  # categories, free text and dates: "" is missing
    return pc.if_else(pc.equal(text, ""), _large("null"), _json_strings(text))


def _json_strings(text: pa.Array) -> pa.Array:
    """JSON string literals, as ``json.dumps(value, ensure_ascii=False)`` writes
    them: quotes and backslashes escaped with Arrow kernels; a chunk holding
    control characters is escaped value by value."""
    if pc.any(pc.match_substring_regex(text, r"[\x00-\x1f]")).as_py():
        return pa.array([json.dumps(v, ensure_ascii=False) for v in text.to_pylist()], type=pa.large_string())
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    return pc.binary_join_element_wise(_large('"'), escaped, _large('"'), _large(""))


def _json_objects(fields: list[Field], values: dict[str, pd.Series], size: int) -> pa.Array:
    if not fields:
        return pa.array(["{}"] * size, type=pa.large_string())
    parts: list = []
    for position, f in enumerate(fields):
        parts.append(_large(("{" if position == 0 else ", ") + json.dumps(f.name) + ": "))
        parts.append(_json_texts(f, values[f.name]))
    parts.append(_large("}"))
    return pc.binary_join_element_wise(*parts, _large(""))


def applicant_rows(spec: FileSpec, chunk: ChunkValues) -> tuple[pa.Table, pa.Array | None]:
    """The valid rows of an applicant chunk: the staging table of
    :func:`scoring.services.bulk.applicants_upsert` and the JSON text of each
    row's PII (None when the schema declares no PII)."""
    values = _valid_values(chunk)
    size = int(chunk.valid.sum())
    by_role: dict[str, list[Field]] = {}
    for f in spec.fields:
        by_role.setdefault(f.role, []).append(f)
    id_field = by_role[DatasetSchema.ROLE_ID][0]
    features = [f for f in spec.fields if f.role in FEATURE_ROLES]
    protected = by_role.get(DatasetSchema.ROLE_PROTECTED, [])
    target = by_role.get(DatasetSchema.ROLE_TARGET, [None])[0]
    if target is not None:  # an empty label: an application without an outcome yet
        label = values[target.name]
        defaulted = pa.array(
            (label == target.positive_label).to_numpy(dtype=bool), mask=(label == "").to_numpy(dtype=bool)
        )
    else:
        defaulted = pa.nulls(size, type=pa.bool_())
    table = pa.table(
        {
            "row_no": pa.array(np.arange(size, dtype=np.int64)),
            "external_id": _text(values[id_field.name]),
            "features": _json_objects(features, values, size),
            "protected": _json_objects(protected, values, size),
            "defaulted": defaulted,
        }
    )
    pii_fields = by_role.get(DatasetSchema.ROLE_PII, [])
    pii = _json_objects(pii_fields, values, size) if pii_fields else None
    return table, pii


def history_rows(chunk: ChunkValues) -> pa.Table:
    assert chunk.applicant_pk is not None
    keep = chunk.valid
    values = chunk.values
    return pa.table(
        {
            "applicant_id": pa.array(chunk.applicant_pk[keep]),
            "month": _text(values["month"][keep]),
            "balance": pa.array(values["balance"][keep].to_numpy(dtype="float64")),
            "amount_paid": pa.array(values["amount_paid"][keep].to_numpy(dtype="float64")),
            "days_past_due": pa.array(values["days_past_due"][keep].to_numpy(dtype="float64").astype(np.int64)),
        }
    )


def outcome_rows(chunk: ChunkValues) -> pa.Table:
    assert chunk.applicant_pk is not None
    keep = chunk.valid
    values = chunk.values
    return pa.table(
        {
            "applicant_id": pa.array(chunk.applicant_pk[keep]),
            "defaulted": pa.array(values["defaulted"][keep].to_numpy(dtype=bool)),
            "observed_on": _text(values["observed_on"][keep]),
        }
    )
