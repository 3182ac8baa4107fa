"""Raw files as lenders publish them, generated: for ingestion tests and benchmarks.

``sba_like_frame`` has the shape of the US small-business loan file (about 900,000
loans, published as CSV): money written ``$60,000.00 ``, dates ``28-Feb-97``, fiscal
years with stray letters (``1976A``), Y/N codes with values outside the documented
set, an industry code of about 1,300 values, rows without an outcome. Every cell is
text, as in the file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SBA_COLUMNS = (
    "LoanNr_ChkDgt", "Name", "City", "State", "Zip", "Bank", "NAICS", "ApprovalDate", "ApprovalFY", "Term",
    "NoEmp", "NewExist", "CreateJob", "RevLineCr", "LowDoc", "DisbursementGross", "GrAppv", "ChgOffDate",
    "MIS_Status",
)  # fmt: skip
_STATES = ("CA", "TX", "NY", "FL", "PA", "OH", "IL", "MI", "NJ", "WA", "GA", "MA", "NC", "VA", "MN", "CO")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _money(values: np.ndarray) -> np.ndarray:
    return np.array([f"${v:,.2f} " for v in values], dtype=object)


def sba_like_frame(n: int, *, seed: int = 0, unlabelled: float = 0.02, naics_codes: int = 1300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = (1_000_000_000 + np.arange(n) * 7).astype(str)
    # ~1,300 industry codes with a long tail (a few are most of the loans)
    codes = 110000 + np.arange(naics_codes) * 37
    weights = 1.0 / np.arange(1, naics_codes + 1) ** 0.9
    naics = rng.choice(codes, size=n, p=weights / weights.sum()).astype(str)
    naics[rng.random(n) < 0.05] = "0"
    years = rng.integers(1970, 2015, size=n)
    days = rng.integers(1, 29, size=n)
    months = rng.integers(0, 12, size=n)
    approval = np.array(
        [f"{d:02d}-{_MONTHS[m]}-{y % 100:02d}" for d, m, y in zip(days, months, years, strict=True)], dtype=object
    )
    fy = years.astype(str).astype(object)
    fy[rng.random(n) < 0.001] = "1976A"
    gross = np.round(rng.lognormal(11, 1.0, size=n), -2)
    approved = np.round(gross * rng.uniform(0.5, 1.0, size=n), -2)
    defaulted = rng.random(n) < 0.18 + 0.1 * (years > 2004)
    status = np.where(defaulted, "CHGOFF", "P I F").astype(object)
    status[rng.random(n) < unlabelled] = ""
    chgoff = np.where(defaulted, approval, "")
    rev = rng.choice(["N", "Y", "0", "T", "`", "1", "R"], size=n, p=[0.5, 0.3, 0.1, 0.05, 0.02, 0.02, 0.01])
    lowdoc = rng.choice(["N", "Y", "C", "1", "S", "A", ""], size=n, p=[0.8, 0.12, 0.03, 0.02, 0.01, 0.01, 0.01])
    frame = pd.DataFrame(
        {
            "LoanNr_ChkDgt": ids,
            "Name": [f"Business {i} LLC" for i in range(n)],
            "City": rng.choice([f"City{i}" for i in range(3000)], size=n),
            "State": rng.choice(_STATES, size=n),
            "Zip": rng.integers(10000, 99999, size=n).astype(str),
            "Bank": rng.choice([f"BANK OF {i}" for i in range(400)], size=n),
            "NAICS": naics,
            "ApprovalDate": approval,
            "ApprovalFY": fy,
            "Term": rng.integers(1, 300, size=n).astype(str),
            "NoEmp": rng.integers(0, 500, size=n).astype(str),
            "NewExist": rng.choice(["1", "2", "0"], size=n, p=[0.7, 0.29, 0.01]),
            "CreateJob": rng.integers(0, 50, size=n).astype(str),
            "RevLineCr": rev,
            "LowDoc": lowdoc,
            "DisbursementGross": _money(gross),
            "GrAppv": _money(approved),
            "ChgOffDate": chgoff,
            "MIS_Status": status,
        },
        columns=list(SBA_COLUMNS),
    )
    return frame.astype(str)
