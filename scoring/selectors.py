"""Reads. Every read of portfolio data goes through ``portfolios_visible`` so no
page or endpoint can forget the access rule."""

from __future__ import annotations

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Floor

from scoring.models import (
    Applicant,
    BatchRun,
    ImportJob,
    ModelVersion,
    MonitoringReport,
    Portfolio,
    RepaymentMonth,
    Score,
    TuningStudy,
)
from scoring.permissions import VIEW, restrict


def portfolios_visible(*, user, perm: str = VIEW) -> QuerySet[Portfolio]:
    """Portfolios granted to ``user`` (see ``scoring.permissions``)."""
    return restrict(Portfolio.objects.all(), user, field="id", perm=perm)


def portfolio_list(*, user) -> QuerySet[Portfolio]:
    return portfolios_visible(user=user).select_related("schema").annotate(applicant_count=Count("applicants"))


# --- Portal reads ----------------------------------------------------------------
# Each starts from ``restrict`` (or a row already read through it), so a page can
# only show what the user is granted; a missing row and a forbidden one are both None.

# The applicant list's sort keys (user input) mapped to the orderings they allow.
APPLICANT_SORTS = {
    "external_id": ("external_id",),
    "-external_id": ("-external_id",),
    "score": (F("latest_score").asc(nulls_last=True), "external_id"),
    "-score": (F("latest_score").desc(nulls_last=True), "external_id"),
    "newest": ("-created_at", "-id"),
}
SCORE_BIN_POINTS = 20  # width of a bar of the dashboard's score distribution


def portfolio_get(*, user, portfolio_id: int, perm: str = VIEW) -> Portfolio | None:
    return portfolios_visible(user=user, perm=perm).select_related("schema").filter(pk=portfolio_id).first()


def _latest_scores() -> QuerySet[Score]:
    """An applicant's decisions, newest first (challenger shadow scores are never decisions)."""
    return Score.objects.filter(applicant=OuterRef("pk"), is_shadow=False).order_by("-created_at", "-id")


def applicant_list(*, user, portfolio: Portfolio, filters: dict) -> QuerySet[Applicant]:
    """Applicants of ``portfolio`` with their latest score and decision. ``filters``:
    ``search`` (external id prefix: the unique index serves it), ``decision``,
    ``score_min``, ``score_max``, ``sort`` (a key of APPLICANT_SORTS)."""
    latest = _latest_scores()
    queryset = restrict(Applicant.objects.filter(portfolio=portfolio), user).annotate(
        latest_score=Subquery(latest.values("score")[:1]),
        latest_pd=Subquery(latest.values("pd")[:1]),
        latest_decision=Subquery(latest.values("decision")[:1]),
        latest_scored_at=Subquery(latest.values("created_at")[:1]),
    )
    if filters.get("search"):
        queryset = queryset.filter(external_id__startswith=filters["search"])
    if filters.get("decision") == "unscored":
        queryset = queryset.filter(latest_decision__isnull=True)
    elif filters.get("decision"):
        queryset = queryset.filter(latest_decision=filters["decision"])
    if filters.get("score_min") is not None:
        queryset = queryset.filter(latest_score__gte=filters["score_min"])
    if filters.get("score_max") is not None:
        queryset = queryset.filter(latest_score__lte=filters["score_max"])
    return queryset.order_by(*APPLICANT_SORTS.get(filters.get("sort") or "external_id", ("external_id",)))


def applicant_get(*, user, applicant_id: int) -> Applicant | None:
    return (
        restrict(Applicant.objects.select_related("portfolio__schema", "schema"), user).filter(pk=applicant_id).first()
    )


def applicant_scores(*, user, applicant: Applicant, limit: int = 50) -> list[Score]:
    """The applicant's decisions, newest first (shadow scores left out)."""
    return list(
        restrict(Score.objects.filter(applicant=applicant, is_shadow=False), user)
        .select_related("model_version")
        .order_by("-created_at", "-id")[:limit]
    )


def score_get(*, user, score_id: int) -> Score | None:
    """One decision through the gate (a new application's has no applicant)."""
    return (
        restrict(Score.objects.select_related("portfolio__schema", "model_version", "applicant"), user)
        .filter(pk=score_id)
        .first()
    )


def applicant_history(*, user, applicant: Applicant) -> list[RepaymentMonth]:
    return list(restrict(RepaymentMonth.objects.filter(applicant=applicant), user).order_by("month"))


