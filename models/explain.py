"""Per-feature explanations of credit decisions: DeepSHAP with the DeepLIFT rescale rule.

An explanation splits one applicant's model output (the raw logit, in log-odds)
into a contribution per input value. The contributions plus the *base value*
(the mean output over a background sample of applicants) add up exactly to the
output; the service relies on that when it shows reasons for a decision.

The rule is the one ``shap.DeepExplainer`` applies to PyTorch models. For one
row ``x`` and one reference row ``r`` from the background, every elementwise
nonlinearity passes back the multiplier ``(f(x_in) - f(r_in)) / (x_in - r_in)``
instead of its gradient (the ordinary gradient at ``r_in`` where the difference
is below ``1e-6``, as shap does), and affine layers (Linear, Conv, BatchNorm and
Dropout in eval mode, average pooling, flatten, concatenation) pass gradients
back unchanged. The attribution of ``x`` against ``r`` is ``(x - r) * multiplier``
and the explanation averages it over the references.

shap loops over rows in Python and runs every (row, reference) pair twice; here
a chunk of rows times all references is one batch through the network: the
references' activations are computed once in :meth:`DeepExplainer.fit`, and the
nonlinear modules' outputs are routed through :class:`_Rescale` (a forward hook,
removed afterwards) so one backward pass gives every pair's multipliers.
Same values as shap to about 1e-5, tens of times faster (bench/explain_speed.py).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

# Affine in eval mode, so the ordinary gradient is already the DeepLIFT multiplier.
_AFFINE_MODULES: tuple[type[nn.Module], ...] = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
)
# Elementwise nonlinearities: the rescale rule applies unit by unit.
_NONLINEAR_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.GELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
)
# shap's threshold for "the input did not move": below it the multiplier is the gradient.
_DELTA_EPS = 1e-6
# Rows per chunk are chosen so that a chunk holds about this many (row, reference)
# pairs: large enough for efficient matrix products, small enough to stay in cache
# and to bound memory (see bench/explain_speed.py).
_PAIRS_PER_CHUNK = 4096


@dataclass(frozen=True)
class Explanation:
    """Explanation of a batch of rows.

    ``attributions[k]`` has the shape of the k-th model input: the contribution
    of each input value to the output, in log-odds. For every row, the sum of
    all its attributions (over all inputs) plus ``base_value`` equals ``output``.
    """

    attributions: tuple[np.ndarray, ...]
    base_value: float
    output: np.ndarray

    def additivity_error(self) -> np.ndarray:
        """Per row: |sum of attributions + base value - output| (should be below 1e-4)."""
        total = sum(a.reshape(a.shape[0], -1).sum(axis=1) for a in self.attributions)
        return np.abs(total + self.base_value - self.output)


@dataclass
class _Reference:
    """What a nonlinear module saw on the background: its input, output and gradient."""

    inputs: Tensor
    outputs: Tensor
    gradient: Tensor


class DeepExplainer:
    """DeepSHAP explainer (DeepLIFT rescale rule, as ``shap.DeepExplainer``) for a PyTorch model.

    ``model(*inputs)`` must return one raw logit per row, shape ``(n,)`` or ``(n, 1)``,
    and be built from the affine modules above and elementwise nonlinearity
    modules (``nn.ReLU`` and the like), each nonlinearity instance used once per
    forward. Functional nonlinearities (``F.relu``) are invisible to the explainer
    and would break additivity; unknown leaf modules are refused.

    ``background`` is a tuple with one tensor per model input: the reference
    applicants (typically 50-200 rows sampled from training data). The base value
    is the mean output over them, and the cost of an explanation grows linearly
    with their number.

    :meth:`fit` explains a snapshot: a private copy of the model, so the caller's
    model is never hooked or switched to eval mode, and later changes to it are
    not seen until ``fit`` runs again. The copy carries hooks while ``explain``
    runs, so one explainer serves one ``explain`` call at a time (one per thread).

    ``dtype`` is the precision of the computation. float32 attributions add up to
    the output to float32 precision (about 1e-7 of the largest activations: 1e-6
    for logits of a few units, 1e-5 at |logit| = 60); rows that miss by more than
    ``additivity_tolerance`` are explained again in float64 (about 1e-14), so
    every row meets the service's 1e-4. ``additivity_tolerance=None`` skips that
    check. float64 throughout is several times slower.
    """

    def __init__(
        self,
        model: nn.Module,
        background: tuple[Tensor, ...],
        *,
        dtype: torch.dtype = torch.float32,
        additivity_tolerance: float | None = 5e-5,
    ) -> None:
        self.model = model
        self.background = background
        self.dtype = dtype
        self.additivity_tolerance = additivity_tolerance

    def fit(self) -> DeepExplainer:
        """Copy the model, run the background through it once and remember what every nonlinearity saw."""
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, not {self.dtype}")
        with torch.inference_mode(False):
            # A private, frozen copy in eval mode: the caller's model never carries our
            # hooks (not even while another thread scores with it), its training flags
            # and parameters stay as they are, and no parameter gradient is recorded.
            model = copy.deepcopy(self.model).to(self.dtype).eval().requires_grad_(False)
            nonlinear = _check_modules(model)
            device = next((p.device for p in model.parameters()), self.background[0].device)
            background = tuple(b.detach().to(device=device, dtype=self.dtype).clone() for b in self.background)
            if len({b.shape[0] for b in background}) != 1:
                raise ValueError("all background tensors must have the same number of rows")
            seen: dict[str, list[Tensor]] = {name: [] for name in nonlinear}
            handles = []
            try:
                for name, module in nonlinear.items():
                    handles.append(module.register_forward_hook(_recorder(seen[name])))
                with torch.no_grad():
                    output = _as_logits(model(*background))
            finally:
                for handle in handles:
                    handle.remove()
            references = {}
            for name, inputs in seen.items():
                if len(inputs) != 1:
                    raise ValueError(
                        f"nonlinear module {name!r} ran {len(inputs)} times in one forward pass; "
                        "the rescale rule needs one module instance per use"
                    )
                references[name] = _reference(nonlinear[name], inputs[0])
        self.model_ = model
        self.background_ = background
        self.references_ = references
        self.expected_value_ = float(output.double().mean())
        self.float64_ = None
        if self.dtype == torch.float32 and self.additivity_tolerance is not None:
            self.float64_ = DeepExplainer(self.model, self.background, dtype=torch.float64).fit()
            # One base value for float32 and float64 rows alike: the exact one.
            self.expected_value_ = self.float64_.expected_value_
        return self

    def explain(self, inputs: tuple[Tensor, ...], batch_size: int | None = None) -> Explanation:
        """Explain every row of ``inputs`` (one tensor per model input, as for ``model(*inputs)``).

        ``batch_size`` is the number of rows per chunk; the default keeps a chunk
        near ``_PAIRS_PER_CHUNK`` (row, reference) pairs. Rows whose float32
        attributions miss additivity by more than ``additivity_tolerance`` are
        explained again in float64. Calls :meth:`fit` first if it has not run.
        """
        if not hasattr(self, "references_"):
            self.fit()
        if len(inputs) != len(self.background_):
            raise ValueError(f"expected {len(self.background_)} input tensors, got {len(inputs)}")
        if len({x.shape[0] for x in inputs}) != 1:
            raise ValueError("all input tensors must have the same number of rows")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        attributions, output = self._explain(inputs, batch_size)
        if self.float64_ is not None:
            explanation = Explanation(attributions=attributions, base_value=self.expected_value_, output=output)
            missed = np.flatnonzero(explanation.additivity_error() > self.additivity_tolerance)
            if missed.size:
                again = self.float64_.explain(tuple(x[torch.as_tensor(missed)] for x in inputs), batch_size)
                for attribution, exact in zip(attributions, again.attributions, strict=True):
                    attribution[missed] = exact
                output[missed] = again.output
        return Explanation(attributions=attributions, base_value=self.expected_value_, output=output)

    def _explain(self, inputs: tuple[Tensor, ...], batch_size: int | None) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        model, background = self.model_, self.background_
        n_refs = background[0].shape[0]
        rows = batch_size or max(1, _PAIRS_PER_CHUNK // n_refs)
        n = inputs[0].shape[0]
        attributions = tuple(np.empty(tuple(x.shape), dtype=np.float64) for x in inputs)
        output = np.empty(n, dtype=np.float64)
        modules = dict(model.named_modules())
        handles = []
        scratch = _Scratch()
        # Autograd is needed even when the caller runs under inference_mode or no_grad.
        with torch.inference_mode(False), torch.enable_grad():
            try:
                for name, reference in self.references_.items():
                    handles.append(modules[name].register_forward_hook(_rescaler(name, reference, scratch)))
                for start in range(0, n, rows):
                    chunk = tuple(
                        x[start : start + rows].detach().to(device=background[0].device, dtype=self.dtype).clone()
                        for x in inputs
                    )
                    phis, out = _explain_chunk(model, chunk, background)
                    for attribution, phi in zip(attributions, phis, strict=True):
                        attribution[start : start + rows] = phi
                    output[start : start + rows] = out
            finally:
                for handle in handles:
                    handle.remove()
        return attributions, output


def _explain_chunk(model: nn.Module, chunk: tuple[Tensor, ...], background: tuple[Tensor, ...]):
    """Attributions and outputs of one chunk of rows, all references at once.

    Pairs are laid out row-major: pair ``i * n_refs + b`` is row ``i`` against
    reference ``b``; the hooks on the nonlinear modules rely on that layout.
    """
    n, n_refs = chunk[0].shape[0], background[0].shape[0]
    tiled = tuple(
        x.unsqueeze(1).expand(n, n_refs, *x.shape[1:]).reshape(n * n_refs, *x.shape[1:]).requires_grad_() for x in chunk
    )
    out = _as_logits(model(*tiled))
    # Each pair's output depends on that pair only (eval mode), so one backward
    # pass of the sum gives every pair's multipliers.
    grads = torch.autograd.grad(out.sum(), tiled, allow_unused=True)
    phis = []
    for x, ref, grad in zip(chunk, background, grads, strict=True):
        if grad is None:  # an input the output does not depend on
            phis.append(np.zeros(tuple(x.shape)))
            continue
        grad = grad.view(n, n_refs, *x.shape[1:])
        phi = (grad * (x.unsqueeze(1) - ref.unsqueeze(0))).mean(dim=1)
        phis.append(phi.detach().cpu().double().numpy())
    # The pair's output is the row's output whatever the reference: take the first.
    return phis, out.detach()[::n_refs].cpu().double().numpy()


class _Rescale(torch.autograd.Function):
    """A nonlinearity whose backward pass multiplies by the DeepLIFT rescale multiplier.

    Forward returns the module's own (already computed) output; the multiplier of
    pair (row i, reference b) is ``(y - y_ref) / (x - x_ref)``, or the gradient at
    the reference where ``|x - x_ref| < 1e-6`` (shap keeps the gradient of the
    reference half of its doubled batch, which is what it then uses).
    """

    @staticmethod
    def forward(ctx, x_in: Tensor, y: Tensor, reference: _Reference, multiplier: Tensor, scratch: _Scratch) -> Tensor:
        shape = multiplier.shape  # (rows, references, *unit shape)
        delta_in = torch.sub(x_in.detach().reshape(shape), reference.inputs, out=scratch.get("delta", shape, x_in))
        torch.sub(y.reshape(shape), reference.outputs, out=multiplier).div_(delta_in)
        small = torch.lt(delta_in.abs_(), _DELTA_EPS, out=scratch.get("small", shape, x_in, torch.bool))
        torch.where(small, reference.gradient, multiplier, out=multiplier)
        ctx.save_for_backward(multiplier.view(x_in.shape))
        return y

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (multiplier,) = ctx.saved_tensors
        return grad_output * multiplier, None, None, None, None


def _rescaler(name: str, reference: _Reference, scratch: _Scratch):
    def hook(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> Tensor:
        x_in = args[0]
        shape = (x_in.shape[0] // reference.inputs.shape[0], *reference.inputs.shape)
        multiplier = scratch.get(name, shape, x_in)
        # The detached output becomes _Rescale's output, so the module's own
        # gradient (relu's step function) never enters the backward pass.
        return _Rescale.apply(x_in, output.detach(), reference, multiplier, scratch)

    return hook


class _Scratch:
    """Work tensors reused from chunk to chunk: each nonlinear module's multipliers and
    the shared temporaries. Fresh tensors of this size cost more than the arithmetic
    on them (the memory is paged in anew every chunk). A module's multipliers are
    rewritten only by the next chunk's forward pass, after this chunk's backward pass."""

    def __init__(self) -> None:
        self._tensors: dict[str, Tensor] = {}

    def get(self, key: str, shape: tuple[int, ...], like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        dtype = dtype or like.dtype
        size = int(np.prod(shape))
        tensor = self._tensors.get(key)
        if tensor is None or tensor.numel() < size or tensor.dtype != dtype or tensor.device != like.device:
            tensor = self._tensors[key] = torch.empty(size, dtype=dtype, device=like.device)
        return tensor[:size].view(shape)


def _recorder(store: list[Tensor]):
    def hook(module: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        store.append(args[0].detach())

    return hook


def _reference(module: nn.Module, inputs: Tensor) -> _Reference:
    with torch.enable_grad():
        leaf = inputs.clone().requires_grad_()
        outputs = module(leaf)
        # Elementwise, so the gradient of the sum is the derivative unit by unit.
        (gradient,) = torch.autograd.grad(outputs.sum(), leaf)
    return _Reference(inputs=inputs, outputs=outputs.detach(), gradient=gradient.detach())


def _check_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The model's nonlinear modules by name; refuses leaf modules the rule does not cover."""
    nonlinear = {}
    for name, module in model.named_modules():
        if any(True for _ in module.children()):
            continue
        if isinstance(module, _NONLINEAR_MODULES):
            if getattr(module, "inplace", False):
                raise ValueError(f"module {name!r} is in-place; the explainer needs its input after it ran")
            nonlinear[name] = module
        elif not isinstance(module, _AFFINE_MODULES):
            raise TypeError(f"module {name!r} of type {type(module).__name__} is not supported by the explainer")
    return nonlinear


