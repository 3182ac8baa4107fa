"""The credit networks: a static MLP and a static + repayment-history CNN.

Both return the raw default logit, shape (n,). Their building blocks are limited to
layers for which the DeepLIFT rescale rule (``models/explain.py``,
``shap.DeepExplainer``) gives exact, additive attributions: ``nn.Linear``,
``nn.Conv1d``, ``nn.BatchNorm1d``, ``nn.Dropout``, ``nn.AvgPool1d``, ``nn.Flatten``
and ``nn.ReLU`` modules, one ReLU instance per use, never in place, never the
functional ``F.relu``: the explainer finds the non-linearities by hooking the
``nn.ReLU`` modules. Keep the ``forward`` signatures stable; the explainer relies on
them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _dense_block(n_in: int, n_out: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(n_in, n_out), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


def _mlp(n_in: int, hidden: Sequence[int], dropout: float) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += _dense_block(n_in, width, dropout)
        n_in = width
    return nn.Sequential(*layers), n_in


class CreditMLP(nn.Module):
    """Static application features -> default logit: Linear/ReLU/Dropout blocks, then a Linear."""

    def __init__(self, n_features: int, hidden: Sequence[int] = (64, 32), dropout: float = 0.1):
        super().__init__()
        self.body, width = _mlp(n_features, hidden, dropout)
        self.head = nn.Linear(width, 1)

    def forward(self, x_static: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x_static)).squeeze(-1)


class CreditCNN(nn.Module):
    """Static features + monthly history (n, channels, months) -> default logit.

    The history branch is a stack of same-length ``Conv1d`` + ``ReLU`` layers, then an
    ``AvgPool1d`` over buckets of ``bucket_months`` months (the last bucket is the most
    recent ``bucket_months`` months) and a ``Linear`` over the flattened buckets. Global
    average pooling would throw away *when* a late payment happened, and recent
    distress matters most; the buckets keep that at a modest parameter count. The
    static branch is a ``Linear`` + ``ReLU``; both are concatenated and go through an
    MLP head.
    """

    def __init__(
        self,
        n_static: int,
        n_channels: int = 4,
        months: int = 24,
        conv_channels: Sequence[int] = (16, 32),
        kernel_size: int = 3,
        hidden: int = 32,
        dropout: float = 0.1,
        bucket_months: int = 6,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd, so the convolutions keep the month axis aligned")
        if months % bucket_months != 0:
            raise ValueError(f"months ({months}) must be a multiple of bucket_months ({bucket_months})")
        conv: list[nn.Module] = []
        c_in = n_channels
        for c_out in conv_channels:
            conv += [nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2), nn.ReLU()]
            c_in = c_out
        conv += [nn.AvgPool1d(bucket_months, stride=bucket_months), nn.Flatten()]
        self.history_conv = nn.Sequential(*conv)
        self.history_dense = nn.Sequential(*_dense_block(c_in * (months // bucket_months), hidden, 0.0))
        self.static_dense = nn.Sequential(*_dense_block(n_static, hidden, 0.0))
        self.head = nn.Sequential(*_dense_block(2 * hidden, hidden, dropout), nn.Linear(hidden, 1))

    def forward(self, x_static: torch.Tensor, x_history: torch.Tensor) -> torch.Tensor:
        h = self.history_dense(self.history_conv(x_history))
        s = self.static_dense(x_static)
        return self.head(torch.cat([s, h], dim=1)).squeeze(-1)