def portfolio_dashboard(*, user, portfolio: Portfolio) -> dict:
    """Figures of the dashboard: applicant count, the latest batch run, the score
    distribution and approval rate of its decisions (of every real-time decision
    when no run has finished yet), and the champion."""
    applicants = restrict(Applicant.objects.filter(portfolio=portfolio), user).count()
    runs = restrict(BatchRun.objects.filter(portfolio=portfolio), user).select_related("model_version")
    last_run = runs.order_by("-created_at").first()
    last_done = runs.filter(status=BatchRun.STATUS_DONE).order_by("-finished_at").first()
    scores = restrict(Score.objects.filter(portfolio=portfolio, is_shadow=False), user)
    scores = scores.filter(run=last_done) if last_done is not None else scores.filter(run__isnull=True)
    bins = (
        scores.annotate(bucket=Floor(F("score") / SCORE_BIN_POINTS))
        .values("bucket")
        .annotate(n=Count("id"))
        .order_by("bucket")
    )
    decisions = {row["decision"]: row["n"] for row in scores.values("decision").annotate(n=Count("id"))}
    decided = sum(decisions.values())
    return {
        "applicants": applicants,
        "last_run": last_run,
        "distribution_source": last_done,
        "distribution": [
            {"from": int(row["bucket"]) * SCORE_BIN_POINTS, "count": row["n"]}
            for row in bins
            if row["bucket"] is not None
        ],
        "decisions": decisions,
        "decided": decided,
        "approval_rate": decisions.get("approve", 0) / decided if decided else None,
        "champion": portfolio_champion(user=user, portfolio=portfolio),
    }


def portfolio_champion(*, user, portfolio: Portfolio) -> ModelVersion | None:
    return (
        restrict(ModelVersion.objects.filter(portfolio=portfolio, status=ModelVersion.STATUS_CHAMPION), user)
        .select_related("portfolio")
        .first()
    )


def model_version_list(*, user, filters: dict | None = None) -> QuerySet[ModelVersion]:
    filters = filters or {}
    queryset = restrict(ModelVersion.objects.select_related("portfolio", "trained_by", "approved_by"), user)
    for field in ("portfolio", "status", "kind"):
        if filters.get(field):
            queryset = queryset.filter(**{field: filters[field]})
    return queryset.order_by("portfolio__name", "-version")


def model_group_versions(*, user, version: ModelVersion) -> list[ModelVersion]:
    """The versions trained by the same request as ``version`` (its training group), in
    the order they were asked for; just ``version`` when it was trained alone."""
    if version.training_group is None:
        return [version]
    return list(
        restrict(ModelVersion.objects.select_related("portfolio", "schema"), user)
        .filter(portfolio_id=version.portfolio_id, training_group=version.training_group)
        .order_by("version")
    )


def model_group_leaderboard_get(*, user, version: ModelVersion):
    """The leaderboard of ``version``'s training group (``scoring.services.leaderboard``)."""
    from scoring.services.leaderboard import model_group_leaderboard

    return model_group_leaderboard(versions=model_group_versions(user=user, version=version))


def model_version_get(*, user, version_id: int) -> ModelVersion | None:
    return (
        restrict(
            ModelVersion.objects.select_related(
                "portfolio", "schema", "trained_by", "approved_by", "promoted_by", "rejected_by", "tuning_study"
            ).prefetch_related("validation_notes__author"),
            user,
        )
        .filter(pk=version_id)
        .first()
    )


def model_version_baseline_peer(*, user, version: ModelVersion) -> ModelVersion | None:
    """The version the model page compares against besides the logistic baseline:
    the portfolio's champion (when it is another version)."""
    return (
        restrict(ModelVersion.objects.filter(portfolio_id=version.portfolio_id), user)
        .filter(status=ModelVersion.STATUS_CHAMPION)
        .exclude(pk=version.pk)
        .first()
    )


def tuning_study_list(*, user, limit: int = 20) -> list[TuningStudy]:
    return list(
        restrict(TuningStudy.objects.select_related("portfolio", "best_model_version"), user).order_by("-created_at")[
            :limit
        ]
    )


def batch_run_list(*, user, portfolio: Portfolio | None = None) -> QuerySet[BatchRun]:
    queryset = restrict(
        BatchRun.objects.select_related("portfolio", "model_version", "challenger_version", "requested_by"), user
    )
    if portfolio is not None:
        queryset = queryset.filter(portfolio=portfolio)
    return queryset.order_by("-created_at")


def batch_run_get(*, user, run_id: int) -> BatchRun | None:
    return batch_run_list(user=user).filter(pk=run_id).first()


def import_job_list(*, user) -> QuerySet[ImportJob]:
    return restrict(ImportJob.objects.select_related("portfolio", "created_by"), user).order_by("-created_at")


def import_job_get(*, user, job_id: int) -> ImportJob | None:
    return import_job_list(user=user).filter(pk=job_id).first()


