"""Fitted feature pipelines: schema columns and repayment histories to float32 arrays.

``StaticPipeline`` turns a frame of application columns into the model's static
input; ``HistoryPipeline`` turns a monthly repayment history into the CNN's
(n, 4, months) input. Both follow the scikit-learn contract (hyper-parameters in
``__init__``, learned attributes end in ``_``) and serialise their fitted
parameters to plain JSON (``to_dict`` / ``from_dict``), never pickle.

Only columns whose schema role is ``numeric`` or ``categorical`` are inputs.
Columns with the roles ``protected``, ``pii``, ``id``, ``target`` and ``ignore``
are never read, so an applicant's name or sex cannot move the score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models import coltypes

INPUT_ROLES = ("numeric", "categorical")
UNSEEN = "__unseen__"
MISSING_SUFFIX = "__missing"
HISTORY_CHANNELS = ("balance", "amount_paid", "days_past_due")
HISTORY_SOURCES = ("history.balance", "history.amount_paid", "history.days_past_due", "history.observed")


def input_columns(schema: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The model inputs of the schema's columns, in schema order: each column's type
    says which (a date gives its derived parts, see :mod:`models.coltypes`)."""
    return coltypes.model_input_columns(schema["columns"], INPUT_ROLES)


def target_vector(frame: pd.DataFrame, schema: Mapping[str, Any]) -> np.ndarray:
    """The outcome as 0/1 (1 = the schema's ``positive_label``, the default)."""
    targets = [c for c in schema["columns"] if c["role"] == "target"]
    if len(targets) != 1:
        raise ValueError(f"the schema must have exactly one target column, found {len(targets)}")
    column = targets[0]
    values = frame[column["name"]]
    if values.isna().any():
        raise ValueError(f"target column {column['name']!r} has missing values")
    return (values.astype(str) == str(column["positive_label"])).to_numpy(dtype=np.int64)


def _robust_center_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and interquartile range of the finite values (IQR 0 -> 1, no values -> 0, 1)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    q25, median, q75 = np.percentile(finite, [25, 50, 75])
    iqr = float(q75 - q25)
    return float(median), iqr if iqr > 0 else 1.0


def _as_float(series: pd.Series | np.ndarray) -> np.ndarray:
    """Numbers as stored (numbers or numeric strings) to float64; anything else is NaN."""
    if isinstance(series, np.ndarray) and series.dtype == np.float64:
        return series  # a ``ColumnFrame`` column: already converted like ``pd.to_numeric`` would
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _as_category(series: pd.Series | np.ndarray) -> np.ndarray:
    """Category labels as strings, with None for missing values."""
    return np.array([None if pd.isna(v) else str(v) for v in series.tolist()], dtype=object)


def _number(value: Any) -> float:
    """One stored value as ``pd.to_numeric(..., errors="coerce")`` reads it: numbers and
    numeric strings to float, anything else (None, "", "n/a") to NaN."""
    if value is None or isinstance(value, bool):
        return float(value) if isinstance(value, bool) else np.nan
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return np.nan


