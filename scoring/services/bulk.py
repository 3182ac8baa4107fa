"""Bulk database writers for imports: set-based upserts through a staging table.

Each chunk of validated rows is loaded into a temporary staging table (PostgreSQL:
``COPY ... FROM STDIN`` of a CSV buffer; SQLite: one ``executemany``), then
merged with ``INSERT ... SELECT ... ON CONFLICT (...) DO UPDATE ... WHERE
<changed>``, so rows whose values did not change are not rewritten and can be
counted as unchanged. Callers run everything of one import inside one
transaction (:func:`staging_open` must be used inside it).

Every row gets ``portfolio_id``: it is denormalised on applicant-level tables so
that reads can be restricted by portfolio without a join.

PII goes through :func:`upsert_pii` only, which encrypts it before it is sent.

The SQL is assembled from this module's constant table and column names and
Django's quoted table names; values are parameters or ``int()``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

from scoring.models import Applicant, ApplicantPII, Outcome, RepaymentMonth


@dataclass
class WriteCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: WriteCounts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def applicant_ids_lookup(*, portfolio_id: int, external_ids: Sequence[str]) -> pd.Series:
    """The primary keys of the portfolio's applicants with these external ids, as a
    Series indexed by external id (ids not found are absent). One query with one
    parameter, however many ids."""
    parameter: list[str] | str
    if is_postgresql():
        condition, parameter = "external_id = ANY(%s)", list(external_ids)
    else:
        condition, parameter = "external_id IN (SELECT value FROM json_each(%s))", json.dumps(list(external_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT external_id, id FROM {Applicant._meta.db_table} WHERE portfolio_id = %s AND {condition}",
            [portfolio_id, parameter],
        )
        found = cursor.fetchall()
    return pd.Series([pk for _, pk in found], index=pd.Index([e for e, _ in found], dtype=object), dtype="int64")


# --- staging tables -------------------------------------------------------------------

# name -> [(column, PostgreSQL type, SQLite type)]
_STAGING = {
    "_import_applicant": [
        ("row_no", "integer", "INTEGER"),
        ("external_id", "text", "TEXT"),
        ("features", "jsonb", "TEXT"),
        ("protected", "jsonb", "TEXT"),
        ("defaulted", "boolean", "INTEGER"),
    ],
    "_import_history": [
        ("applicant_id", "bigint", "INTEGER"),
        ("month", "date", "TEXT"),
        ("balance", "double precision", "REAL"),
        ("amount_paid", "double precision", "REAL"),
        ("days_past_due", "integer", "INTEGER"),
    ],
    "_import_pii": [
        ("applicant_id", "bigint", "INTEGER"),
        ("ciphertext", "text", "TEXT"),
        ("fingerprint", "text", "TEXT"),
    ],
    "_import_outcome": [
        ("applicant_id", "bigint", "INTEGER"),
        ("defaulted", "boolean", "INTEGER"),
        ("observed_on", "date", "TEXT"),
    ],
}


class Staging:
    """The temporary tables of one import, created on first use and dropped at the
    end, and the SQL dialect. The writers below touch the database only through
    ``staging.cursor`` (never Django's thread-local ``connection``), so they may
    run on a second thread inside the import's transaction."""

    def __init__(self, db, cursor):
        self.cursor = cursor
        self.ops = db.ops
        self.postgres = db.vendor == "postgresql"
        self.created: set[str] = set()

    def table(self, model) -> str:
        return self.ops.quote_name(model._meta.db_table)

    def distinct(self, left: str, right: str) -> str:
        """SQL for "left differs from right", NULLs compared as values."""
        return f"{left} IS DISTINCT FROM {right}" if self.postgres else f"{left} IS NOT {right}"

    def now(self):
        return self.ops.adapt_datetimefield_value(timezone.now())

    def date(self, value: date):
        return self.ops.adapt_datefield_value(value)

    def fill(self, name: str, rows: pa.Table) -> None:
        """Replace the content of staging table ``name`` with ``rows`` (columns in
        the table's order)."""
        columns = _STAGING[name]
        assert rows.column_names == [c[0] for c in columns], rows.column_names
        cursor = self.cursor
        if name not in self.created:
            kind = 1 if self.postgres else 2
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
            cursor.execute(f"CREATE TEMPORARY TABLE {name} ({', '.join(f'{c[0]} {c[kind]}' for c in columns)})")
            self.created.add(name)
        else:
            cursor.execute(f"TRUNCATE {name}" if self.postgres else f"DELETE FROM {name}")
        if not rows.num_rows:
            return
        names = ", ".join(c[0] for c in columns)
        if self.postgres:
            buffer = io.BytesIO()
            pa_csv.write_csv(rows, buffer, pa_csv.WriteOptions(include_header=False))
            with cursor.copy(f"COPY {name} ({names}) FROM STDIN (FORMAT csv)") as copy:
                copy.write(buffer.getbuffer())
        else:
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(
                f"INSERT INTO {name} ({names}) VALUES ({placeholders})",
                list(zip(*(column.to_pylist() for column in rows.columns), strict=True)),
            )

    def close(self) -> None:
        for name in self.created:
            self.cursor.execute(f"DROP TABLE IF EXISTS {name}")
        self.created.clear()


@contextmanager
def staging_open() -> Iterator[Staging]:
    """Staging tables for one import; use inside the import's transaction.

    On PostgreSQL the foreign keys are checked at the end of each statement while
    it is open: Django declares them DEFERRABLE INITIALLY DEFERRED, and deferred,
    every row of a 20-million-row import would queue its checks in the server's
    memory until the commit. (Every foreign key of this project is initially
    deferred, so ``ALL DEFERRED`` afterwards restores the default.)"""
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        staging = Staging(db, cursor)
        if staging.postgres:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        yield staging
        staging.close()
        if staging.postgres:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def history_upsert(*, staging: Staging, portfolio_id: int, rows: pa.Table) -> WriteCounts:
    """Upsert repayment months by (applicant, month). ``rows``: applicant_id,
    month (ISO first day of the month), balance, amount_paid, days_past_due."""
    staging.fill("_import_history", rows)
    table = staging.table(RepaymentMonth)
    cursor = staging.cursor
    existing = 0
    if not staging.postgres:
        cursor.execute(
            f"SELECT count(*) FROM _import_history s JOIN {table} r ON r.applicant_id = s.applicant_id AND r.month = s.month"
        )
        existing = cursor.fetchone()[0]
    changed = " OR ".join(
        staging.distinct(f"{table}.{c}", f"excluded.{c}") for c in ("balance", "amount_paid", "days_past_due")
    )
    insert = (
        f"INSERT INTO {table} (portfolio_id, applicant_id, month, balance, amount_paid, days_past_due) "
        f"SELECT {int(portfolio_id)}, applicant_id, month, balance, amount_paid, days_past_due FROM _import_history WHERE true "
        "ON CONFLICT (applicant_id, month) DO UPDATE SET balance = excluded.balance, "
        "amount_paid = excluded.amount_paid, days_past_due = excluded.days_past_due "
        f"WHERE {changed}"
    )
    return _counts(staging, insert=insert, rows=rows.num_rows, existing=existing)


def outcomes_upsert(*, staging: Staging, portfolio_id: int, rows: pa.Table) -> WriteCounts:
    """Upsert outcomes by (applicant, observed_on). ``rows``: applicant_id,
    defaulted, observed_on (ISO date)."""
    staging.fill("_import_outcome", rows)
    table = staging.table(Outcome)
    cursor = staging.cursor
    existing = 0
    if not staging.postgres:
        cursor.execute(
            f"SELECT count(*) FROM _import_outcome s JOIN {table} o "
            "ON o.applicant_id = s.applicant_id AND o.observed_on = s.observed_on"
        )
        existing = cursor.fetchone()[0]
    insert = (
        f"INSERT INTO {table} (portfolio_id, applicant_id, defaulted, observed_on) "
        f"SELECT {int(portfolio_id)}, applicant_id, defaulted, observed_on FROM _import_outcome WHERE true "
        "ON CONFLICT (applicant_id, observed_on) DO UPDATE SET defaulted = excluded.defaulted "
        f"WHERE {table}.defaulted <> excluded.defaulted"
    )
    return _counts(staging, insert=insert, rows=rows.num_rows, existing=existing)


def _counts(staging: Staging, *, insert: str, rows: int, existing: int) -> WriteCounts:
    """Run the merge ``insert`` of ``rows`` staged rows and count what it did:
    PostgreSQL tells inserted from updated rows by ``xmax = 0``; SQLite counts
    both together, so ``existing`` (rows that matched before) tells them apart."""
    cursor = staging.cursor
    if staging.postgres:
        cursor.execute(
            f"WITH merged AS ({insert} RETURNING (xmax = 0) AS created) "
            "SELECT count(*) FILTER (WHERE created), count(*) FILTER (WHERE NOT created) FROM merged"
        )
        created, updated = cursor.fetchone()
    else:
        cursor.execute(insert)
        created = rows - existing
        updated = cursor.rowcount - created  # SQLite counts inserted and updated rows together
    return WriteCounts(created=created, updated=updated, unchanged=rows - created - updated)


def applicants_upsert(
    *,
    staging: Staging,
    portfolio_id: int,
    schema_id: int,
    rows: pa.Table,
    observed_on: date | None = None,
    pii: pa.Array | None = None,
) -> WriteCounts:
    """Upsert applicants by (portfolio, external_id), with the outcome read from the
    target column and the PII.

    ``rows``: row_no (0..n-1, the index into ``pii``), external_id, features and
    protected (JSON text), defaulted (null when the schema has no target).
    ``pii``: the JSON text of each row's PII (None when the schema has none). An
    applicant counts as updated when its features, protected attributes, schema,
    outcome or PII changed.
    """
    staging.fill("_import_applicant", rows)
    cursor = staging.cursor
    applicants = staging.table(Applicant)
    join = f"JOIN {applicants} a ON a.portfolio_id = {int(portfolio_id)} AND a.external_id = s.external_id"

    cursor.execute(f"SELECT a.id FROM _import_applicant s {join}")
    existing = {pk for (pk,) in cursor.fetchall()}
    now = staging.now()
    changed_sql = " OR ".join(
        staging.distinct(f"{applicants}.{c}", f"excluded.{c}")
        for c in ("schema_id", "features", "protected_attributes")
    )
    cursor.execute(
        f"INSERT INTO {applicants} (portfolio_id, external_id, schema_id, features, protected_attributes, created_at, updated_at) "
        f"SELECT {int(portfolio_id)}, external_id, {int(schema_id)}, features, protected, %s, %s FROM _import_applicant WHERE true "
        "ON CONFLICT (portfolio_id, external_id) DO UPDATE SET schema_id = excluded.schema_id, features = excluded.features, "
        "protected_attributes = excluded.protected_attributes, updated_at = excluded.updated_at "
        f"WHERE {changed_sql} RETURNING id",
        [now, now],
    )
    changed = {pk for (pk,) in cursor.fetchall()}
    created = changed - existing

    if observed_on is not None:
        outcomes = staging.table(Outcome)
        cursor.execute(
            f"INSERT INTO {outcomes} (portfolio_id, applicant_id, defaulted, observed_on) "
            f"SELECT {int(portfolio_id)}, a.id, s.defaulted, %s FROM _import_applicant s {join} "
            "WHERE s.defaulted IS NOT NULL "
            "ON CONFLICT (applicant_id, observed_on) DO UPDATE SET defaulted = excluded.defaulted "
            f"WHERE {outcomes}.defaulted <> excluded.defaulted RETURNING applicant_id",
            [staging.date(observed_on)],
        )
        changed |= {pk for (pk,) in cursor.fetchall()}

    if pii is not None:
        cursor.execute(f"SELECT s.row_no, a.id FROM _import_applicant s {join} ORDER BY s.row_no")
        pairs = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 2)
        changed |= upsert_pii(
            staging=staging, portfolio_id=portfolio_id, applicant_ids=pairs[:, 1], data=pii.take(pairs[:, 0])
        )

    updated = len(changed - created)
    return WriteCounts(created=len(created), updated=updated, unchanged=rows.num_rows - len(created) - updated)


