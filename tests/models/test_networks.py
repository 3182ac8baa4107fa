"""The networks: output shapes, and only the layers exact DeepLIFT/SHAP supports."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from models.networks import CreditCNN, CreditMLP

ALLOWED = (nn.Linear, nn.Conv1d, nn.BatchNorm1d, nn.Dropout, nn.AvgPool1d, nn.Flatten, nn.ReLU, nn.Sequential)


def networks():
    return [
        (CreditMLP(20), (torch.randn(8, 20),)),
        (CreditMLP(20, hidden=(16,), dropout=0.0), (torch.randn(8, 20),)),
        (CreditCNN(20), (torch.randn(8, 20), torch.randn(8, 4, 24))),
        (
            CreditCNN(20, months=12, conv_channels=(8,), kernel_size=5, hidden=16),
            (torch.randn(8, 20), torch.randn(8, 4, 12)),
        ),
    ]


@pytest.mark.parametrize(("network", "inputs"), networks())
def test_the_output_is_one_raw_logit_per_applicant(network, inputs):
    network.eval()
    assert network(*inputs).shape == (8,)


@pytest.mark.parametrize(("network", "inputs"), networks())
def test_only_layers_with_exact_deeplift_rules_and_one_relu_instance_per_use(network, inputs):
    modules = [m for m in network.modules() if m is not network]
    assert all(isinstance(m, ALLOWED) for m in modules), {type(m).__name__ for m in modules}
    relus = [m for m in modules if isinstance(m, nn.ReLU)]
    assert relus and all(not relu.inplace for relu in relus)
    assert len({id(r) for r in relus}) == len(relus)


@pytest.mark.parametrize(("network", "inputs"), networks())
def test_every_non_linearity_is_an_nn_relu_module(network, inputs):
    # With each nn.ReLU replaced by the identity, the network must be affine in its
    # inputs: a functional relu hidden in forward() would break that.
    linear = copy.deepcopy(network).eval()
    for name, module in list(linear.named_modules()):
        if isinstance(module, nn.ReLU):
            parent = linear.get_submodule(name.rpartition(".")[0]) if "." in name else linear
            setattr(parent, name.rpartition(".")[2], nn.Identity())
    a = tuple(torch.randn_like(x) for x in inputs)
    b = tuple(torch.randn_like(x) for x in inputs)
    zero = tuple(torch.zeros_like(x) for x in inputs)
    with torch.no_grad():
        lhs = linear(*(x + y for x, y in zip(a, b, strict=True))) - linear(*b)
        rhs = linear(*a) - linear(*zero)
    torch.testing.assert_close(lhs, rhs, atol=1e-4, rtol=1e-4)


def test_the_cnn_sees_when_a_late_payment_happened():
    torch.manual_seed(0)
    network = CreditCNN(5).eval()
    static = torch.zeros(2, 5)
    history = torch.zeros(2, 4, 24)
    history[0, 2, 8] = 3.0  # late over a year ago
    history[1, 2, 20] = 3.0  # late four months ago
    with torch.no_grad():
        out = network(static, history)
    assert out[0] != out[1]  # global average pooling (away from the edges) would give equal outputs


def test_the_cnn_refuses_an_even_kernel_or_months_not_in_whole_buckets():
    with pytest.raises(ValueError, match="odd"):
        CreditCNN(5, kernel_size=4)
    with pytest.raises(ValueError, match="multiple"):
        CreditCNN(5, months=20, bucket_months=6)
