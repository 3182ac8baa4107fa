"""GPU training and inference; skipped where no CUDA device is present (the suite never needs one)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.synthetic import generate_all
from models.training import CreditModel

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


def test_cnn_trains_and_predicts_on_cuda_close_to_the_cpu(synthetic_schema):
    block = generate_all(20_000, seed=3)
    y = (block.applicants["defaulted"] == "yes").to_numpy().astype(int)
    kwargs = {"history": block.history, "schema": synthetic_schema}
    gpu = CreditModel("cnn", seed=1, max_epochs=5, device="cuda").fit(block.applicants, y, **kwargs)
    assert gpu.device_.startswith("cuda")
    cpu = CreditModel("cnn", seed=1, max_epochs=5, device="cpu").fit(block.applicants, y, **kwargs)
    auc_gap = abs(gpu.best_val_auc_ - cpu.best_val_auc_)
    assert auc_gap < 0.02  # bf16 autocast: close, not bit-identical
    pd = gpu.predict_pd(block.applicants, block.history)
    assert np.isfinite(pd).all() and ((pd > 0) & (pd < 1)).all()