def monitoring_latest(
    *, user, portfolio: Portfolio | int, model_version: ModelVersion | None = None
) -> dict[str, MonitoringReport | None]:
    """The latest monitoring report of each kind (stability, backtest, fairness; None
    where there is none) of ``model_version``, by default the portfolio's champion
    (any version's when it has none). Empty-handed for a portfolio the user may not view."""
    portfolio_id = portfolio if isinstance(portfolio, int) else portfolio.pk
    reports = restrict(MonitoringReport.objects.filter(portfolio_id=portfolio_id), user).select_related(
        "model_version", "run"
    )
    if model_version is None:
        model_version = ModelVersion.objects.filter(
            portfolio_id=portfolio_id, status=ModelVersion.STATUS_CHAMPION
        ).first()
    if model_version is not None:
        reports = reports.filter(model_version=model_version)
    return {
        kind: reports.filter(kind=kind).order_by("-created_at", "-id").first()
        for kind, _ in MonitoringReport.KIND_CHOICES
    }


# --- audit log ------------------------------------------------------------------------
AUDIT_VIEW_PERM = "scoring.view_auditevent"


def audit_may_read(user) -> bool:
    """Who reads the audit log: holders of the model permission ``scoring.view_auditevent``
    (the auditor and administrator roles) and superusers. The log is about people's
    actions across portfolios (sign-ins have none), so it is not restricted by portfolio."""
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(AUDIT_VIEW_PERM))


def audit_event_list(*, user, filters: dict | None = None) -> QuerySet:
    """Audit events, newest first, for those who may read the log (nobody else sees any).

    ``filters``: ``action`` (exact; ending in "." matches the family, e.g. "model."),
    ``actor`` (user name), ``actor_id``, ``portfolio`` (id), ``outcome``,
    ``object_type``, ``since``/``until`` (dates, inclusive, in the site's time zone).
    """
    import datetime as dt

    from django.utils import timezone

    from scoring.models import AuditEvent

    if not audit_may_read(user):
        return AuditEvent.objects.none()
    events = AuditEvent.objects.all()
    filters = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
    action = filters.get("action")
    if action:
        events = events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
    exact = {"actor": "actor_username", "actor_id": "actor_id", "portfolio": "portfolio_id", "outcome": "outcome",
             "object_type": "object_type"}  # fmt: skip
    events = events.filter(**{column: filters[key] for key, column in exact.items() if key in filters})
    # Bounds on the indexed timestamp itself (not a per-row date cast), a day in the site's time zone.
    zone = timezone.get_current_timezone()
    if filters.get("since"):
        events = events.filter(occurred_at__gte=dt.datetime.combine(filters["since"], dt.time.min, tzinfo=zone))
    if filters.get("until"):
        end = filters["until"] + dt.timedelta(days=1)
        events = events.filter(occurred_at__lt=dt.datetime.combine(end, dt.time.min, tzinfo=zone))
    return events.order_by("-id")


def batch_run_summary(*, user, run: BatchRun) -> dict:
    """What a run decided: the score distribution of the champion (and the challenger),
    decision counts, champion by challenger decisions, and rows done over time by chunk."""
    scores = restrict(Score.objects.filter(run=run), user)

    def bins(shadow: bool) -> dict[int, int]:
        rows = (
            scores.filter(is_shadow=shadow)
            .annotate(bucket=Floor(F("score") / SCORE_BIN_POINTS))
            .values("bucket")
            .annotate(n=Count("id"))
        )
        return {int(r["bucket"]) * SCORE_BIN_POINTS: r["n"] for r in rows if r["bucket"] is not None}

    champion, challenger = bins(False), bins(True)
    decisions = {
        r["decision"]: r["n"] for r in scores.filter(is_shadow=False).values("decision").annotate(n=Count("id"))
    }
    crossed: dict[tuple[str, str], int] = {}
    if run.challenger_version_id:
        shadow = scores.filter(is_shadow=True, applicant_id=OuterRef("applicant_id")).values("decision")[:1]
        pairs = (
            scores.filter(is_shadow=False)
            .annotate(other=Subquery(shadow))
            .values("decision", "other")
            .annotate(n=Count("id"))
        )
        crossed = {(r["decision"], r["other"] or ""): r["n"] for r in pairs}
    chunks = list(
        run.chunks.filter(finished_at__isnull=False).order_by("finished_at").values_list("finished_at", "rows")
    )
    return {
        "bands": sorted(set(champion) | set(challenger)),
        "champion_bins": champion,
        "challenger_bins": challenger,
        "decisions": decisions,
        "crossed": crossed,
        "chunks": chunks,
    }


# --- review queue ---------------------------------------------------------------------
REVIEW_STATES = ("open", "taken", "mine")


