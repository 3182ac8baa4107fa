"""The model registry's life cycle: trained → approved → champion → retired.

Four eyes: a version is approved only by a validator of its portfolio who did not
train it, and only an approved version can become champion (the one that scores).
A validator may instead reject a version with a reason: rejected is a status of its
own that no step leads out of, so every entry point (API, portal, admin, commands)
refuses to approve, promote or restore it through the same checks below.
"""

from __future__ import annotations

import functools

from django.db import transaction
from django.utils import timezone

from scoring.models import BatchRun, ModelVersion
from scoring.permissions import has_portfolio_perm
from scoring.services.errors import ConflictError


class RegistryError(ConflictError, ValueError):
    """The requested transition is not allowed."""


def _audited(action: str):
    """Record every attempt at a registry step: success, or denied with the reason
    (four eyes, wrong status, no grant). Outermost, so a refusal is recorded after
    the step's own transaction rolled back."""

    def decorate(service):
        @functools.wraps(service)
        def wrapper(*, version: ModelVersion, user, **kwargs):
            from scoring.audit import audit_record

            event = {"action": action, "actor": user, "request": kwargs.get("request"),
                     "portfolio_id": version.portfolio_id, "object_type": "modelversion", "object_ids": [version.pk]}  # fmt: skip
            try:
                result = service(version=version, user=user, **kwargs)
            except RegistryError as error:
                audit_record(**event, outcome="denied", details={"reason": str(error)[:500]})
                raise
            # A step may add facts of its own (the promotion names the version it replaced).
            audit_record(**event, details={"status": result.status, **getattr(result, "audit_details", {})})
            return result

        return wrapper

    return decorate


def _may_validate(user, version: ModelVersion) -> bool:
    # The gate: the validator role and a grant on the version's portfolio.
    return bool(user) and has_portfolio_perm(user, version.portfolio_id, "validate_portfolio")


@_audited("model.approve")
@transaction.atomic
def model_version_approve(*, version: ModelVersion, user) -> ModelVersion:
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != ModelVersion.STATUS_TRAINED:
        raise RegistryError(f"Only a trained model can be approved; this one is {version.status}.")
    if not _may_validate(user, version):
        raise RegistryError("Only a validator of this portfolio can approve its models.")
    if version.trained_by_id is None:
        # Without a known trainer four eyes cannot be checked: nobody may approve it.
        raise RegistryError("Four eyes: this model has no recorded trainer, so nobody can approve it.")
    if version.trained_by_id == user.pk:
        raise RegistryError("Four eyes: the person who trained a model cannot approve it.")
    version.status = ModelVersion.STATUS_APPROVED
    version.approved_by = user
    version.approved_at = timezone.now()
    version.save(update_fields=["status", "approved_by", "approved_at"])
    return version


class PromotionBlocked(RegistryError):
    """A failed stability or fairness report of the version, or a finding of its
    leakage screen at training time, stands in the way; a validator may promote
    anyway by giving a reason, which is recorded and audited."""

    def __init__(self, reports: list, screen_findings: list[str] | None = None) -> None:
        self.reports = reports
        self.screen_findings = list(screen_findings or [])
        message = "Promotion blocked"
        if reports:
            failed = "; ".join(f"{r.get_kind_display()} report #{r.pk} failed: {' '.join(r.alerts)}" for r in reports)
            message += f" by monitoring. {failed}"
        if self.screen_findings:
            message += (". " if not reports else " ") + "The leakage screen flagged " + "; ".join(self.screen_findings)
            message += "."
        super().__init__(f"{message} Give an override reason to promote anyway.")


def promotion_gate(*, version: ModelVersion) -> tuple[list, list[str]]:
    """The one rule of what blocks a promotion, whatever the entry point: the failed
    latest stability and fairness reports of the version (computed now if it has
    none), and what its leakage and sanity screen flagged at training time."""
    from scoring.services.monitoring import promotion_blockers

    return promotion_blockers(model_version=version), version.screen_findings


