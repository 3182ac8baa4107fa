"""The vectorised DeepSHAP explainer: same values as shap.DeepExplainer, additive, side-effect free."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
import shap
import torch
from torch import nn

from models.explain import DeepExplainer, group_attributions, history_by_month, history_recent
from models.networks import CreditCNN, CreditMLP

N_STATIC_MLP = 60
N_STATIC_CNN = 40
CHANNELS, MONTHS = 4, 24
N_BACKGROUND = 100


class StandInMLP(nn.Module):
    """CreditMLP's building blocks plus BatchNorm: static features -> logit (n,)."""

    def __init__(self, n_features: int = N_STATIC_MLP):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(n_features, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1),
        )  # fmt: skip
        self.head = nn.Linear(32, 1)

    def forward(self, x_static: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x_static)).squeeze(-1)


class StandInCNN(nn.Module):
    """CreditCNN's building blocks plus BatchNorm: static (n, F) + history (n, C, T) -> logit (n,)."""

    def __init__(self, n_static: int = N_STATIC_CNN):
        super().__init__()
        self.history = nn.Sequential(
            nn.Conv1d(CHANNELS, 16, 3, padding=1), nn.BatchNorm1d(16), nn.ReLU(),
            nn.Conv1d(16, 32, 3, padding=1), nn.ReLU(),
            nn.AvgPool1d(6, stride=6), nn.Flatten(), nn.Linear(32 * MONTHS // 6, 32), nn.ReLU(),
        )  # fmt: skip
        self.static = nn.Sequential(nn.Linear(n_static, 32), nn.BatchNorm1d(32), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1))

    def forward(self, x_static: torch.Tensor, x_history: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.static(x_static), self.history(x_history)], dim=1)).squeeze(-1)


class _Column(nn.Module):
    """shap's PyTorch explainer wants outputs of shape (n, k)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *inputs):
        return self.model(*inputs).unsqueeze(1)


NETWORKS = {
    "standin-mlp": (StandInMLP, False),
    "standin-cnn": (StandInCNN, True),
    "credit-mlp": (lambda: CreditMLP(N_STATIC_MLP), False),
    "credit-cnn": (lambda: CreditCNN(N_STATIC_CNN, n_channels=CHANNELS, months=MONTHS), True),
}


def make_data(n: int, *, history: bool, seed: int) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Inputs with off-centre, unequal scales (so BatchNorm statistics matter), a few
    one-hot columns, and a default label that depends on them."""
    g = torch.Generator().manual_seed(seed)
    n_static = N_STATIC_CNN if history else N_STATIC_MLP
    static = torch.randn(n, n_static, generator=g) * torch.linspace(0.5, 3.0, n_static) + 1.0
    static[:, :4] = nn.functional.one_hot(torch.randint(0, 4, (n,), generator=g), 4).float()
    logit = static[:, 4] - 0.5 * static[:, 5] + 0.3 * static[:, 0]
    if not history:
        return (static,), (logit > logit.median()).float()
    hist = torch.randn(n, CHANNELS, MONTHS, generator=g) * 2.0 + 0.5
    logit = logit + hist[:, 2, -6:].mean(dim=1)
    return (static, hist), (logit > logit.median()).float()


def build(name: str, *, trained: bool) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    """A seeded network in eval mode and its training inputs; ``trained`` takes a few
    optimiser steps so that ReLUs are in mixed states; BatchNorm statistics are always warmed."""
    model, inputs = _build(name, trained)
    return copy.deepcopy(model), inputs


@functools.cache
def _build(name: str, trained: bool) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    factory, history = NETWORKS[name]
    torch.manual_seed(0)
    model = factory()
    inputs, labels = make_data(1_000, history=history, seed=1)
    model.train()
    if trained:
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(30):
            optimiser.zero_grad()
            nn.functional.binary_cross_entropy_with_logits(model(*inputs), labels).backward()
            optimiser.step()
        model.zero_grad(set_to_none=True)
    else:
        with torch.no_grad():
            for _ in range(10):
                model(*inputs)  # running statistics far from (0, 1)
    return model.eval(), inputs


def shap_values(model: nn.Module, background, rows) -> list[np.ndarray]:
    """shap's values, one array per input (shap takes a list for several inputs, a tensor for one)."""
    several = len(rows) > 1
    explainer = shap.DeepExplainer(_Column(copy.deepcopy(model)), list(background) if several else background[0])
    values = explainer.shap_values(list(rows) if several else rows[0])
    values = values if isinstance(values, list) else [values]
    return [v[..., 0] for v in values]


