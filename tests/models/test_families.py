"""The family seam: artifacts through bytes and file objects, explanations that add
up, and one decider shared by many threads giving the single-threaded results."""

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from models.artifacts import ArtifactIntegrityError
from models.families import family_of
from models.reasons import CreditDecider, background_sample
from models.scaling import PointsScale


def _decider(model, static, history=None):
    background = background_sample(model, static, history, seed=0)
    return CreditDecider(model, background, scale=PointsScale(), approve_min_score=600, decline_below_score=500).fit()


def test_an_artifact_round_trips_through_bytes_and_file_objects(german_mlp, german):
    frame, _ = german
    buffer = io.BytesIO()
    sha256 = german_mlp.save(buffer)
    data = buffer.getvalue()
    family = family_of("mlp")
    for source in (data, io.BytesIO(data)):
        loaded = family.load(source, sha256)
        np.testing.assert_array_equal(loaded.predict_logit(frame[:50]), german_mlp.predict_logit(frame[:50]))
    with pytest.raises(ArtifactIntegrityError):
        family.load(data[:-1] + bytes([data[-1] ^ 1]), sha256)


def _hammer(decider, calls):
    """Every call on 8 threads at once, then the same calls on one thread."""
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda kwargs: decider.decide(**kwargs), calls))
    single = [decider.decide(**kwargs) for kwargs in calls]
    for a, b in zip(threaded, single, strict=True):
        np.testing.assert_array_equal(a.log_odds, b.log_odds)
        np.testing.assert_array_equal(a.contributions, b.contributions)
        assert a.additivity_error().max() < 1e-4


def test_one_mlp_decider_serves_8_threads_with_the_single_threaded_results(german_mlp, german):
    frame, _ = german
    decider = _decider(german_mlp, frame[:800])
    _hammer(decider, [{"static": frame.iloc[i : i + 3].reset_index(drop=True)} for i in range(0, 240, 3)])


def test_one_cnn_decider_serves_8_threads_with_the_single_threaded_results(small_cnn, small_synthetic):
    applicants, history, _ = small_synthetic
    decider = _decider(small_cnn, applicants[:2500], history[:2500])
    calls = [
        {"static": applicants.iloc[i : i + 2].reset_index(drop=True), "history": history[i : i + 2]}
        for i in range(2500, 2660, 2)
    ]
    _hammer(decider, calls)
