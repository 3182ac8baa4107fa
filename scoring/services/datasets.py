"""Reading a portfolio's applicants, histories and outcomes into arrays for the
credit models (training and batch scoring). Bulk reads: COPY on PostgreSQL, one
cursor on SQLite; never one ORM object per row.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd
from django.db import connection

from models import coltypes
from models.synthetic import HISTORY_CHANNELS, month_range
from scoring.models import Applicant, DatasetSchema, Portfolio

HISTORY_MONTHS = 24


@dataclass
class PortfolioData:
    """Model inputs of a set of applicants, row-aligned."""

    applicant_ids: np.ndarray  # database ids, int64
    external_ids: list[str]
    static: pd.DataFrame  # one column per schema feature (numeric or categorical)
    history: np.ndarray | None = None  # (n, months, 3): balance, amount_paid, days_past_due
    history_mask: np.ndarray | None = None  # (n, months): True where the month has data
    months: list[date] = field(default_factory=list)
    defaulted: np.ndarray | None = None  # latest observed outcome, float (nan: none observed)
    features: list[dict] = field(default_factory=list)  # the stored feature dicts behind ``static``
    application_dates: np.ndarray | None = None  # datetime64[D] when the schema declares application_date

    def __len__(self) -> int:
        return len(self.applicant_ids)

    def subset(self, index: np.ndarray) -> PortfolioData:
        return PortfolioData(
            applicant_ids=self.applicant_ids[index],
            external_ids=[self.external_ids[i] for i in index],
            static=self.static.iloc[index].reset_index(drop=True),
            history=None if self.history is None else self.history[index],
            history_mask=None if self.history_mask is None else self.history_mask[index],
            months=self.months,
            defaulted=None if self.defaulted is None else self.defaulted[index],
            features=[self.features[i] for i in index] if self.features else [],
            application_dates=None if self.application_dates is None else self.application_dates[index],
        )

    def model_inputs(self, kind: str) -> dict:
        """Keyword arguments of a model's fit/predict for a model kind: a family that
        needs the history (the CNN) also reads it."""
        from models.families import family_of

        if family_of(kind).needs_history:
            return {"static": self.static, "history": self.history, "history_mask": self.history_mask}
        return {"static": self.static}

    def fingerprint(self) -> str:
        """SHA-256 of exactly the rows used: ids, features, history and outcomes."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self.external_ids).encode())
        digest.update(pd.util.hash_pandas_object(self.static.astype(str), index=False).to_numpy().tobytes())
        for array in (self.history, self.history_mask, self.defaulted):
            if array is not None:
                digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(json.dumps([m.isoformat() for m in self.months]).encode())
        return digest.hexdigest()


FEATURE_ROLES = (DatasetSchema.ROLE_NUMERIC, DatasetSchema.ROLE_CATEGORICAL)


def feature_columns(schema: DatasetSchema) -> list[str]:
    """The model's static input columns: the schema's features, a date as its derived parts."""
    return [c["name"] for c in coltypes.model_input_columns(schema.definition["columns"], FEATURE_ROLES)]


def static_frame(schema: DatasetSchema, rows: list[dict]) -> pd.DataFrame:
    """The model's static inputs from stored feature dicts (each column encoded by
    its type; a date gives its derived parts); missing keys are missing values."""
    return coltypes.encode_frame(schema.definition["columns"], rows, FEATURE_ROLES)


def application_dates(schema: DatasetSchema, rows: list[dict]) -> np.ndarray | None:
    """Each row's application date (datetime64[D], NaT where missing) when the schema
    declares ``application_date``: what an out-of-time split orders by."""
    name = schema.definition.get("application_date")
    if not name:
        return None
    text = pd.Series([row.get(name) or None for row in rows], dtype=object)
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce").to_numpy(dtype="datetime64[D]")


