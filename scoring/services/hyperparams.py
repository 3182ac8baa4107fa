"""The one validator of hyper-parameters, and the bounds on training work per user.

Every entry point that trains (API, portal, ``manage.py train_model``, tuning) goes
through ``model_version_create``, which asks :func:`hyperparameters_validate`: each
value is checked against its model family's declared space (type and bounds), so a
request for 10⁹ epochs, four layers of 4,096 units, ``"abc"`` epochs, a GPU the
workers do not have, or a layer of zero units is a clear 400 at once, not a failure
hours later in a worker.

The space of each family is declared in ``FAMILY_SPACES`` below, keyed by kind.
When the model families' own declarations land (``models/params.py``), this table
is to be built from them; the validator only needs, per parameter, a check that
turns a JSON value into a clean one or says why not.

Bounds on work: at most ``TRAIN_MAX_QUEUED_PER_USER`` model versions queued or
training per user, at most ``TUNE_MAX_TRIALS`` trials in a study and
``TUNE_MAX_RUNNING_PER_USER`` studies running per user (429 beyond).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from scoring.services.errors import ServiceError


class HyperparameterError(ServiceError, ValueError):
    """Hyper-parameters outside their family's declared space (a 400 naming each)."""

    code = "invalid"
    status = 400


class TooMuchWork(ServiceError):
    """The user already has as much training queued as one user may."""

    code = "throttled"
    status = 429


class _Invalid(Exception):
    pass


@dataclass(frozen=True)
class ParamSpec:
    """One hyper-parameter: a check from a JSON value to a clean one (raising
    ``_Invalid`` with the reason), and a description for people."""

    name: str
    check: Callable[[Any], Any]
    description: str


