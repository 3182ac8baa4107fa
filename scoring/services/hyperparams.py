"""The one validator of hyper-parameters, and the bounds on training work per user.

Every entry point that trains (API, portal, ``manage.py train_model``, tuning) goes
through ``model_version_create``, which asks :func:`hyperparameters_validate`: each
value is checked against its model family's declared space (``models.params.ParamSpec``
in ``models/families/``: type and bounds, one place per bound), so a request for 10⁹
epochs, four layers of 4,096 units, ``"abc"`` epochs, a GPU the workers do not have,
or a layer of zero units is a clear 400 at once, not a failure hours later in a worker.
The one rule added here is the deployment's: a ``cuda:N`` device must exist on the
train workers (``TRAIN_GPU_COUNT``), which the pure family code cannot know.

Bounds on work: at most ``TRAIN_MAX_QUEUED_PER_USER`` model versions queued or
training per user, at most ``TUNE_MAX_TRIALS`` trials in a study and
``TUNE_MAX_RUNNING_PER_USER`` studies running per user (429 beyond).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from models.families import FAMILIES
from models.params import ParamError, ParamSpec
from scoring.services.errors import ServiceError


class HyperparameterError(ServiceError, ValueError):
    """Hyper-parameters outside their family's declared space (a 400 naming each)."""

    code = "invalid"
    status = 400


class TooMuchWork(ServiceError):
    """The user already has as much training queued as one user may."""

    code = "throttled"
    status = 429


def family_space(kind: str) -> dict[str, ParamSpec]:
    """The declared space of the family ``kind`` (HyperparameterError for an unknown kind)."""
    family = FAMILIES.get(kind)
    if family is None:
        raise HyperparameterError(f"Unknown model kind {kind!r}; known: {sorted(FAMILIES)}.")
    return family.space()


def _check(spec: ParamSpec, value: Any) -> Any:
    clean = spec.check(value)
    if spec.type == "device" and isinstance(clean, str) and clean.startswith("cuda:"):
        gpus = settings.TRAIN_GPU_COUNT
        if int(clean.split(":", 1)[1]) >= gpus:
            raise ParamError(spec.name, f"the train workers have {gpus} GPU(s): cuda:0 to cuda:{max(gpus - 1, 0)}")
    return clean


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
            clean[name] = _check(spec, value)
        except ParamError as exc:
            problems[name] = [str(exc).split(": ", 1)[-1]]
    if problems:
        first = next(iter(problems))
        raise HyperparameterError(
            f"Invalid hyper-parameter {first}: {problems[first][0]}.", details={"hyperparameters": problems}
        )
    return clean


# --- Work per user ------------------------------------------------------------------------
def training_capacity_check(*, user, adding: int = 1) -> None:
    """Refuse (429) ``adding`` new trainings that would take ``user`` past TRAIN_MAX_QUEUED_PER_USER queued or training."""
    from scoring.models import ModelVersion

    if user is None:
        return
    limit = settings.TRAIN_MAX_QUEUED_PER_USER
    busy = ModelVersion.objects.filter(
        trained_by=user, status__in=(ModelVersion.STATUS_QUEUED, ModelVersion.STATUS_TRAINING)
    ).count()
    if busy + adding > limit:
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
