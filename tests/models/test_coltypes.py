"""The column-type registry: each type parses, refuses and encodes its own values."""

import numpy as np
import pandas as pd
import pytest

from models import coltypes
from models.features import StaticPipeline, input_columns


def parse(column: dict, cells: list[str]):
    text = pd.Series(cells, dtype=object).str.strip()
    present = (text != "").to_numpy()
    return coltypes.column_type(column).parse(column, text, present)


def test_money_reads_currency_thousands_and_accounting_negatives():
    parsed = parse(
        {"name": "amount", "role": "numeric", "type": "money"}, ["$60,000.00 ", "$1,234.5", "($500.00)", "", "12"]
    )
    assert parsed.values.tolist()[:3] == [60000.0, 1234.5, -500.0] and np.isnan(parsed.values[3])
    assert parsed.values[4] == 12.0 and not parsed.bad().any()


def test_money_with_european_separators_and_wrong_grouping_is_refused_by_cell():
    column = {"name": "amount", "role": "numeric", "type": "money", "currency": "€", "thousands": ".", "decimal": ","}
    parsed = parse(column, ["1.234,50 €", "12,5", "1.23,4", "abc"])
    assert parsed.values.tolist()[:2] == [1234.5, 12.5]
    assert parsed.bad().tolist() == [False, False, True, True]
    assert any("written like €1.234,50" in message for mask, message in parsed.problems if mask.any())


def test_percentages_are_fractions_and_booleans_take_their_spellings():
    assert parse({"name": "p", "role": "numeric", "type": "percentage"}, ["12.5%", "50"]).values.tolist() == [
        0.125,
        0.5,
    ]
    flags = parse({"name": "b", "role": "numeric", "type": "boolean"}, ["Yes", "n", "TRUE", "0", "maybe"])
    assert flags.values.tolist()[:4] == [1.0, 0.0, 1.0, 0.0] and flags.bad().tolist() == [False] * 4 + [True]


def test_dates_with_declared_formats_and_a_two_digit_year_pivot():
    column = {"name": "d", "role": "numeric", "type": "date", "formats": ["%d-%b-%y"], "two_digit_year_pivot": 2025}
    parsed = parse(column, ["28-Feb-97", "01-Jan-05", "15-Mar-68", "2001-02-03", "31-Feb-97", "1976A"])
    assert parsed.values.tolist() == ["1997-02-28", "2005-01-01", "1968-03-15", "2001-02-03", "", ""]
    assert parsed.bad().tolist() == [False] * 4 + [True, True]


def test_an_unseen_category_is_refused_or_stored_as_other_with_a_warning():
    column = {"name": "c", "role": "categorical", "type": "category", "categories": ["Y", "N"]}
    assert parse(column, ["Y", "0"]).bad().tolist() == [False, True]
    parsed = parse({**column, "unseen": "other"}, ["Y", "0", "T"])
    assert parsed.values.tolist() == ["Y", "other", "other"] and not parsed.bad().any()
    assert parsed.warnings[0][0].tolist() == [False, True, True]
    assert coltypes.column_type(column).model_inputs({**column, "unseen": "other"})[0]["categories"] == [
        "Y",
        "N",
        "other",
    ]


def test_a_date_feature_is_encoded_as_its_derived_parts_and_feeds_the_pipeline():
    schema = {
        "columns": [
            {"name": "id", "role": "id"},
            {"name": "opened", "role": "numeric", "type": "date", "derive": ["months_from_reference", "year", "day_of_week"],
             "reference": "2000-01-01"},
            {"name": "applied", "role": "numeric", "type": "date", "derive": []},
            {"name": "x", "role": "numeric", "type": "float"},
        ]
    }  # fmt: skip
    names = [c["name"] for c in input_columns(schema)]
    assert names == ["opened__months_from_reference", "opened__year", "opened__day_of_week", "x"]
    rows = [{"opened": "2001-03-05", "applied": "2020-01-01", "x": 1.0}, {"opened": None, "applied": None, "x": 2.0}]
    frame = coltypes.encode_frame(schema["columns"], rows, ("numeric", "categorical"))
    assert frame.loc[0, "opened__months_from_reference"] == 14 and frame.loc[0, "opened__year"] == 2001
    assert frame.loc[0, "opened__day_of_week"] == 0 and np.isnan(frame.loc[1, "opened__year"])
    out = StaticPipeline(schema).fit_transform(frame)
    assert out.shape[0] == 2 and np.isfinite(out).all()


@pytest.mark.parametrize(
    "cells, expected",
    [
        (["$1,000.00", "$25.50"], ("money", {"currency": ["$"], "thousands": ",", "decimal": "."})),
        (["28-Feb-97", "01-Jan-05"], ("date", {"formats": ["%d-%b-%y"]})),
        (["12%", "3.5%"], ("percentage", {})),
        (["Y", "N", "Y"], ("boolean", {})),
    ],
)
def test_detect_finds_the_options_a_sample_parses_under(cells, expected):
    name, options = expected
    found = coltypes.TYPES[name].detect(pd.Series(cells, dtype=object))
    assert found is not None and {k: found[k] for k in options} == options