def review_cases() -> QuerySet[Score]:
    """Every case of every portfolio, unrestricted (the gate is the caller's: ``review_queue``):
    an applicant's latest decision (shadow scores are never decisions) when it is a refer
    and no person has decided that application (the same input) yet, so a nightly
    rescoring of an application decided by review does not bring it back."""
    from django.db.models import Exists

    from scoring.models import ReviewDecision

    latest = Score.objects.filter(applicant=OuterRef("applicant_id"), is_shadow=False).order_by("-created_at", "-id")
    decided = ReviewDecision.objects.filter(
        applicant=OuterRef("applicant_id"), input_hash=OuterRef("input_hash"), decided_at__isnull=False
    )
    return (
        Score.objects.filter(is_shadow=False, decision="refer", applicant__isnull=False)
        .filter(pk=Subquery(latest.values("pk")[:1]))
        .exclude(Exists(decided))
    )


def review_queue(*, user, portfolio: Portfolio | None = None, filters: dict | None = None) -> QuerySet[Score]:
    """The cases the user may see (the view grant: auditors and analysts read the queue,
    underwriters act on it), oldest first; ``filters`` as ``review_queue_filter``."""
    queryset = restrict(review_cases(), user)
    if portfolio is not None:
        queryset = queryset.filter(portfolio=portfolio)
    return review_queue_filter(queryset, user=user, filters=filters or {})


def review_queue_filter(queryset: QuerySet[Score], *, user, filters: dict) -> QuerySet[Score]:
    """``filters``: ``state`` (open: nobody holds it; taken; mine: taken by the user; by
    default every case), ``portfolio`` (an id)."""
    if filters.get("portfolio"):
        queryset = queryset.filter(portfolio_id=filters["portfolio"])
    state = filters.get("state")
    if state == "open":
        queryset = queryset.filter(Q(review__isnull=True) | Q(review__assigned_to__isnull=True))
    elif state == "taken":
        queryset = queryset.filter(review__assigned_to__isnull=False)
    elif state == "mine":
        queryset = queryset.filter(review__assigned_to=user.pk)
    return queryset.select_related("portfolio", "applicant", "model_version", "review__assigned_to").order_by(
        "created_at", "id"
    )


def review_case_get(*, user, score_id: int) -> Score | None:
    """A referred decision through the gate, in the queue or decided by review (its page
    shows both); None when missing, forbidden or not a refer."""
    return (
        restrict(Score.objects.filter(decision="refer", is_shadow=False, applicant__isnull=False), user)
        .select_related("portfolio__schema", "applicant", "model_version", "review__assigned_to", "review__decided_by")
        .filter(pk=score_id)
        .first()
    )


def review_case_is_open(*, score: Score) -> bool:
    """Whether the decision is still a case of the queue (not decided, still the latest)."""
    return review_cases().filter(pk=score.pk).exists()


def applicant_reviews(*, user, applicant: Applicant) -> dict:
    """The applicant's review decisions by score id (the history page shows them beside the model's)."""
    from scoring.models import ReviewDecision

    rows = restrict(ReviewDecision.objects.filter(applicant=applicant), user).select_related(
        "assigned_to", "decided_by"
    )
    return {row.score_id: row for row in rows}


def review_report(*, user, portfolio: Portfolio | None = None, model_version: ModelVersion | None = None) -> list[dict]:
    """Per model version: the applicants it referred, the cases decided by review
    (approved, declined), the overrides (a final decision differing from the model's own,
    ``ReviewDecision.model_decision``) and the override rate (overrides / reviewed).
    Every decided case is *resolved by review*: ``reviewed`` counts them."""
    from scoring.models import ReviewDecision

    queryset = restrict(ModelVersion.objects.select_related("portfolio"), user)
    if portfolio is not None:
        queryset = queryset.filter(portfolio=portfolio)
    if model_version is not None:
        queryset = queryset.filter(pk=model_version.pk)
    versions = list(queryset.order_by("portfolio__name", "-version"))
    ids = [v.pk for v in versions]
    referred = dict(
        Score.objects.filter(model_version_id__in=ids, is_shadow=False, decision="refer", applicant__isnull=False)
        .values("model_version_id")
        .annotate(n=Count("applicant_id", distinct=True))
        .values_list("model_version_id", "n")
    )
    decided = {
        row["model_version_id"]: row
        for row in ReviewDecision.objects.filter(model_version_id__in=ids, decided_at__isnull=False)
        .values("model_version_id")
        .annotate(
            reviewed=Count("id"),
            approved=Count("id", filter=Q(decision="approve")),
            declined=Count("id", filter=Q(decision="decline")),
            overrides=Count("id", filter=Q(is_override=True)),
        )
    }
    report = []
    for version in versions:
        row = decided.get(version.pk, {})
        reviewed = row.get("reviewed", 0)
        if not referred.get(version.pk) and not reviewed:
            continue
        report.append({
            "model_version": version,
            "referred": referred.get(version.pk, 0),
            "reviewed": reviewed,
            "approved": row.get("approved", 0),
            "declined": row.get("declined", 0),
            "overrides": row.get("overrides", 0),
            "override_rate": row.get("overrides", 0) / reviewed if reviewed else None,
        })  # fmt: skip
    return report