def _check_promotable(version: ModelVersion, user) -> None:
    if version.status != ModelVersion.STATUS_APPROVED:
        raise RegistryError(f"Only an approved model can become champion; this one is {version.status}.")
    if not _may_validate(user, version):
        raise RegistryError("Only a validator of this portfolio can promote its models.")


@_audited("model.promote")
def model_version_promote(*, version: ModelVersion, user, override_reason: str = "", request=None) -> ModelVersion:
    """Make an approved version the portfolio's champion; the previous champion retires.

    Blocked while the version's latest stability or fairness report failed (one is
    computed now on the portfolio's current applicants if none exists yet), or its
    leakage screen flagged something at training time (``promotion_gate``), unless
    ``override_reason`` says why to promote anyway: it is kept on the version with
    who and when, and audited as ``model.promote_override``."""
    from scoring.audit import audit_record

    version = ModelVersion.objects.select_related("portfolio__schema").get(pk=version.pk)
    _check_promotable(version, user)  # before the reports, which may take a while
    blockers, screen_findings = promotion_gate(version=version)
    blocked = bool(blockers or screen_findings)
    reason = (override_reason or "").strip()
    if blocked and not reason:
        raise PromotionBlocked(blockers, screen_findings)
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        _check_promotable(version, user)
        champions = ModelVersion.objects.filter(portfolio_id=version.portfolio_id, status=ModelVersion.STATUS_CHAMPION)
        replaced = list(champions.values_list("pk", flat=True))
        champions.update(status=ModelVersion.STATUS_RETIRED)
        # Runs going on keep the version they were pinned to at start; they say it retired.
        BatchRun.objects.filter(
            model_version_id__in=replaced, status__in=[BatchRun.STATUS_PENDING, BatchRun.STATUS_RUNNING]
        ).update(model_retired_at=timezone.now())
        version.status = ModelVersion.STATUS_CHAMPION
        version.promoted_by = user
        version.promoted_at = timezone.now()
        fields = ["status", "promoted_by", "promoted_at"]
        if blocked:
            version.promotion_override_reason = reason
            version.promotion_override_by = user
            version.promotion_override_at = version.promoted_at
            fields += ["promotion_override_reason", "promotion_override_by", "promotion_override_at"]
        version.save(update_fields=fields)
        if blocked:
            details: dict = {"reports": [r.pk for r in blockers], "kinds": sorted(r.kind for r in blockers)}
            if screen_findings:
                details["leakage_screen"] = list((version.screen or {}).get("flagged") or [])
                details["reason"] = reason[:500]
            audit_record(
                action="model.promote_override", actor=user, request=request, portfolio_id=version.portfolio_id,
                object_type="modelversion", object_ids=[version.pk], details=details,
            )  # fmt: skip
    version.audit_details = {"replaced": replaced[0] if replaced else None}
    return version


def _check_restorable(version: ModelVersion, user) -> None:
    if version.status != ModelVersion.STATUS_RETIRED or version.approved_by_id is None:
        raise RegistryError(f"Only a retired champion that was approved can be restored; this one is {version.status}.")
    if not _may_validate(user, version):
        raise RegistryError("Only a validator of this portfolio can restore its models.")
    if version.trained_by_id == user.pk:
        raise RegistryError("Four eyes: the person who trained a model cannot make it champion.")


@_audited("model.rollback")
def model_version_restore(*, version: ModelVersion, user, reason: str, request=None) -> ModelVersion:
    """Rollback: make a previously approved, retired version the champion again; the
    current champion retires. A reason is required and kept in the audit event. The
    version passed its approval and monitoring when it was first promoted, so it is not
    approved again; four eyes still applies (its trainer cannot restore it)."""
    reason = (reason or "").strip()
    if not reason:
        raise RegistryError("A rollback needs a reason.")
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        _check_restorable(version, user)
        replaced = list(
            ModelVersion.objects.filter(
                portfolio_id=version.portfolio_id, status=ModelVersion.STATUS_CHAMPION
            ).values_list("pk", flat=True)
        )
        ModelVersion.objects.filter(pk__in=replaced).update(status=ModelVersion.STATUS_RETIRED)
        version.status = ModelVersion.STATUS_CHAMPION
        version.promoted_by = user
        version.promoted_at = timezone.now()
        version.save(update_fields=["status", "promoted_by", "promoted_at"])
        from scoring.audit import audit_record

        audit_record(
            action="model.rollback_reason", actor=user, request=request, portfolio_id=version.portfolio_id,
            object_type="modelversion", object_ids=[version.pk], details={"reason": reason[:500], "replaced": replaced},
        )  # fmt: skip
    return version


