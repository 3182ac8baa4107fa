"""Platt scaling: recovers a known affine map, stays finite, round-trips through JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.calibration import PlattCalibrator


def test_it_recovers_a_known_slope_and_intercept():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 1.5, 200_000)
    y = rng.random(len(z)) < 1 / (1 + np.exp(-(0.5 * z - 2.0)))
    calibrator = PlattCalibrator().fit(z, y)
    assert calibrator.a_ == pytest.approx(0.5, abs=0.02)
    assert calibrator.b_ == pytest.approx(-2.0, abs=0.03)


def test_calibrated_logit_is_affine_so_attributions_scale_exactly():
    calibrator = PlattCalibrator().fit(np.array([-2.0, -1, 0, 1, 2, 3]), np.array([0, 0, 1, 0, 1, 1]))
    z = np.array([-1.0, 0.5, 4.0])
    np.testing.assert_allclose(calibrator.calibrated_logit(z), calibrator.a_ * z + calibrator.b_)
    np.testing.assert_allclose(calibrator.pd(z), 1 / (1 + np.exp(-(calibrator.a_ * z + calibrator.b_))))


def test_a_separable_calibration_split_gives_finite_parameters():
    calibrator = PlattCalibrator().fit(np.array([-3.0, -2, -1, 1, 2, 3]), np.array([0, 0, 0, 1, 1, 1]))
    assert np.isfinite([calibrator.a_, calibrator.b_]).all()
    assert calibrator.a_ > 0


def test_one_outcome_only_is_refused():
    with pytest.raises(ValueError, match="both outcomes"):
        PlattCalibrator().fit(np.zeros(5), np.zeros(5))


def test_json_round_trip():
    calibrator = PlattCalibrator().fit(np.array([-2.0, -1, 0, 1, 2]), np.array([0, 1, 0, 1, 1]))
    restored = PlattCalibrator.from_dict(json.loads(json.dumps(calibrator.to_dict())))
    np.testing.assert_array_equal(restored.pd(np.linspace(-5, 5, 11)), calibrator.pd(np.linspace(-5, 5, 11)))
