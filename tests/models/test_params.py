import math

import pytest

from models.families import FAMILIES, UnknownFamily, family_of
from models.params import ParamError, ParamSpec, check_params


def test_every_family_accepts_its_own_defaults():
    for family in FAMILIES.values():
        assert family.check(family.defaults()) == family.defaults()


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("mlp", {"max_epochs": 10**9}),
        ("mlp", {"max_epochs": 0}),
        ("mlp", {"hidden": [8, 8, 8, 8, 8]}),
        ("mlp", {"hidden": [2048]}),
        ("mlp", {"hidden": True}),
        ("mlp", {"lr": math.nan}),
        ("mlp", {"device": "cuda:0; rm -rf /"}),
        ("mlp", {"pos_weight": "heavy"}),
        ("mlp", {"no_such_parameter": 1}),
        ("cnn", {"kernel_size": 4}),
        ("cnn", {"hidden": [8, 8]}),
    ],
)
def test_it_refuses_values_outside_the_declared_space(kind, values):
    with pytest.raises(ParamError):
        family_of(kind).check(values)


def test_it_normalises_accepted_values():
    assert family_of("mlp").check({"hidden": 64, "max_epochs": 20.0, "device": "cuda:1", "pos_weight": 2}) == {
        "hidden": [64], "max_epochs": 20, "device": "cuda:1", "pos_weight": 2.0,
    }  # fmt: skip


def test_a_spec_needs_bounds_for_numbers():
    with pytest.raises(ValueError):
        ParamSpec("x", "int", 1)
    assert check_params({"x": ParamSpec("x", "int", 1, 0, 3)}, {"x": 2}) == {"x": 2}


def test_unknown_kind_is_named():
    with pytest.raises(UnknownFamily, match="scorecard"):
        family_of("scorecard")
