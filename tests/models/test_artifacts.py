"""Artifacts: JSON config + state_dict, atomic write, SHA-256 verified before loading."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models import artifacts
from models.artifacts import ArtifactFormatError, ArtifactIntegrityError
from models.training import CreditModel


def test_save_load_round_trip_gives_identical_mlp_predictions(german_mlp, german, tmp_path):
    frame, _ = german
    path = tmp_path / "mlp.pt"
    sha256 = german_mlp.save(path, metrics={"auc": 0.8})
    assert sha256 == artifacts.sha256_file(path)
    loaded = CreditModel.load(path, sha256)
    rows = frame.iloc[800:]
    np.testing.assert_array_equal(loaded.predict_pd(rows), german_mlp.predict_pd(rows))
    assert loaded.get_params() == {**german_mlp.get_params(), "device": "cpu"}
    assert loaded.feature_names_ == german_mlp.feature_names_
    assert loaded.metrics_ == {"auc": 0.8}


def test_save_load_round_trip_gives_identical_cnn_predictions(small_cnn, small_synthetic, tmp_path):
    applicants, history, _ = small_synthetic
    sha256 = small_cnn.save(tmp_path / "cnn.pt")
    loaded = artifacts.load_model(tmp_path / "cnn.pt", sha256)
    rows, h = applicants.iloc[2500:], history[2500:]
    np.testing.assert_array_equal(loaded.predict_pd(rows, h), small_cnn.predict_pd(rows, h))
    for a, b in zip(loaded.transform(rows, h), small_cnn.transform(rows, h), strict=True):
        assert torch.equal(a, b)


def test_the_file_is_plain_json_and_tensors_readable_without_pickle(german_mlp, tmp_path):
    german_mlp.save(tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True, map_location="cpu")
    config = json.loads(payload["config_json"])
    assert config["format_version"] == artifacts.FORMAT_VERSION
    assert config["kind"] == "mlp" and config["calibration"]["method"] == "platt"
    assert all(isinstance(t, torch.Tensor) for t in payload["state_dict"].values())


def test_a_tampered_artifact_refuses_to_load(german_mlp, tmp_path):
    path = tmp_path / "m.pt"
    sha256 = german_mlp.save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="refusing"):
        CreditModel.load(path, sha256)


def test_a_wrong_or_missing_hash_refuses_to_load(german_mlp, tmp_path):
    path = tmp_path / "m.pt"
    german_mlp.save(path)
    with pytest.raises(ArtifactIntegrityError):
        CreditModel.load(path, "0" * 64)
    with pytest.raises(ArtifactIntegrityError, match="unverified"):
        CreditModel.load(path, "")


def test_the_write_is_atomic_and_leaves_no_temporary_file(german_mlp, tmp_path):
    path = tmp_path / "models" / "m.pt"
    first = german_mlp.save(path)
    second = german_mlp.save(path)  # replaced in place
    assert first == second
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]


def test_an_unknown_format_version_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    sha256 = artifacts.write(path, {"kind": "mlp"}, {})
    payload = torch.load(path, weights_only=True)
    payload["config_json"] = json.dumps({"format_version": 99})
    torch.save(payload, path)
    with pytest.raises(ArtifactFormatError, match="99"):
        artifacts.read(path, artifacts.sha256_file(path))
    assert sha256 != artifacts.sha256_file(path)