def upsert_pii(*, staging: Staging, portfolio_id: int, applicant_ids: np.ndarray, data: pa.Array) -> set[int]:
    """Write applicants' personal data: ``data[i]`` (the JSON text of a dict of PII
    columns) belongs to applicant ``applicant_ids[i]``. This is the only function
    that writes ``ApplicantPII``: the text is encrypted here, in Python, before it
    reaches the database (a Fernet token and a keyed fingerprint per row,
    ``scoring.services.pii``), so no plain PII is ever sent to the server, not even
    to a temporary table. Returns the ids of the applicants whose PII was created
    or changed.

    Encryption is the expensive part (about 17 µs a row), so only rows whose
    fingerprint differs from the stored one are encrypted and sent: a re-import of
    unchanged data costs a fingerprint per row and one comparison query."""
    from scoring.services.pii import pii_encrypt_many, pii_fingerprints

    if not len(applicant_ids):
        return set()
    texts = data.to_pylist()
    fingerprints = pii_fingerprints(texts)
    staging.fill(
        "_import_pii",
        pa.table(
            {
                "applicant_id": pa.array(applicant_ids),
                "ciphertext": pa.nulls(len(texts), type=pa.large_string()),
                "fingerprint": pa.array(fingerprints, type=pa.large_string()),
            }
        ),
    )
    table = staging.table(ApplicantPII)
    staging.cursor.execute(
        f"SELECT s.applicant_id FROM _import_pii s LEFT JOIN {table} t ON t.applicant_id = s.applicant_id "
        f"WHERE {staging.distinct('t.fingerprint', 's.fingerprint')}"
    )
    differing = {pk for (pk,) in staging.cursor.fetchall()}
    if not differing:
        return set()
    rows = [i for i, pk in enumerate(applicant_ids.tolist()) if pk in differing]
    tokens, _ = pii_encrypt_many([texts[i] for i in rows])
    staging.fill(
        "_import_pii",
        pa.table(
            {
                "applicant_id": pa.array(applicant_ids[rows]),
                "ciphertext": pa.array(tokens, type=pa.large_string()),
                "fingerprint": pa.array([fingerprints[i] for i in rows], type=pa.large_string()),
            }
        ),
    )
    now = staging.now()
    staging.cursor.execute(
        f"INSERT INTO {table} (applicant_id, portfolio_id, ciphertext, fingerprint, updated_at) "
        f"SELECT applicant_id, {int(portfolio_id)}, ciphertext, fingerprint, %s FROM _import_pii WHERE true "
        "ON CONFLICT (applicant_id) DO UPDATE SET ciphertext = excluded.ciphertext, "
        "fingerprint = excluded.fingerprint, portfolio_id = excluded.portfolio_id, updated_at = excluded.updated_at "
        f"WHERE {staging.distinct(f'{table}.fingerprint', 'excluded.fingerprint')} "
        "RETURNING applicant_id",
        [now],
    )
    return {pk for (pk,) in staging.cursor.fetchall()}