def no_hooks(model: nn.Module) -> bool:
    return not any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks for m in model.modules()
    )


@pytest.mark.parametrize("trained", [False, True], ids=["random", "trained"])
@pytest.mark.parametrize("name", list(NETWORKS))
def test_it_matches_shap_deep_explainer(name, trained):
    model, inputs = build(name, trained=trained)
    background = tuple(x[:N_BACKGROUND] for x in inputs)
    # Two rows equal to background rows: every unit of those pairs takes shap's
    # small-difference branch (the gradient at the reference).
    rows = tuple(torch.cat([x[500:518], x[3:5]]) for x in inputs)

    explanation = DeepExplainer(model, background).explain(rows)
    expected = shap_values(model, background, rows)

    for ours, theirs in zip(explanation.attributions, expected, strict=True):
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < 1e-4
    assert explanation.additivity_error().max() < 1e-4
    with torch.no_grad():
        assert explanation.base_value == pytest.approx(model(*background).double().mean().item(), abs=1e-6)


@pytest.mark.parametrize(
    "activation", [nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.Sigmoid, nn.Tanh, nn.Softplus], ids=lambda a: a.__name__
)
def test_other_elementwise_nonlinearities_match_shap(activation):
    torch.manual_seed(0)
    layers = [nn.Linear(8, 16), activation(), nn.Linear(16, 8), activation(), nn.Linear(8, 1), nn.Flatten(0)]
    model = nn.Sequential(*layers).eval()
    background, rows = (torch.randn(30, 8),), (torch.randn(10, 8) * 2,)

    explanation = DeepExplainer(model, background).explain(rows)
    (expected,) = shap_values(model, background, rows)

    assert np.abs(explanation.attributions[0] - expected).max() < 1e-4
    assert explanation.additivity_error().max() < 1e-4


@pytest.mark.parametrize("dtype, n_rows", [(torch.float32, 3_000), (torch.float64, 1_000)], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=[pytest.mark.slow] if history else []) for name, (_, history) in NETWORKS.items()],
)
def test_attributions_add_up_to_the_output_on_every_row(name, dtype, n_rows):
    model, _ = build(name, trained=True)
    background, _ = make_data(N_BACKGROUND, history=NETWORKS[name][1], seed=2)
    rows, _ = make_data(n_rows, history=NETWORKS[name][1], seed=3)

    explanation = DeepExplainer(model, background, dtype=dtype).explain(rows)

    assert explanation.additivity_error().max() < 1e-4
    with torch.no_grad():
        output = model(*rows).double().numpy()
    assert np.abs(explanation.output - output).max() < 1e-4
    assert [a.shape for a in explanation.attributions] == [tuple(x.shape) for x in rows]
    assert all(a.dtype == np.float64 for a in explanation.attributions)


def test_float64_and_float32_agree():
    model, inputs = build("credit-cnn", trained=True)
    background = tuple(x[:N_BACKGROUND] for x in inputs)
    rows = tuple(x[200:400] for x in inputs)

    single = DeepExplainer(model, background).explain(rows)
    double = DeepExplainer(model, background, dtype=torch.float64).explain(rows)

    for a, b in zip(single.attributions, double.attributions, strict=True):
        assert np.abs(a - b).max() < 1e-5
    assert double.additivity_error().max() < 1e-10


@pytest.mark.parametrize("name", ["standin-mlp", "standin-cnn"])
def test_it_leaves_the_model_as_it_was(name):
    model, inputs = build(name, trained=True)
    model.train()  # a caller in the middle of training: the flag must survive
    before = {k: v.clone() for k, v in model.state_dict().items()}

    explainer = DeepExplainer(model, tuple(x[:50] for x in inputs))
    explainer.explain(tuple(x[100:150] for x in inputs), batch_size=7)

    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert no_hooks(model)
    assert no_hooks(explainer.model_)
    assert no_hooks(explainer.float64_.model_)


def test_hooks_are_removed_when_an_explanation_fails():
    model, inputs = build("standin-cnn", trained=False)
    explainer = DeepExplainer(model, tuple(x[:20] for x in inputs)).fit()

    with pytest.raises(RuntimeError):
        explainer.explain((inputs[0][:5], inputs[1][:5, :, :12]))  # history too short

    assert no_hooks(explainer.model_)
    assert no_hooks(model)