class ColumnFrame:
    """The few rows of a real-time request as columns of numpy arrays: what
    ``StaticPipeline.transform`` and ``ValueLookup`` read from a DataFrame, without
    building one (a one-row DataFrame costs ~2 ms; this costs microseconds).

    ``numeric`` columns become float64 (missing or unreadable values NaN), the
    others object arrays of the values as given. For one row the values are exactly
    those of ``pd.DataFrame.from_records`` with ``pd.to_numeric`` on the numeric
    columns. (Over many rows pandas infers a column's dtype from all of them, and a
    categorical column of numbers with gaps turns into floats: batches keep frames.)
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]], *, numeric: Sequence[str], categorical: Sequence[str]):
        self.columns = [*numeric, *categorical]
        self._data: dict[str, np.ndarray] = {}
        for name in numeric:
            self._data[name] = np.array([_number(row.get(name)) for row in rows], dtype=np.float64)
        for name in categorical:
            values = np.empty(len(rows), dtype=object)
            values[:] = [row.get(name) for row in rows]
            self._data[name] = values
        self._rows = len(rows)

    def __len__(self) -> int:
        return self._rows

    def __getitem__(self, name: str) -> np.ndarray:
        return self._data[name]

    def __contains__(self, name: str) -> bool:
        return name in self._data


class StaticPipeline:
    """The static (application-form) feature pipeline.

    Numeric columns: median imputation, a missing-value indicator column for columns
    that had missing values in training or are declared ``nullable``, robust scaling
    ``(x - median) / IQR`` (IQR 0 -> 1) clipped to ``[-clip, clip]``.

    Categorical columns: one-hot over the categories seen at least
    ``min_category_count`` times in training, plus an ``__unseen__`` column that takes
    unknown, rare and missing values. An unknown category at inference is never an
    error. (If no training row was unseen, the column is all zero in training and the
    network's weight for it stays near its small initial value.)
    """

    def __init__(self, schema: Mapping[str, Any], *, clip: float = 5.0, min_category_count: int = 1):
        self.schema = schema
        self.clip = clip
        self.min_category_count = min_category_count

    def fit(self, frame: pd.DataFrame) -> StaticPipeline:
        numeric, categorical = [], []
        for column in input_columns(self.schema):
            name = column["name"]
            if name not in frame.columns:
                raise ValueError(f"input column {name!r} is missing from the frame")
            if column["role"] == "numeric":
                values = _as_float(frame[name])
                median, iqr = _robust_center_scale(values)
                indicator = bool(column.get("nullable", False) or not np.isfinite(values).all())
                numeric.append({"name": name, "median": median, "iqr": iqr, "indicator": indicator})
            else:
                counts = pd.Series(_as_category(frame[name])).value_counts(dropna=True)
                kept = {str(k) for k, n in counts.items() if n >= self.min_category_count}
                declared = [str(c) for c in column.get("categories", [])]
                # Schema order first, then categories the schema does not declare, sorted.
                ordered = [c for c in declared if c in kept] + sorted(kept.difference(declared))
                categorical.append({"name": name, "categories": ordered})
        self.numeric_ = numeric
        self.categorical_ = categorical
        self._set_names()
        return self

    def _set_names(self) -> None:
        names, sources = [], []
        for column in self.numeric_:
            names.append(column["name"])
            sources.append(column["name"])
            if column["indicator"]:
                names.append(column["name"] + MISSING_SUFFIX)
                sources.append(column["name"])
        for column in self.categorical_:
            for category in [*column["categories"], UNSEEN]:
                names.append(f"{column['name']}={category}")
                sources.append(column["name"])
        self.feature_names_ = names
        self.feature_sources_ = sources
        self.n_features_out_ = len(names)

    @property
    def source_features_(self) -> list[str]:
        """The source (schema) feature names, in output order, without repeats."""
        return list(dict.fromkeys(self.feature_sources_))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The (n, n_features_out_) float32 input. Extra columns (PII, protected...) are ignored."""
        n = len(frame)
        out = np.zeros((n, self.n_features_out_), dtype=np.float32)
        j = 0
        for column in self.numeric_:
            values = _as_float(frame[column["name"]])
            missing = ~np.isfinite(values)
            values = np.where(missing, column["median"], values)
            out[:, j] = np.clip((values - column["median"]) / column["iqr"], -self.clip, self.clip)
            j += 1
            if column["indicator"]:
                out[:, j] = missing
                j += 1
        for column in self.categorical_:
            categories = column["categories"]
            position = {c: i for i, c in enumerate(categories)}
            labels = _as_category(frame[column["name"]])
            index = np.fromiter((position.get(v, len(categories)) for v in labels), dtype=np.int64, count=n)
            out[np.arange(n), j + index] = 1.0
            j += len(categories) + 1
        return out

    def fit_transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.fit(frame).transform(frame)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clip": float(self.clip),
            "min_category_count": int(self.min_category_count),
            "numeric": self.numeric_,
            "categorical": self.categorical_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StaticPipeline:
        # The schema is not needed once fitted: the fitted columns say everything.
        pipeline = cls({"columns": []}, clip=data["clip"], min_category_count=data["min_category_count"])
        pipeline.numeric_ = [dict(c) for c in data["numeric"]]
        pipeline.categorical_ = [{"name": c["name"], "categories": list(c["categories"])} for c in data["categorical"]]
        pipeline._set_names()
        return pipeline


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


class HistoryPipeline:
    """The repayment-history pipeline: (n, months, 3) + observed mask -> (n, 4, months).

    The channels are ``balance``, ``amount_paid`` and ``days_past_due``. Money
    channels go through a signed ``log1p`` (balances span orders of magnitude), days
    past due through ``log1p``; each channel is then robust-scaled on the observed
    months only and clipped. Months without data are set to 0 and a fourth channel,
    ``observed`` (1 where the month has data), tells the network which are which.
    """

    def __init__(self, *, log_money: bool = True, clip: float = 5.0):
        self.log_money = log_money
        self.clip = clip

    @staticmethod
    def _observed(history: np.ndarray, history_mask: np.ndarray | None) -> np.ndarray:
        if history.ndim != 3 or history.shape[2] != len(HISTORY_CHANNELS):
            raise ValueError(f"history must have shape (n, months, {len(HISTORY_CHANNELS)}), got {history.shape}")
        observed = np.isfinite(history).all(axis=2)
        if history_mask is not None:
            if history_mask.shape != history.shape[:2]:
                raise ValueError(f"history_mask must have shape {history.shape[:2]}, got {history_mask.shape}")
            observed &= history_mask.astype(bool)
        return observed

    def _pre(self, history: np.ndarray) -> np.ndarray:
        x = np.array(history, dtype=np.float64)
        if self.log_money:
            x[:, :, 0] = _signed_log1p(x[:, :, 0])
            x[:, :, 1] = _signed_log1p(x[:, :, 1])
        x[:, :, 2] = np.log1p(np.clip(x[:, :, 2], 0, None))
        return x

    def fit(self, history: np.ndarray, history_mask: np.ndarray | None = None) -> HistoryPipeline:
        """``history_mask`` (n, months): True where the month has data (None: all finite months)."""
        observed = self._observed(history, history_mask)
        x = self._pre(history)
        centers, scales = [], []
        for c in range(len(HISTORY_CHANNELS)):
            center, scale = _robust_center_scale(x[:, :, c][observed])
            centers.append(center)
            scales.append(scale)
        self.center_ = centers
        self.scale_ = scales
        self.months_ = int(history.shape[1])
        return self

    @property
    def feature_names_(self) -> list[str]:
        """One name per output channel."""
        return [*HISTORY_CHANNELS, "observed"]

    @property
    def feature_sources_(self) -> list[str]:
        """The source feature of each output channel (for grouping attributions)."""
        return list(HISTORY_SOURCES)

    def transform(self, history: np.ndarray, history_mask: np.ndarray | None = None) -> np.ndarray:
        if history.shape[1] != self.months_:
            raise ValueError(f"the model was trained on {self.months_} months of history, got {history.shape[1]}")
        observed = self._observed(history, history_mask)
        with np.errstate(invalid="ignore"):
            x = self._pre(history)
            x = (x - np.asarray(self.center_)) / np.asarray(self.scale_)
        x = np.clip(x, -self.clip, self.clip)
        x[~observed] = 0.0
        out = np.concatenate([x, observed[:, :, None]], axis=2)
        return np.ascontiguousarray(out.transpose(0, 2, 1), dtype=np.float32)

    def fit_transform(self, history: np.ndarray, history_mask: np.ndarray | None = None) -> np.ndarray:
        return self.fit(history, history_mask).transform(history, history_mask)

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_money": bool(self.log_money),
            "clip": float(self.clip),
            "center": self.center_,
            "scale": self.scale_,
            "months": self.months_,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoryPipeline:
        pipeline = cls(log_money=data["log_money"], clip=data["clip"])
        pipeline.center_ = [float(v) for v in data["center"]]
        pipeline.scale_ = [float(v) for v in data["scale"]]
        pipeline.months_ = int(data["months"])
        return pipeline


def group_by_source(values: np.ndarray, sources: Sequence[str]) -> dict[str, np.ndarray]:
    """Sum per-column values (e.g. attributions, shape (n, n_columns)) by source feature."""
    values = np.asarray(values)
    out: dict[str, np.ndarray] = {}
    for j, source in enumerate(sources):
        out[source] = out.get(source, 0) + values[..., j]
    return out