def _fetch(sql: str, params: list) -> pd.DataFrame:
    """Run a SELECT and return a DataFrame, by COPY on PostgreSQL (fast for millions of rows)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            query = cursor.mogrify(sql, params)
            buffer = io.BytesIO()
            with (
                cursor.connection.cursor() as raw,
                raw.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)") as copy,
            ):
                for chunk in copy:
                    buffer.write(chunk)
            buffer.seek(0)
            return pd.read_csv(buffer)
        cursor.execute(sql, params)
        names = [c[0] for c in cursor.description]
        return pd.DataFrame(cursor.fetchall(), columns=names)


def history_arrays(
    applicant_ids: np.ndarray, *, portfolio_id: int, months: list[date]
) -> tuple[np.ndarray, np.ndarray]:
    """(n, T, 3) history and (n, T) mask for the given applicants and months."""
    n, t = len(applicant_ids), len(months)
    history = np.zeros((n, t, len(HISTORY_CHANNELS)), dtype=np.float32)
    mask = np.zeros((n, t), dtype=bool)
    if n == 0:
        return history, mask
    # Only the applicants asked for: a few by id, a chunk by its id range.
    if n <= 1000:
        where, params = "applicant_id IN (" + ", ".join(["%s"] * n) + ")", [int(i) for i in applicant_ids]
    else:
        where, params = "applicant_id BETWEEN %s AND %s", [int(applicant_ids.min()), int(applicant_ids.max())]
    frame = _fetch(
        "SELECT applicant_id, month, balance, amount_paid, days_past_due FROM scoring_repaymentmonth "
        f"WHERE portfolio_id = %s AND {where} AND month >= %s AND month <= %s",
        [portfolio_id, *params, months[0], months[-1]],
    )
    if frame.empty:
        return history, mask
    position = pd.Series(np.arange(n), index=applicant_ids)
    rows = position.reindex(frame["applicant_id"].to_numpy()).to_numpy()
    month_index = pd.Series(np.arange(t), index=[m.isoformat() for m in months])
    cols = month_index.reindex(frame["month"].astype(str).str[:10].to_numpy()).to_numpy()
    keep = ~(np.isnan(rows.astype(float)) | np.isnan(cols.astype(float)))
    rows, cols = rows[keep].astype(np.int64), cols[keep].astype(np.int64)
    values = frame.loc[keep, ["balance", "amount_paid", "days_past_due"]].to_numpy(dtype=np.float32)
    history[rows, cols] = values
    mask[rows, cols] = True
    return history, mask


_LATEST_MONTH_TTL = 60.0
_latest_month_cache: dict[int, tuple[float, date | None]] = {}


def latest_month(portfolio: Portfolio) -> date | None:
    """The newest history month of a portfolio: the month the model's 24-month window
    ends on. MAX over millions of rows costs a scan, and real-time scoring asks for it
    on every request, so each process keeps it for a minute (a new history import is
    seen within that minute)."""
    from django.db.models import Max

    from scoring.models import RepaymentMonth

    now = time.monotonic()
    cached = _latest_month_cache.get(portfolio.pk)
    if cached is not None and now - cached[0] < _LATEST_MONTH_TTL:
        return cached[1]
    month = RepaymentMonth.objects.filter(portfolio=portfolio).aggregate(m=Max("month"))["m"]
    _latest_month_cache[portfolio.pk] = (now, month)
    return month


def portfolio_data(
    *,
    portfolio: Portfolio,
    with_history: bool,
    applicant_ids: list[int] | None = None,
    id_range: tuple[int, int] | None = None,
    as_of: date | None = None,
    months: int = HISTORY_MONTHS,
) -> PortfolioData:
    """Model inputs of a portfolio's applicants (all, ``applicant_ids``, or the ids in
    ``id_range``, inclusive), ordered by id."""
    queryset = Applicant.objects.filter(portfolio=portfolio)
    if applicant_ids is not None:
        queryset = queryset.filter(id__in=applicant_ids)
    if id_range is not None:
        queryset = queryset.filter(id__gte=id_range[0], id__lte=id_range[1])
    records = list(queryset.order_by("id").values_list("id", "external_id", "features"))
    return portfolio_data_of(
        portfolio=portfolio, records=records, with_history=with_history, as_of=as_of, months=months
    )


def portfolio_data_of(
    *,
    portfolio: Portfolio,
    records: list[tuple[int, str, dict]],
    with_history: bool,
    as_of: date | None = None,
    months: int = HISTORY_MONTHS,
) -> PortfolioData:
    """Model inputs of applicants already read (``(id, external_id, features)``
    ordered by id): real-time scoring holds the applicant row and needs no second query."""
    ids = np.array([r[0] for r in records], dtype=np.int64)
    data = PortfolioData(
        applicant_ids=ids,
        external_ids=[r[1] for r in records],
        static=static_frame(portfolio.schema, [r[2] for r in records]),
        features=[r[2] for r in records],
        application_dates=application_dates(portfolio.schema, [r[2] for r in records]),
    )
    if with_history:
        as_of = as_of or latest_month(portfolio) or date.today()
        data.months = month_range(as_of, months)
        data.history, data.history_mask = history_arrays(ids, portfolio_id=portfolio.id, months=data.months)
    return data


def attach_outcomes(data: PortfolioData, *, portfolio: Portfolio) -> PortfolioData:
    """The latest observed outcome of each applicant (nan where none was observed)."""
    frame = _fetch(
        "SELECT applicant_id, defaulted, observed_on FROM scoring_outcome WHERE portfolio_id = %s "
        "ORDER BY applicant_id, observed_on",
        [portfolio.id],
    )
    outcome = np.full(len(data), np.nan)
    if not frame.empty:
        latest = frame.drop_duplicates("applicant_id", keep="last")
        flags = latest["defaulted"].map(lambda v: str(v).lower() in {"1", "t", "true"}).astype(float)
        lookup = pd.Series(flags.to_numpy(), index=latest["applicant_id"].to_numpy())
        outcome = lookup.reindex(data.applicant_ids).to_numpy(dtype=float)
    data.defaulted = outcome
    return data