def test_rows_that_miss_additivity_in_float32_are_explained_again_in_float64():
    model, inputs = build("credit-mlp", trained=True)
    with torch.no_grad():
        model.head.weight.mul_(2_000.0)  # logits in the thousands: float32 rounding exceeds 1e-4
    background, rows = (inputs[0][:N_BACKGROUND],), (inputs[0][200:700],)

    raw = DeepExplainer(model, background, additivity_tolerance=None).explain(rows)
    checked = DeepExplainer(model, background).explain(rows)
    exact = DeepExplainer(model, background, dtype=torch.float64).explain(rows)

    # Checked against the exact base value, which the checked explanation uses.
    missed = np.abs(raw.attributions[0].sum(axis=1) + exact.base_value - raw.output) > 5e-5
    assert raw.additivity_error().max() > 1e-4 and 0 < missed.sum() < len(missed)
    assert checked.base_value == exact.base_value
    assert checked.additivity_error().max() < 1e-4
    np.testing.assert_array_equal(checked.attributions[0][missed], exact.attributions[0][missed])
    np.testing.assert_array_equal(checked.attributions[0][~missed], raw.attributions[0][~missed])


def test_it_is_deterministic_and_independent_of_the_chunk_size():
    model, inputs = build("credit-cnn", trained=True)
    explainer = DeepExplainer(model, tuple(x[:N_BACKGROUND] for x in inputs))
    rows = tuple(x[100:230] for x in inputs)

    first = explainer.explain(rows)
    again = explainer.explain(rows)
    chunked = explainer.explain(rows, batch_size=7)

    for a, b, c in zip(first.attributions, again.attributions, chunked.attributions, strict=True):
        assert np.array_equal(a, b)
        assert np.abs(a - c).max() < 1e-6
    assert np.array_equal(first.output, again.output)


def test_it_explains_under_inference_mode():
    model, inputs = build("standin-mlp", trained=True)
    with torch.inference_mode():
        explanation = DeepExplainer(model, (inputs[0][:30],)).explain((inputs[0][30:60],))
    assert explanation.additivity_error().max() < 1e-4


def test_background_size_is_the_callers_choice():
    model, inputs = build("credit-cnn", trained=True)
    background = tuple(x[:50] for x in inputs)

    explainer = DeepExplainer(model, background).fit()
    explanation = explainer.explain(tuple(x[60:90] for x in inputs))

    with torch.no_grad():
        assert explainer.expected_value_ == pytest.approx(model(*background).double().mean().item(), abs=1e-6)
    assert explanation.base_value == explainer.expected_value_
    assert explanation.additivity_error().max() < 1e-4


def test_it_refuses_layers_the_rescale_rule_does_not_cover():
    background = (torch.randn(10, 6),)
    with pytest.raises(TypeError, match="MaxPool1d"):
        DeepExplainer(nn.Sequential(nn.Unflatten(1, (1, 6)), nn.MaxPool1d(2), nn.Flatten()), background).fit()
    with pytest.raises(ValueError, match="in-place"):
        DeepExplainer(nn.Sequential(nn.Linear(6, 4), nn.ReLU(inplace=True), nn.Linear(4, 1)), background).fit()


def test_it_refuses_a_relu_instance_used_twice():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.relu = nn.Linear(6, 4), nn.Linear(4, 1), nn.ReLU()

        def forward(self, x):
            return self.b(self.relu(self.relu(self.a(x)))).squeeze(-1)

    with pytest.raises(ValueError, match="one module instance per use"):
        DeepExplainer(Shared(), (torch.randn(10, 6),)).fit()


def test_group_attributions_sums_the_columns_of_one_feature():
    attributions = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, -1.0, 0.0, 2.0]])
    names, grouped = group_attributions(attributions, ["income", "purpose", "purpose", "dti"])

    assert names == ["income", "purpose", "dti"]
    np.testing.assert_allclose(grouped, [[1.0, 5.0, 4.0], [0.5, -1.0, 2.0]])
    np.testing.assert_allclose(grouped.sum(axis=1), attributions.sum(axis=1))
    with pytest.raises(ValueError):
        group_attributions(attributions, ["income"])


def test_history_helpers_sum_channels_per_month_and_the_recent_months():
    attributions = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)  # (n, C, T), oldest month first

    by_month = history_by_month(attributions)

    np.testing.assert_allclose(by_month, attributions.sum(axis=1))
    np.testing.assert_allclose(history_recent(attributions, 2), attributions[:, :, -2:].sum(axis=(1, 2)))
    np.testing.assert_allclose(history_recent(attributions, 4), attributions.sum(axis=(1, 2)))
