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


# --- The hard mode -----------------------------------------------------------------
#
# ``generate_hard`` draws applications that behave like a real lender's file rather
# than a textbook: its signal is not additive in the log-odds, one field leaks the
# outcome, and the newest applications have no outcome yet. The default mode above
# is unchanged (the demo and the tests depend on its exact rows).
#
# The documented signal (log-odds of default of a labelled application)::
#
#     logit = HARD_INTERCEPT
#             + 1.4 [credit_score < 620] + 0.8 [credit_score < 560] - 0.004 (credit_score - 680)   thresholds
#             + 1.1 [debt_to_income > 0.43]                                                          threshold
#             + 0.9 [revolving = yes] * z(debt_to_income)                                            interaction
#             + 0.5 z(ln loan_amount - ln income) * [employment_years < 2 or missing]               interaction
#             + INDUSTRY_RISK[industry_code]              (1,200 codes, each its own risk)
#             + VINTAGE[application year]                 (2018-2019 and 2023 much worse)
#             + 0.1 (agreed term - 36) / 12 + STATE_RISK[state] (small)
#
# ``region`` is a placebo; ``sex`` and ``age_band`` are protected and never enter the
# logit; ``employment_years`` is missing for 8 % of applicants whatever their outcome.
#
# The planted leak: ``term_months`` is recorded after the outcome, as in the US
# small-business file. A loan that was repaid keeps its agreed term (a multiple of 12,
# except 2 % restructured ones); for 80 % of defaulters it is overwritten by the months
# the loan ran before it was charged off, rarely a multiple of 12.
#
# Applications of the last ``unlabelled_months`` months before ``as_of`` have no
# outcome yet: their ``defaulted`` is empty.

HARD_INTERCEPT = -2.9
HARD_INDUSTRIES = 1200
HARD_STATES = ("CA", "TX", "NY", "FL", "PA", "OH", "IL", "MI", "NJ", "WA", "GA", "MA", "NC", "VA", "MN", "CO")
HARD_TERMS = np.array([12, 24, 36, 48, 60, 84, 120])
HARD_VINTAGE = {2018: 1.3, 2019: 1.1, 2023: 0.9}
HARD_FIRST_DATE = np.datetime64("2014-01-01")
HARD_LEAK = "term_months"


def hard_industry_codes() -> list[str]:
    return [f"N{i:04d}" for i in range(HARD_INDUSTRIES)]


def _hard_constants(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Code-specific risks and frequencies, fixed by ``seed`` (the same in every block)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 10**6]))
    industry_risk = rng.normal(0.0, 0.6, size=HARD_INDUSTRIES)
    weights = 1.0 / np.arange(1, HARD_INDUSTRIES + 1) ** 0.8  # a long tail, as real industry codes
    industry_p = rng.permutation(weights / weights.sum())
    state_risk = rng.normal(0.0, 0.15, size=len(HARD_STATES))
    return industry_risk, industry_p, state_risk


def hard_logit(frame: pd.DataFrame, *, seed: int = 0, agreed_term: np.ndarray | None = None) -> np.ndarray:
    """The documented log-odds from the generated columns (``agreed_term`` is what the
    leak overwrote; by default the recorded term, exact for repaid loans)."""
    industry_risk, _, state_risk = _hard_constants(seed)
    score = frame["credit_score"].to_numpy(dtype=np.float64)
    dti = frame["debt_to_income"].to_numpy(dtype=np.float64)
    employment = frame["employment_years"].to_numpy(dtype=np.float64)
    revolving = frame["revolving"].to_numpy() == "yes"
    stretch = np.log(frame["loan_amount"].to_numpy(dtype=np.float64)) - np.log(
        frame["income"].to_numpy(dtype=np.float64)
    )
    industry = np.asarray(pd.Categorical(frame["industry_code"], categories=hard_industry_codes()).codes)
    state = np.asarray(pd.Categorical(frame["state"], categories=HARD_STATES).codes)
    years = pd.to_datetime(frame["application_date"]).dt.year.to_numpy()
    term = frame[HARD_LEAK].to_numpy(dtype=np.float64) if agreed_term is None else agreed_term
    vintage = np.zeros(len(frame))
    for year, effect in HARD_VINTAGE.items():
        vintage[years == year] = effect
    new_job = np.isnan(employment) | (employment < 2)
    return (
        HARD_INTERCEPT
        + 1.4 * (score < 620) + 0.8 * (score < 560) - 0.004 * (score - 680)
        + 1.1 * (dti > 0.43)
        + 0.9 * revolving * _z(dti, _DTI)
        + 0.5 * _z(stretch, (-1.1, 0.86)) * new_job
        + industry_risk[industry]
        + vintage
        + 0.1 * (term - 36) / 12
        + state_risk[state]
    )  # fmt: skip