def _as_logits(output: Tensor) -> Tensor:
    if output.dim() == 2 and output.shape[1] == 1:
        return output[:, 0]
    if output.dim() != 1:
        raise ValueError(f"the model must return one logit per row, got output of shape {tuple(output.shape)}")
    return output


def group_attributions(attributions: np.ndarray, groups: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Sum the columns of ``attributions`` (n, F) that belong to one group.

    ``groups[j]`` names the source feature of column ``j`` (the one-hot columns
    of ``purpose`` all say ``"purpose"``). Returns the group names in order of
    first appearance and an (n, G) array; rows still add up to the output.
    """
    if attributions.ndim != 2 or attributions.shape[1] != len(groups):
        raise ValueError(f"expected attributions of shape (n, {len(groups)}), got {attributions.shape}")
    names = list(dict.fromkeys(groups))
    index = {name: g for g, name in enumerate(names)}
    membership = np.zeros((len(groups), len(names)), dtype=attributions.dtype)
    membership[np.arange(len(groups)), [index[name] for name in groups]] = 1.0
    return names, attributions @ membership


def history_by_month(attributions: np.ndarray) -> np.ndarray:
    """Sum history attributions (n, C, T) over channels: one contribution per month, (n, T).

    The time axis is the last one, oldest month first (as the networks take it).
    """
    if attributions.ndim != 3:
        raise ValueError(f"expected history attributions of shape (n, C, T), got {attributions.shape}")
    return attributions.sum(axis=1)


def history_recent(attributions: np.ndarray, months: int) -> np.ndarray:
    """Total contribution (n,) of the last ``months`` months of history (n, C, T), all channels."""
    if months < 1:
        raise ValueError("months must be at least 1")
    return history_by_month(attributions)[:, -months:].sum(axis=1)
