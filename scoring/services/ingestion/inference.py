"""Proposing a schema from a sample of a file (``manage.py infer_schema``, the API, the portal).

The proposal is a starting point for a person to review, never applied by itself:
each column gets a type from the registry (:mod:`models.coltypes`; the first type
under which nearly all of the sample parses, with its money or date format), a
role (id, model feature, personal data, target, or ignore for free text and dates
of unknown timing) and the reasons for both. High-cardinality categories keep the
``top`` most frequent and map the rest to "other"; the frequencies are in the
profile. The same readers as imports read the sample, so what is proposed is what
an import will see.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models import coltypes
from scoring.services.errors import ForbiddenError

from .readers import FileProblem, encoding_resolve, file_format, table_reader_open
from .run import IngestionError, import_source_readable, import_upload_discard, import_upload_store

SAMPLE_ROWS = 50_000
TOP_CATEGORIES = 50
MAX_CATEGORIES = 5_000  # more distinct values than this in the sample: free text
PARSE_SHARE = 0.99  # a type is proposed when this share of the sample's cells parse under it

_PII_NAMES = re.compile(
    r"(^|_)(full_?name|first_?name|last_?name|surname|given_?name|name|e_?mail|phone|mobile|tel(ephone)?|address|"
    r"street|post_?code|zip(_?code)?|ssn|national_?id|passport|tax_?id|date_?of_?birth|dob|birth_?date|iban)($|_)",
    re.IGNORECASE,
)
_PII_PATTERNS = {
    "an e-mail address": r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}",
    "a phone number": r"\+\d[\d\s().-]{7,}\d|\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}",
}
_ID_NAMES = re.compile(r"(^|_)(id|nr|no|num|number|key|ref)(_?chk_?dgt)?$|^id_|loan_?nr", re.IGNORECASE)
_TARGET_NAMES = re.compile(
    r"(^|_)(default(ed)?|target|label|outcome|bad|status|mis_?status|creditability|charged_?off|y)$", re.IGNORECASE
)
_POSITIVE_LABELS = re.compile(r"^(1|y|yes|true|bad|default(ed)?|chg_?off|charged?[ _-]?off|written[ _-]?off)$", re.I)
_CODE_NAMES = re.compile(r"(code|naics|sic|zip|type|class|cat(egory)?|state|region|sector)", re.IGNORECASE)
_TEXT_NAMES = re.compile(r"(name|desc(ription)?|comment|note|text|address|city|bank$)", re.IGNORECASE)
_APPLICATION_DATE_NAMES = re.compile(r"(approv|appl(y|ied|ication)|orig|open(ed)?|request)", re.IGNORECASE)

# Types tried in order: the first under which the sample parses wins.
_TRY_ORDER = ("boolean", "integer", "float", "money", "percentage", "date")


def _camel_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())


def _type_detect(present: pd.Series) -> tuple[str, dict, int] | None:
    """The first type (with options) under which at least PARSE_SHARE of the cells
    parse, and the number of cells that would still be refused."""
    if not len(present):
        return None
    distinct = pd.Series(present.unique(), dtype=object)
    for name in _TRY_ORDER:
        kind = coltypes.TYPES[name]
        options = kind.detect(distinct)
        if options is None:
            options = _mostly(kind, distinct, present)
        if options is None:
            continue
        column = {"name": "x", "role": "ignore", "type": name, **options}
        parsed = kind.parse(column, present, np.ones(len(present), dtype=bool))
        refused = int(parsed.bad().sum())
        if refused <= (1 - PARSE_SHARE) * len(present):
            return name, options, refused
    return None


def _mostly(kind: coltypes.ColumnType, distinct: pd.Series, present: pd.Series) -> dict | None:
    """Options under which nearly all distinct values parse (a few odd cells, like
    the year ``1976A``, should not hide that the column is numbers)."""
    if len(distinct) < 20:
        return None
    probe = distinct.sample(min(len(distinct), 2000), random_state=0)
    for _ in range(3):
        options = kind.detect(probe)
        if options is not None:
            return options
        column = {"name": "x", "role": "ignore", "type": kind.name}
        keep = ~kind.parse(column, probe, np.ones(len(probe), dtype=bool)).bad()
        # Most distinct values must parse; whether the odd ones are rare cells is
        # decided over all cells by the caller.
        if keep.mean() < 0.8 or keep.all():
            return None
        probe = probe[keep]
    return None


def _pii_reason(name: str, present: pd.Series) -> str | None:
    if _PII_NAMES.search(_camel_snake(name)):
        return "its name is that of personal data"
    sample = present.head(1000)
    for what, pattern in _PII_PATTERNS.items():
        if len(sample) and sample.str.fullmatch(pattern).mean() > 0.9:
            return f"its values look like {what}"
    return None


def _column_propose(name: str, raw: pd.Series, *, top: int) -> dict[str, Any]:
    text = raw.str.strip()
    present = text[text != ""]
    rows = len(text)
    counts = present.value_counts()
    profile: dict[str, Any] = {
        "name": name,
        "missing": int(rows - len(present)),
        "distinct": len(counts),
        "frequencies": [{"value": str(v), "count": int(n)} for v, n in counts.head(20).items()],
        "reasons": [],
    }
    column: dict[str, Any] = {"name": name}
    snake = _camel_snake(name)
    unique = len(present) == rows and len(counts) == rows and rows > 1
    # A unique column named like an id is the id, whatever its values look like.
    pii = None if (unique and _ID_NAMES.search(snake)) else _pii_reason(name, present)
    detected = _type_detect(present)

    if pii:
        column.update(role="pii", type="string")
        if detected and detected[0] == "date":
            column.update(type="date", **detected[1])
        profile["reasons"].append(f"personal data: {pii}")
    elif detected and detected[0] == "date":
        column.update(type="date", **detected[1])
        if _APPLICATION_DATE_NAMES.search(snake):
            column.update(role="numeric", derive=[])
            profile["reasons"].append(
                "a date, probably the application's: stored (for out-of-time splits), not a model input; "
                'add "derive" parts to use it as one'
            )
        else:
            column["role"] = "ignore"
            profile["reasons"].append(
                "a date: ignored until you say it is known at application time (a later date leaks the outcome)"
            )
    elif detected and detected[0] != "boolean" and not _CODE_NAMES.search(snake):
        column.update(role="numeric", type=detected[0], **detected[1])
        profile["reasons"].append(f"{detected[0]} in {len(present) - detected[2]:,} of {len(present):,} cells")
    elif len(counts) and (len(counts) <= MAX_CATEGORIES and len(counts) <= max(0.5 * len(present), 20)):
        if _TEXT_NAMES.search(snake) and len(counts) > top:
            column.update(role="ignore", type="string")
            profile["reasons"].append("free text (by its name and many distinct values)")
        else:
            categories = [str(v) for v in counts.index[:top]]
            column.update(role="categorical", type="category", categories=categories)
            if len(counts) > top:
                column["unseen"] = "other"
                profile["reasons"].append(
                    f"{len(counts):,} distinct values: the {top} most frequent kept "
                    f"({counts.iloc[:top].sum() / max(len(present), 1):.0%} of the cells), the rest stored as 'other'"
                )
            else:
                column["unseen"] = "reject"
                profile["reasons"].append(f"a category of {len(counts)} values")
    else:
        column.update(role="ignore", type="string")
        profile["reasons"].append("free text")
    if detected and detected[2]:
        profile["reasons"].append(f"{detected[2]:,} cell(s) of the sample do not parse and will be reported")
    if profile["missing"] and column["role"] not in ("id",):
        column["nullable"] = True
    profile["unique"] = unique
    profile["proposed"] = column
    return profile


def _id_choose(profiles: list[dict]) -> dict | None:
    unique = [p for p in profiles if p["unique"] and p["proposed"]["role"] != "pii"]
    named = [p for p in unique if _ID_NAMES.search(_camel_snake(p["name"]))]
    candidates = named or unique
    return candidates[0] if candidates else None


def _target_candidates(profiles: list[dict]) -> list[dict]:
    out = []
    for p in profiles:
        named = bool(_TARGET_NAMES.search(_camel_snake(p["name"])))
        values = [f["value"] for f in p["frequencies"]]
        if named and 2 <= p["distinct"] <= 10:
            positive = next((v for v in values if _POSITIVE_LABELS.match(v.replace(" ", "_"))), None)
            out.append({"name": p["name"], "labels": values, "positive_label": positive or values[-1]})
    return out


def schema_infer(
    *, path: str | Path, name: str | None = None, encoding: str = "utf-8", sample_rows: int = SAMPLE_ROWS,
    top: int = TOP_CATEGORIES,
) -> dict[str, Any]:  # fmt: skip
    """Read up to ``sample_rows`` rows of a file and propose a schema. Returns
    ``{"schema": <document>, "columns": [profile...], "targets": [...], "rows_sampled": n}``;
    the schema is valid as it stands or says in ``"review"`` what a person must decide."""
    path = Path(path)
    if not path.is_file():
        raise IngestionError(f"{path} does not exist or is not a file.")
    try:
        fmt = file_format(path)
        reader = table_reader_open(path, fmt=fmt, encoding=encoding_resolve(encoding), chunk_rows=sample_rows)
        frame = next(iter(reader.chunks()), (0, pd.DataFrame(columns=reader.columns)))[1]
    except FileProblem as problem:
        raise IngestionError("; ".join(message for _, _, message in problem.errors)) from None
    except LookupError:
        raise IngestionError(f"Unknown encoding {encoding!r}.") from None
    frame = frame.head(sample_rows)
    profiles = [_column_propose(column, frame[column].astype(str), top=top) for column in frame.columns]
    review: list[str] = []

    chosen = _id_choose(profiles)
    if chosen is None:
        review.append("no column is unique in the sample: choose the id column (role 'id')")
    else:
        chosen["proposed"] = {"name": chosen["name"], "role": "id", "type": "string"}
        chosen["reasons"].insert(0, "the id: unique in the sample")
    targets = _target_candidates([p for p in profiles if p is not chosen])
    if targets:
        best = targets[0]
        profile = next(p for p in profiles if p["name"] == best["name"])
        profile["proposed"] = {
            "name": best["name"], "role": "target", "type": "category",
            "categories": [f["value"] for f in profile["frequencies"]][: profile["distinct"]],
            "positive_label": best["positive_label"],
        }  # fmt: skip
        profile["reasons"].insert(
            0,
            f"the target (by its name); {profile['missing']:,} row(s) without a label are applications to score; "
            f"check that {best['positive_label']!r} means default",
        )
        if profile["distinct"] > 2:
            review.append(
                f"target {best['name']!r} has {profile['distinct']} labels: keep those with an outcome, "
                "the positive label meaning default"
            )
    else:
        review.append("no target column found: add one to train models (a schema without one imports applications)")
    columns = [p["proposed"] for p in profiles]
    application = next((c["name"] for c in columns if c.get("type") == "date" and c.get("derive") == []), None)
    document: dict[str, Any] = {
        "name": name or re.sub(r"[^a-z0-9]+", "_", path.name.split(".")[0].lower()).strip("_") or "inferred",
        "version": 1,
        "description": f"Proposed by infer_schema from {len(frame):,} rows of {path.name}; review before use.",
        "columns": columns,
    }
    if application:
        document["application_date"] = application
    if review:
        document["review"] = review
    return {"schema": document, "columns": profiles, "targets": targets, "rows_sampled": len(frame)}


def schema_infer_upload(*, user, portfolio, upload, **options) -> dict[str, Any]:
    """Infer a schema from an uploaded file meant for ``portfolio`` (the portal and the
    API): the user needs its import grant; the uploaded copy is deleted before this returns."""
    from scoring.permissions import has_portfolio_perm
    from scoring.roles import IMPORT

    if not has_portfolio_perm(user, portfolio, IMPORT):
        raise ForbiddenError(f"You may not import into portfolio {portfolio.name}.")
    source = import_upload_store(upload=upload)
    try:
        with import_source_readable(source) as path:
            return schema_infer(path=path, **options)
    finally:
        import_upload_discard(source)