def generate_hard(
    n: int, *, seed: int = 0, as_of: date = date(2026, 10, 1), unlabelled_months: int = 6, id_prefix: str = "HRD"
) -> pd.DataFrame:
    """``n`` applications of the hard mode, one row each, every column as the schema
    ``hard_schema()`` declares it (vectorised: 500,000 rows in a few seconds). Rows are
    drawn in blocks of ``BLOCK`` seeded by ``SeedSequence([seed, block, 1])``: the rows
    of ``n`` are the first ``n`` of any larger count."""
    _, industry_p, _ = _hard_constants(seed)
    last = np.datetime64(as_of, "D")
    span = int((last - HARD_FIRST_DATE).astype(np.int64))
    frames = []
    for block, start in enumerate(range(0, n, BLOCK)):
        # Every block is drawn whole and cut, so a smaller ``n`` gives a prefix of a larger one's rows.
        size, keep = BLOCK, min(BLOCK, n - start)
        rng = np.random.default_rng(np.random.SeedSequence([seed, block, 1]))
        # More applications in later years, as a growing lender has.
        days = np.floor(span * np.sqrt(rng.random(size))).astype(np.int64)
        applied = HARD_FIRST_DATE + days.astype("timedelta64[D]")
        income = np.exp(rng.normal(*_LN_INCOME, size=size)).round(-2)
        loan = np.exp(rng.normal(_LN_LOAN[0], 0.6, size=size) + 0.3 * (np.log(income) - _LN_INCOME[0])).round(-1)
        score = np.clip(rng.normal(680, 60, size=size), 300, 850).round()
        dti = np.clip(rng.beta(2, 5, size=size), 0.0, 0.95).round(3)
        employment = np.clip(rng.exponential(_EMPLOYMENT[0], size=size), 0, 45).round(1)
        employment[rng.random(size) < 0.08] = np.nan
        revolving = rng.random(size) < 0.35
        industry = rng.choice(HARD_INDUSTRIES, size=size, p=industry_p)
        state = rng.integers(0, len(HARD_STATES), size=size)
        term = rng.choice(HARD_TERMS, size=size, p=[0.1, 0.15, 0.3, 0.15, 0.15, 0.1, 0.05])
        frame = pd.DataFrame(
            {
                "applicant_id": [f"{id_prefix}{i:08d}" for i in range(start, start + size)],
                "application_date": np.datetime_as_string(applied, unit="D"),
                "income": income,
                "loan_amount": loan,
                HARD_LEAK: term,
                "credit_score": score.astype(np.int64),
                "debt_to_income": dti,
                "employment_years": employment,
                "revolving": np.where(revolving, "yes", "no"),
                "industry_code": np.array(hard_industry_codes())[industry],
                "state": np.array(HARD_STATES)[state],
                "home_ownership": rng.choice(np.array(list(HOME)), size=size, p=[0.25, 0.4, 0.35]),
                "region": rng.choice(np.array(REGIONS), size=size),
                "sex": rng.choice(np.array(["F", "M"]), size=size),
                "age_band": rng.choice(np.array(AGE_BANDS), size=size, p=[0.15, 0.25, 0.3, 0.2, 0.1]),
            }
        )
        logit = hard_logit(frame, seed=seed)
        defaulted = rng.random(size) < 1 / (1 + np.exp(-logit))
        # The leak: the term as recorded once the outcome is known.
        ran = np.ceil(rng.random(size) * np.minimum(term, 36)).astype(np.int64)
        overwritten = defaulted & (rng.random(size) < 0.8)
        restructured = ~defaulted & (rng.random(size) < 0.02)
        recorded = np.where(overwritten, ran, term)
        recorded = np.where(restructured, term + rng.integers(1, 12, size=size), recorded)
        frame[HARD_LEAK] = recorded
        recent = applied > last - np.timedelta64(30 * unlabelled_months, "D")
        frame["defaulted"] = np.where(recent, "", np.where(defaulted, "yes", "no"))
        frames.append(frame.iloc[:keep])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def hard_schema() -> dict:
    """The dataset schema of ``generate_hard``'s rows (the import path's document)."""
    number = {"role": "numeric", "type": "float", "min": 0, "max": 100_000_000}
    columns = [
        {"name": "applicant_id", "role": "id", "type": "string"},
        {"name": "application_date", "role": "numeric", "type": "date", "derive": []},
        {"name": "income", **number},
        {"name": "loan_amount", **number},
        {"name": HARD_LEAK, "role": "numeric", "type": "integer", "min": 1, "max": 480},
        {"name": "credit_score", "role": "numeric", "type": "integer", "min": 300, "max": 850},
        {"name": "debt_to_income", "role": "numeric", "type": "float", "min": 0, "max": 10},
        {"name": "employment_years", "role": "numeric", "type": "float", "min": 0, "max": 80, "nullable": True},
        {"name": "revolving", "role": "categorical", "type": "category", "categories": ["no", "yes"]},
        {"name": "industry_code", "role": "categorical", "type": "category", "categories": hard_industry_codes(),
         "unseen": "other"},
        {"name": "state", "role": "categorical", "type": "category", "categories": list(HARD_STATES)},
        {"name": "home_ownership", "role": "categorical", "type": "category", "categories": list(HOME)},
        {"name": "region", "role": "categorical", "type": "category", "categories": list(REGIONS)},
        {"name": "sex", "role": "protected", "type": "category", "categories": ["F", "M"]},
        {"name": "age_band", "role": "protected", "type": "category", "categories": list(AGE_BANDS)},
        {"name": "defaulted", "role": "target", "type": "category", "categories": ["no", "yes"],
         "positive_label": "yes", "nullable": True},
    ]  # fmt: skip
    return {
        "name": "synthetic_hard",
        "version": 1,
        "description": (
            "Hard synthetic applications (models/synthetic.py generate_hard): threshold and interaction effects, "
            "1,200 industry codes with their own risk, vintage effects, a planted leak (term_months is recorded "
            "after the outcome) and unlabelled recent applications."
        ),
        "outcome_observed_on": "2026-10-01",
        "application_date": "application_date",
        "columns": columns,
    }