def _number(value: Any, *, whole: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid("must be a whole number" if whole else "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid("must be finite")
    if whole:
        if isinstance(value, float) and not value.is_integer():
            raise _Invalid("must be a whole number")
        return int(value)
    return float(value)


def integer(low: int, high: int, *, optional: bool = False) -> Callable[[Any], Any]:
    def check(value: Any) -> int | None:
        if value is None and optional:
            return None
        number = _number(value, whole=True)
        if not low <= number <= high:
            raise _Invalid(f"must be between {low} and {high}")
        return int(number)

    return check


def real(low: float, high: float) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        number = _number(value, whole=False)
        if not low <= number <= high:
            raise _Invalid(f"must be between {low:g} and {high:g}")
        return float(number)

    return check


def widths(low: int, high: int, *, max_layers: int, single: bool = False) -> Callable[[Any], Any]:
    """Layer widths: a list of 1..``max_layers`` whole numbers (or one number when ``single``)."""
    item = integer(low, high)

    def check(value: Any) -> Any:
        if value is None:
            return None
        if single:
            return item(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list | tuple) or not 1 <= len(value) <= max_layers:
            raise _Invalid(f"must be a list of 1 to {max_layers} layer widths")
        try:
            return [item(v) for v in value]
        except _Invalid as exc:
            raise _Invalid(f"each width {exc}") from None

    return check


def pos_weight(value: Any) -> Any:
    if value is None or value == "balanced":
        return value
    try:
        return real(0.01, 1000.0)(value)
    except _Invalid:
        raise _Invalid('must be "balanced", null or a number between 0.01 and 1000') from None


_DEVICE = re.compile(r"^(auto|cpu|cuda)$|^cuda:(\d{1,2})$")


def device(value: Any) -> str:
    if not isinstance(value, str) or not (match := _DEVICE.match(value)):
        raise _Invalid('must be "auto", "cpu", "cuda" or "cuda:N"')
    if match.group(2) is not None and int(match.group(2)) >= settings.TRAIN_GPU_COUNT:
        raise _Invalid(
            f"the train workers have {settings.TRAIN_GPU_COUNT} GPU(s): cuda:0 to cuda:{max(settings.TRAIN_GPU_COUNT - 1, 0)}"
        )
    return value


def _common() -> list[ParamSpec]:
    return [
        ParamSpec("dropout", real(0.0, 0.9), "dropout rate"),
        ParamSpec("lr", real(1e-6, 1.0), "learning rate (AdamW)"),
        ParamSpec("weight_decay", real(0.0, 10.0), "decoupled weight decay"),
        ParamSpec("batch_size", integer(16, 8192, optional=True), "rows per step (null: an eighth of the data)"),
        ParamSpec("max_epochs", integer(1, 500), "most epochs"),
        ParamSpec("patience", integer(1, 100), "epochs without validation gain before stopping"),
        ParamSpec("pos_weight", pos_weight, '"balanced", null or a number'),
        ParamSpec("clip", real(0.5, 100.0), "clip of standardised numbers"),
        ParamSpec("min_category_count", integer(1, 100_000), "rarer categories become 'other'"),
        ParamSpec("validation_fraction", real(0.05, 0.4), "carved for early stopping"),
        ParamSpec("calibration_fraction", real(0.05, 0.4), "carved for Platt scaling"),
        ParamSpec("device", device, '"auto", "cpu", "cuda" or "cuda:N"'),
        ParamSpec("num_threads", integer(1, 64, optional=True), "CPU threads (null: the CPUs less one)"),
    ]


FAMILY_SPACES: dict[str, dict[str, ParamSpec]] = {
    "mlp": {
        spec.name: spec
        for spec in (*_common(), ParamSpec("hidden", widths(2, 512, max_layers=4), "layer widths, 1 to 4 of 2..512"))
    },
    "cnn": {
        spec.name: spec
        for spec in (
            *_common(),
            ParamSpec("hidden", widths(2, 256, max_layers=1, single=True), "branch and head width, 2..256"),
            ParamSpec("conv_channels", widths(1, 256, max_layers=4), "history convolution channels"),
            ParamSpec("kernel_size", integer(1, 12), "convolution kernel (months)"),
            ParamSpec("bucket_months", integer(1, 24), "months per history bucket"),
        )
    },
}


def _from_family(spec) -> ParamSpec:
    """A family's own ``models.params.ParamSpec`` as a check of this validator."""
    from models.params import ParamError

    def check(value: Any) -> Any:
        try:
            return spec.check(value)
        except ParamError as exc:
            raise _Invalid(str(exc).split(": ", 1)[-1]) from None

    return ParamSpec(spec.name, check, spec.help or spec.name)


def family_space(kind: str) -> dict[str, ParamSpec]:
    from models.families import FAMILIES

    if kind in FAMILY_SPACES:
        return FAMILY_SPACES[kind]
    if kind in FAMILIES:  # a family without an entry above: its declared space is the rule
        return {name: _from_family(spec) for name, spec in FAMILIES[kind].space().items()}
    raise HyperparameterError(f"Unknown model kind {kind!r}; known: {sorted(FAMILIES)}.")


def hyperparameters_validate(*, kind: str, values: dict[str, Any] | None) -> dict[str, Any]:
    """``values`` checked against the family's space: the clean values, or
    :class:`HyperparameterError` naming every problem."""
    space = family_space(kind)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise HyperparameterError("Hyper-parameters must be an object.")
    problems: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for name, value in values.items():
        spec = space.get(name)
        if spec is None:
            problems[str(name)] = [f"unknown for {kind}; known: {', '.join(sorted(space))}"]
            continue
        try:
            clean[name] = spec.check(value)
        except _Invalid as exc:
            problems[name] = [str(exc)]
    if problems:
        first = next(iter(problems))
        raise HyperparameterError(
            f"Invalid hyper-parameter {first}: {problems[first][0]}.", details={"hyperparameters": problems}
        )
    return clean


# --- Work per user ------------------------------------------------------------------------
def training_capacity_check(*, user) -> None:
    """Refuse (429) a new training while ``user`` has TRAIN_MAX_QUEUED_PER_USER queued or training."""
    from scoring.models import ModelVersion

    if user is None:
        return
    limit = settings.TRAIN_MAX_QUEUED_PER_USER
    busy = ModelVersion.objects.filter(
        trained_by=user, status__in=(ModelVersion.STATUS_QUEUED, ModelVersion.STATUS_TRAINING)
    ).count()
    if busy >= limit:
        raise TooMuchWork(f"You have {busy} model versions queued or training; at most {limit} at a time.")


def tuning_capacity_check(*, user, n_trials: int) -> None:
    """Trials per study within TUNE_MAX_TRIALS (400), running studies per user within TUNE_MAX_RUNNING_PER_USER (429)."""
    from scoring.models import TuningStudy

    most = settings.TUNE_MAX_TRIALS
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or not 1 <= n_trials <= most:
        raise HyperparameterError(f"n_trials must be between 1 and {most}.", details={"n_trials": [f"1 to {most}"]})
    if user is None:
        return
    limit = settings.TUNE_MAX_RUNNING_PER_USER
    running = TuningStudy.objects.filter(requested_by=user, status__in=("queued", "running")).count()
    if running >= limit:
        raise TooMuchWork(f"You have {running} tuning studies queued or running; at most {limit} at a time.")
