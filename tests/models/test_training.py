"""CreditModel: the estimator contract, determinism, invariances, a known monotone effect."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.training import CreditData, CreditModel, fit
from tests.models.conftest import fit_german_mlp, fit_small_cnn

PROTECTED_AND_PII_GERMAN = {
    "applicant_id": "GC-9999",
    "personal_status_and_sex": "female : divorced/separated/married",
    "age_in_years": 19,
    "foreign_worker": "no",
}
PROTECTED_AND_PII_SYNTHETIC = {
    "applicant_id": "X1",
    "sex": "F",
    "age_band": "65+",
    "full_name": "Someone Else",
    "national_id": "000",
    "email": "a@b.c",
    "phone": "+1",
    "address": "Nowhere",
    "date_of_birth": "1900-01-01",
}


def test_init_stores_hyper_parameters_only():
    model = CreditModel("cnn", hidden=16, lr=0.01, seed=3)
    assert model.get_params()["hidden"] == 16 and model.get_params()["seed"] == 3
    assert not [name for name in vars(model) if name.endswith("_")]
    assert model.set_params(lr=0.1) is model and model.lr == 0.1
    with pytest.raises(ValueError, match="unknown"):
        model.set_params(nonsense=1)


def test_fit_returns_self_with_learned_attributes(german, german_schema):
    frame, y = german
    model = CreditModel("mlp", max_epochs=2)
    assert model.fit(frame.iloc[:300], y[:300], schema=german_schema) is model
    for name in ("network_", "static_pipeline_", "calibrator_", "device_", "epochs_", "best_epoch_", "best_val_auc_"):
        assert hasattr(model, name)
    assert model.device_ == ("cuda" if torch.cuda.is_available() else "cpu")
    assert model.history_pipeline_ is None
    assert model.n_train_ + model.n_validation_ + model.n_calibration_ == 300


def test_on_epoch_reports_every_epoch(german, german_schema):
    frame, y = german
    seen = []
    model = CreditModel("mlp", max_epochs=3, patience=10).fit(
        frame, y, schema=german_schema, on_epoch=lambda *args: seen.append(args)
    )
    assert [s[0] for s in seen] == [1, 2, 3] == [e["epoch"] for e in model.epochs_]
    assert all(isinstance(loss, float) and 0 <= auc <= 1 for _, loss, auc in seen)


def test_predictions_have_the_scikit_learn_shapes(german_mlp, german):
    frame, _ = german
    rows = frame.iloc[800:]
    proba = german_mlp.predict_proba(rows)
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(proba[:, 1], german_mlp.predict_pd(rows))
    raw = german_mlp.predict_raw_logit(rows)
    np.testing.assert_allclose(
        german_mlp.predict_logit(rows), german_mlp.calibrator_.a_ * raw + german_mlp.calibrator_.b_
    )
    (x_static,) = german_mlp.transform(rows)
    assert x_static.dtype == torch.float32 and x_static.shape == (200, len(german_mlp.feature_names_))
    with torch.inference_mode():
        np.testing.assert_allclose(german_mlp.network_(x_static).numpy(), raw, rtol=1e-6, atol=1e-6)


def test_cnn_transform_gives_static_and_history_tensors(small_cnn, small_synthetic):
    applicants, history, _ = small_synthetic
    x_static, x_history = small_cnn.transform(applicants.iloc[:5], history[:5])
    assert x_static.shape == (5, len(small_cnn.feature_names_))
    assert x_history.shape == (5, 4, 24) and x_history.dtype == torch.float32
    assert small_cnn.predict_pd(applicants.iloc[:5], history[:5]).shape == (5,)


def test_same_data_and_seed_give_identical_weights_and_metrics(
    german, german_schema, small_synthetic, synthetic_schema
):
    for fit_twice in (
        lambda: fit_german_mlp(german, german_schema),
        lambda: fit_small_cnn(small_synthetic, synthetic_schema),
    ):
        first, second = fit_twice(), fit_twice()
        for name, tensor in first.network_.state_dict().items():
            assert torch.equal(tensor, second.network_.state_dict()[name]), name
        assert first.epochs_ == [
            {**e, "seconds": f["seconds"]} for e, f in zip(second.epochs_, first.epochs_, strict=True)
        ]
        assert first.calibrator_.to_dict() == second.calibrator_.to_dict()


def test_another_seed_gives_other_weights(german, german_schema):
    a = fit_german_mlp(german, german_schema)
    b = fit_german_mlp(german, german_schema, seed=1)
    assert not torch.equal(a.network_.state_dict()["head.weight"], b.network_.state_dict()["head.weight"])


def test_fit_leaves_the_callers_torch_state_as_it_was(german, german_schema):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    fit_german_mlp(german, german_schema, max_epochs=1)
    assert torch.equal(torch.rand(3), expected)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, deterministic)


def test_protected_attributes_and_pii_do_not_change_the_german_score(german_mlp, german):
    frame, _ = german
    rows = frame.iloc[800:]
    np.testing.assert_array_equal(
        german_mlp.predict_pd(rows), german_mlp.predict_pd(rows.assign(**PROTECTED_AND_PII_GERMAN))
    )


def test_protected_attributes_and_pii_do_not_change_the_synthetic_score(small_cnn, small_synthetic):
    applicants, history, _ = small_synthetic
    rows, h = applicants.iloc[2500:], history[2500:]
    changed = rows.assign(**PROTECTED_AND_PII_SYNTHETIC)
    np.testing.assert_array_equal(small_cnn.predict_pd(rows, h), small_cnn.predict_pd(changed, h))
    inputs_only = rows.drop(columns=[*PROTECTED_AND_PII_SYNTHETIC, "defaulted"])
    np.testing.assert_array_equal(small_cnn.predict_pd(rows, h), small_cnn.predict_pd(inputs_only, h))


def test_higher_debt_to_income_means_higher_pd_on_synthetic_data(synthetic_schema):
    from models.features import target_vector
    from models.synthetic import generate_all

    block = generate_all(20_000, seed=11)
    applicants = block.applicants
    model = CreditModel("mlp", seed=0, max_epochs=30).fit(
        applicants, target_vector(applicants, synthetic_schema), schema=synthetic_schema
    )
    test = generate_all(2_000, seed=12).applicants
    low = model.predict_pd(test.assign(debt_to_income=0.15))
    high = model.predict_pd(test.assign(debt_to_income=0.45))
    assert high.mean() > 1.5 * low.mean()
    assert (high > low).mean() > 0.95


def test_validation_and_calibration_splits_can_be_given(german, german_schema):
    frame, y = german
    model = CreditModel("mlp", max_epochs=2).fit(
        frame.iloc[:600],
        y[:600],
        schema=german_schema,
        validation=CreditData(frame.iloc[600:800], y[600:800]),
        calibration=(frame.iloc[800:], y[800:]),
    )
    assert (model.n_train_, model.n_validation_, model.n_calibration_) == (600, 200, 200)


def test_the_fit_function_splits_hyper_parameters_from_fit_arguments(german, german_schema):
    frame, y = german
    model = fit("mlp", frame, y, schema=german_schema, max_epochs=1, on_epoch=lambda *a: None)
    assert model.max_epochs == 1 and model.n_epochs_ == 1


def test_misuse_is_refused(german, german_schema, small_synthetic, synthetic_schema):
    frame, y = german
    with pytest.raises(ValueError, match="kind"):
        CreditModel("rnn").fit(frame, y, schema=german_schema)
    with pytest.raises(ValueError, match="history"):
        CreditModel("cnn").fit(frame, y, schema=german_schema)
    applicants, history, y_syn = small_synthetic
    with pytest.raises(ValueError, match="history"):
        CreditModel("mlp").fit(applicants, y_syn, history=history, schema=synthetic_schema)
