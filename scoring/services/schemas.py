"""Declared dataset schemas: validating a schema document and registering it.

A schema document is JSON::

    {"name": "german_credit", "version": 1, "description": "...",
     "outcome_observed_on": "1994-01-01",            # date given to outcomes read from the target column
     "columns": [
        {"name": "applicant_id", "role": "id"},
        {"name": "duration_in_month", "role": "numeric", "type": "integer", "min": 1, "max": 120},
        {"name": "purpose", "role": "categorical", "categories": ["car (new)", ...]},
        {"name": "age_in_years", "role": "protected", "type": "integer", "min": 18, "max": 100},
        {"name": "full_name", "role": "pii", "type": "string"},
        {"name": "creditability", "role": "target", "categories": ["good", "bad"], "positive_label": "bad"},
        {"name": "comment", "role": "ignore"}]}

Types are the registry of :mod:`models.coltypes` (one class each, with its options):
``integer``, ``float``, ``money`` (``currency``, ``thousands``, ``decimal``),
``percentage``, ``boolean`` (``true``/``false`` spellings), ``category``
(``categories``; ``unseen``: "reject" or "other"; ``category_labels``: category →
the words a reason uses, e.g. ``{"A43": "radio or television"}``), ``string`` (``max_length``),
``date`` (``formats``, ``two_digit_year_pivot``; as a numeric feature, ``derive``
and ``reference``). Any column may say ``"nullable": true``; numeric features may be
missing (the model pipeline imputes them), ids may not. A target cell may be empty:
that row is an application without a known outcome yet (``"nullable": false``
requires every label). ``"application_date": COLUMN`` names the date column that
orders applications in time (out-of-time splits).

Recourse ("what would it take", :mod:`scoring.services.recourse`) changes only
*actionable* features: a model feature may say ``"actionable": true`` (either way),
``false`` (immutable: an age, a region, a past fact), ``"increase"`` or ``"decrease"``
(a number that can only move one way, like years employed), and ``"step"`` (the
smallest change worth suggesting; default 1 for integers, a round fraction of the
training spread otherwise). The default: numeric and categorical features are
actionable, dates are not; protected, PII, id, target and ignored columns never are
(``"actionable"`` on them is refused).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.db import transaction

from models import coltypes
from models.recourse import actionable_problems
from scoring.models import DatasetSchema
from scoring.services.errors import ServiceError

TYPES = coltypes.TYPES
FEATURE_ROLES = (DatasetSchema.ROLE_NUMERIC, DatasetSchema.ROLE_CATEGORICAL)


class SchemaError(ServiceError, ValueError):
    """The schema document itself is not valid."""

    code = "invalid_schema"


def schema_document_validate(document: Any) -> dict:
    """Check a schema document and return it normalised (types filled in)."""
    if not isinstance(document, dict):
        raise SchemaError("A schema must be a JSON object.")
    problems: list[str] = []
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("'name' must be a non-empty string.")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append("'version' must be a positive integer.")
    columns = document.get("columns")
    if not isinstance(columns, list) or not columns:
        raise SchemaError("; ".join([*problems, "'columns' must be a non-empty list."]))

    seen: set[str] = set()
    normalised = []
    for position, column in enumerate(columns, start=1):
        where = f"column {position}"
        if not isinstance(column, dict):
            problems.append(f"{where}: must be an object.")
            continue
        col_name = column.get("name")
        if not isinstance(col_name, str) or not col_name.strip():
            problems.append(f"{where}: 'name' must be a non-empty string.")
            continue
        where = f"column {col_name!r}"
        if col_name in seen:
            problems.append(f"{where}: declared twice.")
        seen.add(col_name)
        role = column.get("role")
        if role not in DatasetSchema.ROLES:
            problems.append(f"{where}: role {role!r} is not one of {DatasetSchema.ROLES}.")
            continue
        ctype = (
            column.get("type") or coltypes.DEFAULT_TYPE.get(role) or ("category" if "categories" in column else "float")
        )
        kind = TYPES.get(ctype)
        if kind is None:
            problems.append(f"{where}: type {ctype!r} is not one of {sorted(TYPES)}.")
            continue
        if role not in kind.roles:
            allowed = sorted(name for name, t in TYPES.items() if role in t.roles)
            problems.append(f"{where}: type {ctype!r} is not allowed for role {role!r} ({allowed}).")
        out = {**column, "type": ctype}
        problems.extend(f"{where}: {problem}" for problem in kind.options_problems(out))
        problems.extend(f"{where}: {problem}" for problem in actionable_problems(out))
        labels = column.get("category_labels")
        if labels is not None and (
            not isinstance(labels, dict) or not all(isinstance(v, str) and v.strip() for v in labels.values())
        ):
            problems.append(f"{where}: 'category_labels' must map categories to non-empty texts.")
        if role == DatasetSchema.ROLE_TARGET and column.get("positive_label") not in (column.get("categories") or []):
            problems.append(f"{where}: 'positive_label' must be one of its categories (the label meaning default).")
        if role == DatasetSchema.ROLE_ID and column.get("nullable"):
            problems.append(f"{where}: an id column cannot be nullable.")
        normalised.append(out)

    roles = [c.get("role") for c in normalised]
    if roles.count(DatasetSchema.ROLE_ID) != 1:
        problems.append("exactly one column must have role 'id'.")
    if roles.count(DatasetSchema.ROLE_TARGET) > 1:
        problems.append("at most one column may have role 'target'.")
    if not problems and not coltypes.model_input_columns(normalised, FEATURE_ROLES):
        problems.append("at least one model feature (role 'numeric' or 'categorical') is needed.")
    dated = document.get("application_date")
    if dated is not None:
        column = next((c for c in normalised if c["name"] == dated), None)
        if column is None or column["type"] != "date" or column["role"] != DatasetSchema.ROLE_NUMERIC:
            problems.append(
                "'application_date' must name a column of type 'date' with role 'numeric' "
                '(with "derive": [] it is stored without being a model input).'
            )
    if problems:
        raise SchemaError("Invalid schema: " + "; ".join(problems))
    return {**document, "columns": normalised}


def schema_application_date(schema: DatasetSchema) -> str | None:
    """The column holding each application's date (for out-of-time splits), if declared."""
    return schema.definition.get("application_date")


@transaction.atomic
def schema_register(*, document: dict) -> DatasetSchema:
    """Store a schema version. The same name and version again must be the same
    document (returns the stored one); a different document needs a new version."""
    definition = schema_document_validate(document)
    existing = DatasetSchema.objects.filter(name=definition["name"], version=definition["version"]).first()
    if existing is not None:
        if existing.sha256 != DatasetSchema.digest(definition):
            raise SchemaError(
                f"Schema {definition['name']} v{definition['version']} already exists with other content: "
                "declare a new version instead of changing a used one."
            )
        return existing
    return DatasetSchema.objects.create(
        name=definition["name"],
        version=definition["version"],
        description=definition.get("description", ""),
        definition=definition,
    )


def schema_register_file(*, path: str | Path) -> DatasetSchema:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise SchemaError(f"Schema file {path} does not exist.") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"Schema file {path} is not valid JSON: {exc}") from None
    return schema_register(document=document)