def previous_champion(portfolio) -> ModelVersion | None:
    """The retired version that was champion most recently (what "restore previous" brings back)."""
    return (
        ModelVersion.objects.filter(
            portfolio=portfolio,
            status=ModelVersion.STATUS_RETIRED,
            approved_by__isnull=False,
            promoted_at__isnull=False,
        )
        .order_by("-promoted_at", "-version")
        .first()
    )


def champion_restore_previous(*, portfolio, user, reason: str, request=None) -> ModelVersion:
    """One-click rollback: the previous champion becomes champion again."""
    version = previous_champion(portfolio)
    if version is None:
        raise RegistryError(f"{portfolio} has no previous champion to restore.")
    return model_version_restore(version=version, user=user, reason=reason, request=request)


# What a validator may still reject: anything judged or judgeable that is not scoring now.
# The champion is replaced by promoting another version first (the portfolio must keep one).
REJECTABLE = (ModelVersion.STATUS_TRAINED, ModelVersion.STATUS_APPROVED, ModelVersion.STATUS_RETIRED)
REASON_MAX = 2000


@_audited("model.reject")
@transaction.atomic
def model_version_reject(*, version: ModelVersion, user, reason: str, request=None) -> ModelVersion:
    """Reject a version for good, with a reason (kept on the version, with who and when,
    and in the audit event). Any validator of the portfolio may reject, its trainer
    included: refusing a model needs no second pair of eyes."""
    reason = (reason or "").strip()
    if not reason:
        raise RegistryError("A rejection needs a reason.")
    if len(reason) > REASON_MAX:
        raise RegistryError(f"A rejection reason has at most {REASON_MAX} characters.")
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if not _may_validate(user, version):
        raise RegistryError("Only a validator of this portfolio can reject its models.")
    if version.status == ModelVersion.STATUS_CHAMPION:
        raise RegistryError("The champion cannot be rejected: promote another version first, then reject this one.")
    if version.status not in REJECTABLE:
        raise RegistryError(f"Only a trained, approved or retired model can be rejected; this one is {version.status}.")
    version.status = ModelVersion.STATUS_REJECTED
    version.rejection_reason = reason
    version.rejected_by = user
    version.rejected_at = timezone.now()
    version.save(update_fields=["status", "rejection_reason", "rejected_by", "rejected_at"])
    version.audit_details = {"reason": reason[:500]}
    return version


def challenger_check(*, portfolio, challenger: ModelVersion | None, champion: ModelVersion | None = None) -> None:
    """The one rule for a challenger, whatever the entry point (API, command, admin,
    nightly): another version of the same portfolio, approved (four eyes passed)."""
    if challenger is None:
        return
    if challenger.portfolio_id != portfolio.pk or (champion is not None and challenger.pk == champion.pk):
        raise RegistryError("The challenger must be another model version of the same portfolio.")
    # The stored status, not the caller's copy (which may predate its approval or its failure).
    status = ModelVersion.objects.filter(pk=challenger.pk).values_list("status", flat=True).first()
    if status not in (ModelVersion.STATUS_APPROVED, ModelVersion.STATUS_CHAMPION):
        raise RegistryError(
            f"Model version {challenger.version} is {status}: only an approved model can be a challenger."
        )


def champion_of(portfolio) -> ModelVersion | None:
    return ModelVersion.objects.filter(portfolio=portfolio, status=ModelVersion.STATUS_CHAMPION).first()
