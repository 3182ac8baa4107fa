"""Seeded synthetic applicants for scale tests and benchmarks, with a known risk signal.

The generator is deterministic for a given ``seed``: applicants are produced in
fixed blocks of ``BLOCK`` rows, block ``b`` drawing from ``SeedSequence([seed, b])``,
so the data do not depend on how a caller chunks the output.

The documented signal (what a model should learn)
-------------------------------------------------
A static risk index ``s`` from the static features::

    s = 0.9 z(debt_to_income) - 0.6 z(ln income) + 0.35 z(ln loan_amount)
        + 0.25 (duration_months - 36) / 12 - 0.3 z(employment_years)
        + HOME[home_ownership] + PURPOSE[purpose]

``region`` and ``num_credit_lines`` carry no signal (placebos). Then a repayment
history of ``months`` months: a background chance of a late month that rises with
``s``, and for some applicants (more often when ``s`` is high) a *recent distress*
episode starting in the last six months, after which most months are late and
days past due climb 30, 60, 90... The default log-odds are::

    logit = INTERCEPT + 0.7 s + 0.65 late_last6 + 0.1 late_before

where ``late_last6`` counts late months among the last six and ``late_before``
those before. So the recent history carries signal that static features cannot
see: a sequence model should beat a static one. The protected attributes
(``sex``, ``age_band``) never enter the logit; with ``sex_income_gap > 0`` women's
incomes are drawn lower, which makes a fair-looking model approve them less (the
proxy-discrimination case a fairness report must catch).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

BLOCK = 10_000
HISTORY_CHANNELS = ("balance", "amount_paid", "days_past_due")
INTERCEPT = -3.6
HOME = {"own": -0.3, "mortgage": -0.1, "rent": 0.25}
PURPOSE = {
    "car": -0.1,
    "home_improvement": -0.2,
    "debt_consolidation": 0.3,
    "education": 0.2,
    "business": 0.5,
    "other": 0.0,
}
REGIONS = ("north", "south", "east", "west")
AGE_BANDS = ("18-25", "26-35", "36-50", "51-65", "65+")
_AGE_RANGES = {"18-25": (18, 25), "26-35": (26, 35), "36-50": (36, 50), "51-65": (51, 65), "65+": (66, 85)}
_FIRST = np.array(["Alex", "Sam", "Maria", "John", "Aisha", "Wei", "Olga", "Luca", "Nora", "Ravi", "Emma", "Omar"])
_LAST = np.array(["Smith", "Garcia", "Okafor", "Chen", "Novak", "Rossi", "Khan", "Muller", "Silva", "Kowalski"])
_STREETS = np.array(["High Street", "Station Road", "Church Lane", "Mill Road", "Park Avenue", "Queen Street"])
_CITIES = np.array(["Leeds", "Bristol", "Cardiff", "York", "Derby", "Bath", "Exeter", "Hull"])

# Observed z-score constants of the generator's own distributions, fixed so the
# signal does not depend on the sample drawn.
_LN_INCOME = (10.6, 0.5)
_LN_LOAN = (9.5, 0.7)
_DTI = (2 / 7, 0.16)
_EMPLOYMENT = (6.0, 6.0)


@dataclass
class SyntheticBlock:
    """One block of applicants: a frame of static columns, protected attributes,
    PII and the outcome, and the history as an array (n, months, 3)."""

    applicants: pd.DataFrame
    history: np.ndarray
    months: list[date]

    def history_frame(self) -> pd.DataFrame:
        """The history in long form: one row per applicant and month."""
        n, m, _ = self.history.shape
        return pd.DataFrame(
            {
                "applicant_id": np.repeat(self.applicants["applicant_id"].to_numpy(), m),
                "month": np.tile(np.array([d.isoformat() for d in self.months]), n),
                "balance": self.history[:, :, 0].reshape(-1).round(2),
                "amount_paid": self.history[:, :, 1].reshape(-1).round(2),
                "days_past_due": self.history[:, :, 2].reshape(-1).astype(np.int64),
            }
        )


def month_range(as_of: date, months: int) -> list[date]:
    """The ``months`` first-of-month dates ending with the month of ``as_of``."""
    out = []
    year, month = as_of.year, as_of.month
    for _ in range(months):
        out.append(date(year, month, 1))
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return out[::-1]


def generate(
    n: int,
    *,
    seed: int = 0,
    months: int = 24,
    as_of: date = date(2026, 10, 1),
    sex_income_gap: float = 0.0,
    id_prefix: str = "SYN",
) -> Iterator[SyntheticBlock]:
    """Yield blocks of at most ``BLOCK`` applicants, ``n`` in all."""
    month_dates = month_range(as_of, months)
    for block, start in enumerate(range(0, n, BLOCK)):
        size = min(BLOCK, n - start)
        rng = np.random.default_rng(np.random.SeedSequence([seed, block]))
        yield _block(rng, start, size, months, month_dates, as_of, sex_income_gap, id_prefix)


def generate_all(n: int, **kwargs) -> SyntheticBlock:
    """All ``n`` applicants in one block (convenient below a few hundred thousand)."""
    blocks = list(generate(n, **kwargs))
    return SyntheticBlock(
        applicants=pd.concat([b.applicants for b in blocks], ignore_index=True),
        history=np.concatenate([b.history for b in blocks]),
        months=blocks[0].months,
    )


def _z(values: np.ndarray, loc_scale: tuple[float, float]) -> np.ndarray:
    return (values - loc_scale[0]) / loc_scale[1]


def _risk_index(dti, ln_income, ln_loan, duration, employment, home, purpose) -> np.ndarray:
    """The static risk index ``s`` of the module docstring."""
    return (
        0.9 * _z(dti, _DTI)
        - 0.6 * _z(ln_income, _LN_INCOME)
        + 0.35 * _z(ln_loan, _LN_LOAN)
        + 0.25 * (duration - 36) / 12
        - 0.3 * _z(employment, _EMPLOYMENT)
        + np.vectorize(HOME.get)(home)
        + np.vectorize(PURPOSE.get)(purpose)
    )


def _logit(s: np.ndarray, late: np.ndarray) -> np.ndarray:
    """The default log-odds of the module docstring, from ``s`` and the late months (n, months)."""
    late_last6 = late[:, -6:].sum(axis=1)
    late_before = late[:, :-6].sum(axis=1)
    return INTERCEPT + 0.7 * s + 0.65 * late_last6 + 0.1 * late_before


def default_logit(applicants: pd.DataFrame, history: np.ndarray) -> np.ndarray:
    """The generator's default log-odds recomputed from its output (a late month has
    days past due > 0): the best any model can do, for benchmarks and calibration
    tests. Stored values are rounded (income to 100, loan to 10...), so this differs
    from the logit the outcome was drawn with by rounding error only."""
    s = _risk_index(
        applicants["debt_to_income"].to_numpy(dtype=np.float64),
        np.log(applicants["income"].to_numpy(dtype=np.float64)),
        np.log(applicants["loan_amount"].to_numpy(dtype=np.float64)),
        applicants["duration_months"].to_numpy(dtype=np.float64),
        applicants["employment_years"].to_numpy(dtype=np.float64),
        applicants["home_ownership"].to_numpy(),
        applicants["purpose"].to_numpy(),
    )
    return _logit(s, history[:, :, 2] > 0)


def _block(rng, start, size, months, month_dates, as_of, sex_income_gap, id_prefix) -> SyntheticBlock:
    sex = rng.choice(np.array(["F", "M"]), size=size)
    age_band = rng.choice(np.array(AGE_BANDS), size=size, p=[0.15, 0.25, 0.3, 0.2, 0.1])
    ln_income = rng.normal(*_LN_INCOME, size=size) - sex_income_gap * (sex == "F")
    income = np.exp(ln_income).round(-2)
    ln_loan = rng.normal(*_LN_LOAN, size=size)
    loan_amount = np.exp(ln_loan).round(-1)
    duration = rng.choice(np.array([12, 24, 36, 48, 60]), size=size)
    dti = np.clip(rng.beta(2, 5, size=size), 0.0, 0.95).round(3)
    employment = np.clip(rng.exponential(_EMPLOYMENT[0], size=size), 0, 45).round(1)
    lines = rng.poisson(4, size=size)
    home = rng.choice(np.array(list(HOME)), size=size, p=[0.25, 0.4, 0.35])
    purpose = rng.choice(np.array(list(PURPOSE)), size=size, p=[0.25, 0.15, 0.25, 0.1, 0.1, 0.15])
    region = rng.choice(np.array(REGIONS), size=size)

    s = _risk_index(dti, ln_income, ln_loan, duration, employment, home, purpose)

    # History: background lateness rising with s, plus a recent distress episode.
    background = 1 / (1 + np.exp(-(-3.2 + 0.6 * s)))
    late = rng.random((size, months)) < background[:, None]
    distressed = rng.random(size) < 1 / (1 + np.exp(-(-2.2 + 0.5 * s)))
    onset = rng.integers(months - 6, months, size=size)
    after_onset = np.arange(months)[None, :] >= onset[:, None]
    late |= distressed[:, None] & after_onset & (rng.random((size, months)) < 0.75)

    # Days past due climb by 30 for each consecutive late month (capped at 180).
    run = np.zeros((size, months), dtype=np.int64)
    for t in range(months):
        prev = run[:, t - 1] if t else 0
        run[:, t] = np.where(late[:, t], prev + 1, 0)
    dpd = np.minimum(run * 30, 180) - (rng.integers(0, 20, size=(size, months)) * (run > 0))
    dpd = np.maximum(dpd, 0)

    installment = loan_amount / duration * 1.05
    progress = np.arange(months)[None, :] / duration[:, None]
    balance = np.clip(loan_amount[:, None] * (1 - progress), 0, None)
    balance = balance + np.cumsum(late, axis=1) * installment[:, None]  # missed payments stay owed
    paid = np.where(late, installment[:, None] * rng.uniform(0, 0.5, (size, months)), installment[:, None])
    history = np.stack([balance, paid, dpd.astype(np.float64)], axis=-1).astype(np.float32)

    logit = _logit(s, late)
    defaulted = rng.random(size) < 1 / (1 + np.exp(-logit))

    index = np.arange(start, start + size)
    first = _FIRST[index % len(_FIRST)]
    last = _LAST[(index // len(_FIRST)) % len(_LAST)]
    low = np.array([_AGE_RANGES[b][0] for b in age_band])
    high = np.array([_AGE_RANGES[b][1] for b in age_band])
    age = rng.integers(low, high + 1)
    birth_year = as_of.year - age
    ids = pd.Series(index).map(lambda i: f"{id_prefix}{i:08d}")
    frame = pd.DataFrame(
        {
            "applicant_id": ids,
            "income": income,
            "loan_amount": loan_amount,
            "duration_months": duration,
            "debt_to_income": dti,
            "employment_years": employment,
            "num_credit_lines": lines,
            "home_ownership": home,
            "purpose": purpose,
            "region": region,
            "sex": sex,
            "age_band": age_band,
            "full_name": pd.Series(first) + " " + pd.Series(last),
            "national_id": pd.Series(rng.integers(100_000_000, 999_999_999, size=size)).astype(str),
            "email": (
                pd.Series(first).str.lower()
                + "."
                + pd.Series(last).str.lower()
                + "."
                + pd.Series(index).astype(str)
                + "@example.com"
            ),
            "phone": "+44 7700 " + pd.Series(rng.integers(100_000, 999_999, size=size)).astype(str),
            "address": (
                pd.Series(rng.integers(1, 200, size=size)).astype(str)
                + " "
                + pd.Series(rng.choice(_STREETS, size=size))
                + ", "
                + pd.Series(rng.choice(_CITIES, size=size))
            ),
            "date_of_birth": pd.Series(birth_year).astype(str)
            + "-"
            + pd.Series(rng.integers(1, 13, size=size)).map("{:02d}".format)
            + "-"
            + pd.Series(rng.integers(1, 29, size=size)).map("{:02d}".format),
            "defaulted": np.where(defaulted, "yes", "no"),
        }
    )
    return SyntheticBlock(applicants=frame, history=history, months=month_dates)
