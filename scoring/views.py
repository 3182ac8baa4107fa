"""The analyst portal (server-rendered pages).

Views are thin: they parse input with a form, read through ``scoring.selectors``
(every read starts from ``scoring.permissions.restrict``, so a portfolio the user
is not granted answers 404 exactly like a missing one) and write through one
service. An action on a visible object without the grant it needs answers 403.
Charts get their data from ``json_script`` blocks (data, never code) and are drawn
by the project's own static JavaScript, so a self-only Content-Security-Policy holds.
"""

from __future__ import annotations

import csv
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponsePermanentRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from models.families import family_of
from scoring import forms, selectors
from scoring.audit import audit_record
from scoring.models import BatchRun, ImportJob, ModelVersion, Portfolio
from scoring.permissions import has_portfolio_perm, permitted_portfolio_ids
from scoring.services import display
from scoring.services.batch import BatchError, batch_run_cancel, batch_run_progress, batch_run_resume, batch_run_start
from scoring.services.comparison import COMPARABLE, model_versions_compare
from scoring.services.errors import ServiceError, public_error_text
from scoring.services.exports import escape_cell, export_csv_lines, export_parquet_store, export_stream
from scoring.services.ingestion import IngestionError, import_job_create, import_upload_discard, import_upload_store
from scoring.services.pii import can_view_pii, pii_view
from scoring.services.recourse import RecourseError, score_recourse
from scoring.services.registry import (
    REJECTABLE,
    RegistryError,
    model_version_approve,
    model_version_promote,
    previous_champion,
)
from scoring.services.scoring import ApplicantDataError, ScoringError, score_realtime, score_whatif
from scoring.services.training import model_group_training_start, model_training_start
from scoring.services.tuning import tuning_study_start

ACTIVE_IMPORT = (ImportJob.STATUS_PENDING, ImportJob.STATUS_RUNNING)
ACTIVE_TRAINING = (ModelVersion.STATUS_QUEUED, ModelVersion.STATUS_TRAINING)
WATERFALL_BARS = 10  # the largest contributions get a bar each; the rest are summed into one


# --- helpers ---------------------------------------------------------------------


def capabilities(user) -> dict[str, bool]:
    """What the navigation and buttons offer: an action anywhere the user holds its grant."""

    def anywhere(perm: str) -> bool:
        ids = permitted_portfolio_ids(user, perm)
        return ids is None or bool(ids)

    return {
        "view": anywhere("view_portfolio_data"),
        "score": anywhere("score_portfolio"),
        "import": anywhere("import_portfolio"),
        "export": anywhere("export_portfolio"),
        "train": anywhere("train_portfolio"),
        "validate": anywhere("validate_portfolio"),
        "review": anywhere("review_portfolio"),
        "audit": selectors.audit_may_read(user),
    }


def page(request, template: str, context: dict, *, status: int = 200):
    """Render a portal page with what the navigation needs: the user's capabilities
    and the section (the first word of the URL name) to mark as current."""
    match = request.resolver_match
    section = match.url_name.split("_")[0] if match and match.url_name else ""
    return render(request, template, {**context, "can": capabilities(request.user), "section": section}, status=status)


def found(obj):
    """A row read through the gate, or 404 (missing and forbidden look the same)."""
    if obj is None:
        raise Http404("Not found")
    return obj


def require_perm(user, portfolio_id: int, perm: str, what: str) -> None:
    if not has_portfolio_perm(user, portfolio_id, perm):
        raise PermissionDenied(f"You may not {what} in this portfolio.")


def chosen_portfolio(request) -> tuple[forms.PortfolioChoiceForm, Portfolio | None]:
    """The portfolio a page shows: ?portfolio=<id> when granted, else the first granted."""
    form = forms.PortfolioChoiceForm(request.GET or None, user=request.user)
    if request.GET.get("portfolio"):
        if not form.is_valid():
            raise Http404("Not found")
        return form, form.cleaned_data["portfolio"]
    portfolio = selectors.portfolios_visible(user=request.user).order_by("name").first()
    form = forms.PortfolioChoiceForm(initial={"portfolio": portfolio}, user=request.user)
    return form, portfolio


@require_GET
def favicon(request):
    """/favicon.ico, asked for by browsers whatever the page's icon link says."""
    from django.templatetags.static import static

    return HttpResponsePermanentRedirect(static("scoring/favicon.svg"))


# --- dashboard -------------------------------------------------------------------


def home(request):
    """The dashboard; a short landing page with the login link for anonymous visitors."""
    if not request.user.is_authenticated:
        return render(request, "scoring/landing.html")
    form, portfolio = chosen_portfolio(request)
    context: dict = {"choice": form, "portfolio": portfolio}
    if portfolio is not None:
        figures = selectors.portfolio_dashboard(user=request.user, portfolio=portfolio)
        context.update(figures=figures, monitoring=monitoring_status(request.user, portfolio))
        context["chart"] = {
            "labels": [f"{b['from']} to {b['from'] + selectors.SCORE_BIN_POINTS - 1}" for b in figures["distribution"]],
            "counts": [b["count"] for b in figures["distribution"]],
        }
        if figures["last_run"] is not None:
            context["last_run_progress"] = batch_run_progress(figures["last_run"])
    return page(request, "scoring/dashboard.html", context)


def monitoring_status(user, portfolio: Portfolio) -> list:
    """The latest stability, backtest and fairness reports of the champion; an empty
    list renders as "no report yet"."""
    reports = selectors.monitoring_latest(user=user, portfolio=portfolio)
    return [report for report in reports.values() if report is not None]


# --- applicants -------------------------------------------------------------------


@login_required
@require_GET
def applicant_list(request):
    choice, portfolio = chosen_portfolio(request)
    filters = forms.ApplicantFilterForm(request.GET)
    context: dict = {"choice": choice, "portfolio": portfolio, "filters": filters}
    if portfolio is not None:
        values = filters.cleaned_data if filters.is_valid() else {"sort": "external_id", "page_size": 25}
        applicants = selectors.applicant_list(user=request.user, portfolio=portfolio, filters=values)
        paginator = Paginator(applicants, values.get("page_size") or 25)
        page_obj = paginator.get_page(request.GET.get("page"))
        query = request.GET.copy()
        query.pop("page", None)
        context.update(page_obj=page_obj, query=query.urlencode())
        audit_record(
            action="applicant.list", request=request, portfolio_id=portfolio.pk, object_type="applicant",
            details={"filters": {k: v for k, v in values.items() if v not in (None, "")}, "page": page_obj.number},
        )  # fmt: skip
    return page(request, "scoring/applicant_list.html", context)


def personal_data(request, applicant) -> tuple[list[tuple[str, str]], bool]:
    """The applicant's PII as this user may see it (masked without the PII grant;
    the PII service audits an unmasked view) and whether it is masked."""
    data = pii_view(user=request.user, applicant=applicant, request=request)
    return sorted((data or {}).items()), not can_view_pii(request.user, applicant.portfolio_id)


def waterfall(score, groups: list[str] | None) -> dict:
    """Waterfall of one decision in log-odds of default: the base (average applicant),
    then the largest contributions, the rest summed, ending at the applicant's log-odds.
    The bars add up exactly because DeepSHAP contributions do."""
    contributions = list(score.contributions or [])
    names = (
        groups
        if groups and len(groups) == len(contributions)
        else [f"input {i + 1}" for i in range(len(contributions))]
    )
    order = sorted(range(len(contributions)), key=lambda i: -abs(contributions[i]))
    shown, rest = order[:WATERFALL_BARS], order[WATERFALL_BARS:]
    steps = [(names[i], contributions[i]) for i in shown]
    if rest:
        steps.append((f"{len(rest)} other inputs", sum(contributions[i] for i in rest)))
    bars, labels, level = [], ["Average applicant"], score.base_log_odds
    bars.append([0.0, round(level, 6)])
    for name, value in steps:
        labels.append(name)
        bars.append([round(level, 6), round(level + value, 6)])
        level += value
    labels.append("This applicant")
    bars.append([0.0, round(level, 6)])
    return {"labels": labels, "bars": bars, "log_odds": round(level, 6)}


def explanation_groups(score, schema=None) -> list[str] | None:
    """Names of the contribution vector's entries, from the model version that scored,
    under the schema's labels where the entry is a schema column."""
    from scoring.inference import decider_load

    try:
        groups = list(decider_load(score.model_version).groups_)
    except (OSError, ValueError):  # artifact missing or failing its checksum: show the bars unnamed
        return None
    labels = display.feature_labels(schema) if schema is not None else {}
    return [labels.get(g, g) for g in groups]


SCORE_AXIS_MARGIN = 100  # points shown beyond the cutoffs on a score chart


def score_history_chart(portfolio: Portfolio, scores: list) -> dict:
    """Scores on their times (milliseconds), the portfolio's cutoffs, and a y-axis from the
    points scale around the cutoffs (widened to the data), not zoomed to the data."""
    ordered = list(reversed(scores))
    values = [round(s.score, 1) for s in ordered]
    low = min([portfolio.decline_below_score - SCORE_AXIS_MARGIN, *values])
    high = max([portfolio.approve_min_score + SCORE_AXIS_MARGIN, *values])
    return {
        "times": [int(s.created_at.timestamp() * 1000) for s in ordered],
        "scores": values,
        "cutoffs": {"approve": portfolio.approve_min_score, "decline": portfolio.decline_below_score},
        "axis": {"min": float(low // 50 * 50), "max": float(-(-high // 50) * 50)},
    }


@login_required
@require_GET
def applicant_detail(request, applicant_id: int):
    applicant = found(selectors.applicant_get(user=request.user, applicant_id=applicant_id))
    portfolio = applicant.portfolio
    scores = selectors.applicant_scores(user=request.user, applicant=applicant)
    reviews = selectors.applicant_reviews(user=request.user, applicant=applicant)
    for s in scores:  # the final decision by review, shown beside the model's
        s.final_review = reviews.get(s.pk)  # type: ignore[attr-defined]
    latest = scores[0] if scores else None
    history = selectors.applicant_history(user=request.user, applicant=applicant)
    champion = selectors.portfolio_champion(user=request.user, portfolio=portfolio)
    pii, pii_masked = personal_data(request, applicant)
    whatif = forms.whatif_form_class(portfolio.schema)(initial=applicant.features, auto_id="whatif_%s")
    context = {
        "applicant": applicant,
        "portfolio": portfolio,
        "features": display.feature_rows(applicant.schema, applicant.features),
        "pii": pii,
        "pii_masked": pii_masked,
        "scores": scores,
        "latest": latest,
        "whatif": whatif,
        "champion": champion,
        "can_score": has_portfolio_perm(request.user, portfolio.pk, "score_portfolio"),
        "history_chart": {
            "months": [m.month.strftime("%Y-%m") for m in history],
            "balance": [m.balance for m in history],
            "amount_paid": [m.amount_paid for m in history],
            "days_past_due": [m.days_past_due for m in history],
        },
        "history": history,
        "score_history": score_history_chart(portfolio, scores),
    }
    if latest is not None:
        context["waterfall"] = waterfall(latest, explanation_groups(latest, applicant.schema))
        context["latest_reasons"] = display.reasons_labelled(applicant.schema, latest.reasons)
        if request.GET.get("recourse"):
            context.update(recourse_context(request, latest))
    audit_record(
        action="applicant.view", request=request, portfolio_id=portfolio.pk, object_type="applicant",
        object_ids=[applicant.pk], details={"score_id": latest.pk if latest else None},
    )  # fmt: skip
    return page(request, "scoring/applicant_detail.html", context)


def recourse_context(request, score) -> dict:
    """The what-if panel's "What would it take?": the smallest changes that reach approve
    under the score's model and policy version (nothing saved; audited)."""
    try:
        recourse = score_recourse(score=score)
    except RecourseError as exc:
        return {"recourse_error": str(exc)}
    audit_record(
        action="applicant.recourse", request=request, portfolio_id=score.portfolio_id, object_type="score",
        object_ids=[score.pk], details={"applicant": score.applicant_id, "suggestions": len(recourse.suggestions)},
    )  # fmt: skip
    return {"recourse": display.recourse_view(score.model_version.schema, recourse)}


@login_required
@require_POST
def applicant_whatif(request, applicant_id: int):
    """Score changed feature values with the champion, saving nothing; JSON for the panel."""
    applicant = found(selectors.applicant_get(user=request.user, applicant_id=applicant_id))
    portfolio = applicant.portfolio
    require_perm(request.user, portfolio.pk, "score_portfolio", "score applicants")
    form = forms.whatif_form_class(portfolio.schema)(request.POST)
    if not form.is_valid():
        return JsonResponse({"errors": {k: [str(e) for e in v] for k, v in form.errors.items()}}, status=400)
    changed = {k: (None if v in ("", None) else v) for k, v in form.cleaned_data.items()}
    try:
        # The same champion on the values as they are, then on the changed ones: old → new.
        current = score_whatif(portfolio=portfolio, applicant=applicant, features={})
        result = score_whatif(portfolio=portfolio, applicant=applicant, features=changed)
    except ApplicantDataError as exc:
        return JsonResponse({"errors": {p.get("column", "data"): [p["message"]] for p in exc.problems}}, status=400)
    except ScoringError as exc:
        return JsonResponse({"errors": {"__all__": [str(exc)]}}, status=409)
    differs = sorted(k for k, v in result.features.items() if applicant.features.get(k) != v)
    audit_record(
        action="applicant.whatif", request=request, portfolio_id=portfolio.pk, object_type="applicant",
        object_ids=[applicant.pk], details={"model_version": result.version.pk, "changed_features": differs},
    )  # fmt: skip
    row = result.row
    labels = display.feature_labels(portfolio.schema)
    return JsonResponse(
        {
            "pd": row.pd,
            "score": row.score,
            "decision": row.decision,
            "reasons": display.reasons_labelled(portfolio.schema, row.reasons),
            "model_version": result.version.version,
            "changed_features": differs,
            "changed_labels": [labels.get(k, k) for k in differs],
            "change": display.whatif_change(portfolio.schema, current.row, row),
        }
    )


@login_required
@require_POST
def applicant_score(request, applicant_id: int):
    """Score now: a real decision of the champion on the stored data, saved and audited."""
    applicant = found(selectors.applicant_get(user=request.user, applicant_id=applicant_id))
    require_perm(request.user, applicant.portfolio_id, "score_portfolio", "score applicants")
    try:
        score = score_realtime(portfolio=applicant.portfolio, applicant=applicant, requested_by=request.user)
    except ScoringError as exc:
        messages.error(request, f"Not scored: {exc}")
    else:
        messages.success(request, f"Scored now: {score.score:.0f} points, {score.decision}.")
    return redirect("portal:applicant_detail", applicant_id=applicant.pk)


# --- scoring a new application ------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def score_new(request):
    """A new application typed in: a form built from the portfolio's schema, checked by
    the same rules as the API and an import (``score_realtime``), scored and saved."""
    choice = forms.PortfolioChoiceForm(request.GET or None, user=request.user, perm="score_portfolio")
    portfolio = choice.cleaned_data["portfolio"] if request.GET.get("portfolio") and choice.is_valid() else None
    if request.GET.get("portfolio") and portfolio is None:
        raise Http404("Not found")
    if portfolio is None:
        portfolio = choice.fields["portfolio"].queryset.first()
        choice = forms.PortfolioChoiceForm(initial={"portfolio": portfolio}, user=request.user, perm="score_portfolio")
    if portfolio is None:
        raise PermissionDenied("You may not score applicants in any portfolio.")
    form = forms.application_form_class(portfolio.schema)(request.POST or None, auto_id="new_%s")
    if request.method == "POST" and form.is_valid():
        features = {k: (None if v in ("", None) else v) for k, v in form.cleaned_data.items()}
        try:
            score = score_realtime(portfolio=portfolio, features=features, requested_by=request.user)
        except ApplicantDataError as exc:
            for problem in exc.problems:
                column = problem.get("column")
                form.add_error(column if column in form.fields else None, problem["message"])
        except ScoringError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Application scored: {score.score:.0f} points, {score.decision}.")
            return redirect("portal:score_detail", score_id=score.pk)
    champion = selectors.portfolio_champion(user=request.user, portfolio=portfolio)
    context = {"choice": choice, "portfolio": portfolio, "form": form, "champion": champion}
    return page(request, "scoring/score_new.html", context)


@login_required
@require_GET
def score_detail(request, score_id: int):
    score = found(selectors.score_get(user=request.user, score_id=score_id))
    schema = score.portfolio.schema
    context = {
        "score": score,
        "portfolio": score.portfolio,
        "reasons": display.reasons_labelled(schema, score.reasons),
        "features": display.feature_rows(schema, score.input_features or {}),
        "waterfall": waterfall(score, explanation_groups(score, schema)),
    }
    audit_record(
        action="score.view", request=request, portfolio_id=score.portfolio_id, object_type="score",
        object_ids=[score.pk],
    )  # fmt: skip
    return page(request, "scoring/score_detail.html", context)


# --- imports ---------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def import_list(request):
    form = forms.ImportForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST":
        if not capabilities(request.user)["import"]:
            raise PermissionDenied("You may not import into any portfolio.")
        if form.is_valid():
            try:
                job = import_upload(request, form.cleaned_data)
            except IngestionError as exc:
                form.add_error("file", str(exc))
            else:
                messages.success(request, f"Import #{job.pk} queued: the file is validated before anything is written.")
                return redirect("portal:import_detail", job_id=job.pk)
    jobs = Paginator(selectors.import_job_list(user=request.user), 25).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page_obj": jobs,
        "infer_form": forms.SchemaInferForm(auto_id="infer_%s", user=request.user),
    }
    return page(request, "scoring/import_list.html", context)


@login_required
@require_POST
def schema_infer(request):
    """Propose a schema for an uploaded sample: the JSON to review, as a download."""
    from scoring.services.errors import ForbiddenError
    from scoring.services.ingestion.inference import schema_infer_upload

    form = forms.SchemaInferForm(request.POST, request.FILES, user=request.user)
    if not form.is_valid():
        messages.error(request, "Choose a file to propose a schema from.")
        return redirect("portal:import_list")
    data = form.cleaned_data
    try:
        result = schema_infer_upload(
            user=request.user,
            portfolio=data["portfolio"],
            upload=data["file"],
            name=data["name"] or None,
            encoding=data["encoding"],
        )
    except ForbiddenError as exc:
        raise PermissionDenied(exc.message) from None
    except IngestionError as exc:
        messages.error(request, str(exc))
        return redirect("portal:import_list")
    response = JsonResponse(result["schema"], json_dumps_params={"indent": 2, "ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="{result["schema"]["name"]}.schema.json"'
    return response


def import_upload(request, data: dict) -> ImportJob:
    """Save the upload under MEDIA_ROOT, record the job, and queue it for a worker."""
    from scoring.tasks import import_file

    upload = data["file"]
    path = import_upload_store(upload=upload)
    try:
        with transaction.atomic():
            job = import_job_create(
                portfolio=data["portfolio"], kind=data["kind"], path=path, valid_only=data["valid_only"],
                encoding=data["encoding"], created_by=request.user, file_name=upload.name,
            )  # fmt: skip
            transaction.on_commit(lambda: import_file.delay(job.pk, str(path), data["encoding"]))
    except BaseException:
        import_upload_discard(path)
        raise
    return job


def import_state(job: ImportJob) -> dict:
    return {
        "status": job.status,
        "status_display": job.get_status_display(),
        "active": job.status in ACTIVE_IMPORT,
        "rows_total": job.rows_total,
        "rows_invalid": job.rows_invalid,
        "error_count": job.error_count,
        "message": job.message,
    }


@login_required
@require_GET
def import_detail(request, job_id: int):
    job = found(selectors.import_job_get(user=request.user, job_id=job_id))
    return page(request, "scoring/import_detail.html", {"job": job, "state": import_state(job)})


@login_required
@require_GET
def import_report(request, job_id: int):
    """The validation report as CSV: every (column, problem) pair with its count and first examples."""
    from scoring.services.import_reports import import_report_csv_lines

    job = found(selectors.import_job_get(user=request.user, job_id=job_id))
    response = StreamingHttpResponse(import_report_csv_lines(job), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="import-{job.pk}-report.csv"'
    return response


@login_required
@require_GET
def import_status(request, job_id: int):
    return JsonResponse(import_state(found(selectors.import_job_get(user=request.user, job_id=job_id))))


# --- model registry --------------------------------------------------------------


@login_required
@require_GET
def model_list(request):
    versions = Paginator(selectors.model_version_list(user=request.user), 50).get_page(request.GET.get("page"))
    context = {
        "page_obj": versions,
        "train_form": forms.TrainForm(user=request.user, auto_id="train_%s"),
        "tune_form": forms.TuneForm(user=request.user, auto_id="tune_%s"),
        "studies": selectors.tuning_study_list(user=request.user),
    }
    return page(request, "scoring/model_list.html", context)


@login_required
@require_POST
def model_train(request):
    form = forms.TrainForm(request.POST, user=request.user, auto_id="train_%s")
    if not form.is_valid():
        messages.error(request, f"Training not started: {form.errors.as_text()}")
        return redirect("portal:model_list")
    data = form.cleaned_data
    hyperparameters = {"max_epochs": data["max_epochs"]} if data.get("max_epochs") else {}
    kinds = list(dict.fromkeys([data["kind"], *data.get("also", [])]))
    if len(kinds) > 1:
        # max_epochs goes to the families that have epochs (the networks), not to the trees.
        per_kind = {kind: {n: v for n, v in hyperparameters.items() if n in family_of(kind).space()} for kind in kinds}
        versions = model_group_training_start(
            portfolio=data["portfolio"], kinds=kinds, seed=data["seed"], hyperparameters=per_kind,
            requested_by=request.user,
        )  # fmt: skip
        numbers = ", ".join(f"v{v.version} ({v.kind})" for v in versions)
        messages.success(request, f"Model versions {numbers} queued for training on the same split.")
        return redirect("portal:model_detail", version_id=versions[0].pk)
    version = model_training_start(
        portfolio=data["portfolio"], kind=data["kind"], seed=data["seed"], hyperparameters=hyperparameters,
        requested_by=request.user,
    )  # fmt: skip
    messages.success(request, f"Model version {version.version} queued for training.")
    return redirect("portal:model_detail", version_id=version.pk)


@login_required
@require_POST
def model_tune(request):
    form = forms.TuneForm(request.POST, user=request.user, auto_id="tune_%s")
    if not form.is_valid():
        messages.error(request, f"Tuning not started: {form.errors.as_text()}")
        return redirect("portal:model_list")
    data = form.cleaned_data
    study = tuning_study_start(
        portfolio=data["portfolio"], kind=data["kind"], n_trials=data["n_trials"], seed=data["seed"],
        requested_by=request.user,
    )  # fmt: skip
    messages.success(request, f"Tuning study {study.study_name} started with {study.n_trials} trials.")
    return redirect("portal:model_list")


def model_progress_state(version: ModelVersion) -> dict:
    progress = version.progress or {}
    epoch, max_epochs = progress.get("epoch"), progress.get("max_epochs")
    return {
        "status": version.status,
        "status_display": version.get_status_display(),
        "active": version.status in ACTIVE_TRAINING,
        "phase": progress.get("phase", ""),
        "epoch": epoch,
        "max_epochs": max_epochs,
        "fraction": 1.0
        if version.status not in ACTIVE_TRAINING
        else (epoch / max_epochs if epoch and max_epochs else 0.0),
        "history": progress.get("history", []),
    }


def model_charts(version: ModelVersion) -> dict:
    """Chart data of the model page from the stored metrics (test split) and the
    logistic baseline's on the same split."""
    test = (version.metrics or {}).get("test") or {}
    base = (version.baseline_metrics or {}).get("test") or {}
    if not test:
        return {}
    ks_curve, base_ks = test.get("ks_curve") or {}, base.get("ks_curve") or {}
    deciles = test.get("deciles") or []
    bad_rate = test.get("bad_rate") or 0.0
    riskiest_first = list(reversed(deciles))
    return {
        "roc": {"model": test.get("roc"), "baseline": base.get("roc")},
        "ks": ks_curve,
        "calibration": {
            "mean_pd": [d["mean_pd"] for d in deciles],
            "observed": [d["observed_rate"] for d in deciles],
        },
        "gains": {
            "model": {"x": ks_curve.get("population", []), "y": ks_curve.get("cum_bad", [])},
            "baseline": {"x": base_ks.get("population", []), "y": base_ks.get("cum_bad", [])},
        },
        # Lift of each PD decile, riskiest first: its default rate over the split's.
        "lift": [round(d["observed_rate"] / bad_rate, 4) if bad_rate else None for d in riskiest_first],
    }


def model_monitoring(user, version: ModelVersion) -> dict:
    """This version's latest stability, backtest and fairness reports, laid out for the
    model page, where a validator reads them before approving or promoting: PSI/CSI by
    feature (worst first) with its bins, and each protected attribute's groups."""
    reports = selectors.monitoring_latest(user=user, portfolio=version.portfolio_id, model_version=version)
    labels = display.feature_labels(version.schema)
    stability, fairness = reports.get("stability"), reports.get("fairness")
    features = []
    if stability is not None:
        for name, result in (stability.results.get("features") or {}).items():
            features.append({"label": labels.get(name, name), **result})
        features.sort(key=lambda f: -(f.get("psi") or 0.0))
    attributes = []
    if fairness is not None:
        for name, result in (fairness.results.get("attributes") or {}).items():
            attributes.append({"label": labels.get(name, name), "groups": result.get("groups") or []})
    return {
        "reports": [r for r in reports.values() if r is not None],
        "stability": stability,
        "score_psi": (stability.results.get("score") or {}) if stability else {},
        "features": features,
        "fairness": fairness,
        "attributes": attributes,
        "backtest": reports.get("backtest"),
    }


def model_splits(version: ModelVersion) -> list[dict]:
    """Every split the training carved, the calibration split (metrics not stored) too, so
    the rows add up to the training rows."""
    metrics = version.metrics or {}
    rows: list[dict[str, Any]] = [
        {"name": name, "metrics": metrics.get(name) or {}} for name in ("train", "validation", "test")
    ]
    counted = sum(r["metrics"].get("n") or 0 for r in rows)
    if version.training_rows and counted and version.training_rows > counted:
        rows.insert(2, {"name": "calibration (Platt scaling)", "metrics": {"n": version.training_rows - counted}})
    return rows


SCHEME_LABELS = {"out_of_time": "Out of time (newest months are the test)", "stratified": "Stratified random"}


def model_validations(version: ModelVersion) -> list[dict]:
    """The test figures of each split scheme training ran, the model's own first."""
    validations = version.validations or {}
    trained_on = validations.get("trained_on")
    rows = []
    for scheme, summary in validations.items():
        if not isinstance(summary, dict):
            continue
        dates = (summary.get("dates") or {}).get("test")
        rows.append({
            "label": SCHEME_LABELS.get(scheme, scheme), "trained_on": scheme == trained_on,
            "test": summary.get("test") or {}, "baseline": summary.get("baseline_test") or {},
            "rows": summary.get("rows") or {}, "test_dates": dates, "train_dates": (summary.get("dates") or {}).get("train"),
        })  # fmt: skip
    return sorted(rows, key=lambda r: not r["trained_on"])


def early_stop(version: ModelVersion) -> dict | None:
    """How training ended: early stopping (validation AUC stopped improving) before the
    epoch limit, with the best epoch whose weights were kept."""
    progress = version.progress or {}
    epoch, limit, history = progress.get("epoch"), progress.get("max_epochs"), progress.get("history") or []
    if version.status in ACTIVE_TRAINING or not epoch or not limit:
        return None
    best = max(history, key=lambda h: h.get("val_auc") or 0.0) if history else None
    return {
        "stopped_early": epoch < limit,
        "epoch": epoch,
        "max_epochs": limit,
        "best_epoch": best["epoch"] if best else None,
        "best_val_auc": best["val_auc"] if best else None,
        "patience": (version.hyperparameters or {}).get("patience"),
    }


COMPARE_COLORS = 6


@login_required
@require_GET
def model_compare(request):
    """Versions compared on the same rows: the first one's test split scored by all."""
    ids = [int(i) for i in request.GET.getlist("versions") + request.GET.get("ids", "").split(",") if str(i).isdigit()]
    versions = [found(selectors.model_version_get(user=request.user, version_id=i)) for i in dict.fromkeys(ids)]
    if len(versions) < 2:
        messages.error(request, "Choose at least two model versions to compare.")
        if versions:
            return redirect("portal:model_detail", version_id=versions[0].pk)
        return redirect("portal:model_list")
    try:
        result = model_versions_compare(candidate=versions[0], others=versions[1:])
    except ServiceError as exc:
        messages.error(request, exc.message)
        return redirect("portal:model_detail", version_id=versions[0].pk)
    series = [
        {
            "label": f"v{e.version.version} {e.version.kind.upper()}",
            "roc": e.metrics.get("roc"),
            "gains": {
                "x": (e.metrics.get("ks_curve") or {}).get("population", []),
                "y": (e.metrics.get("ks_curve") or {}).get("cum_bad", []),
            },
            "calibration": {
                "x": [d["mean_pd"] for d in e.metrics.get("deciles") or []],
                "y": [d["observed_rate"] for d in e.metrics.get("deciles") or []],
            },
        }
        for e in result.entries
    ]
    if result.baseline:
        ks = result.baseline.get("ks_curve") or {}
        series.append(
            {
                "label": "Logistic baseline",
                "roc": result.baseline.get("roc"),
                "gains": {"x": ks.get("population", []), "y": ks.get("cum_bad", [])},
                "calibration": None,
            }
        )
    table = [
        {
            "label": label,
            "values": [e.metrics.get(key) for e in result.entries],
            "baseline": (result.baseline or {}).get(key),
        }
        for key, label in COMPARED
    ]
    context = {"result": result, "table": table, "series": series}
    return page(request, "scoring/model_compare.html", context)


COMPARED = (("auc", "AUC"), ("gini", "Gini"), ("ks", "KS"), ("brier", "Brier score"), ("log_loss", "Log loss"))


@login_required
@require_GET
def model_detail(request, version_id: int):
    version = found(selectors.model_version_get(user=request.user, version_id=version_id))
    test = (version.metrics or {}).get("test") or {}
    base = (version.baseline_metrics or {}).get("test") or {}
    # Only figures of the same rows side by side: this model and the baseline fitted with it.
    # Another version (the champion) is compared on these rows by the compare page.
    peer = selectors.model_version_baseline_peer(user=request.user, version=version)
    comparison = [{"label": label, "model": test.get(key), "baseline": base.get(key)} for key, label in COMPARED]
    others = [
        v
        for v in selectors.model_version_list(user=request.user).filter(
            portfolio_id=version.portfolio_id, status__in=COMPARABLE
        )
        if v.pk != version.pk
    ]
    may_validate = has_portfolio_perm(request.user, version.portfolio_id, "validate_portfolio")
    context = {
        "version": version,
        "error": public_error_text(version.error),  # no traceback or paths on the page
        "state": model_progress_state(version),
        "charts": model_charts(version),
        "comparison": comparison,
        "peer": peer,
        "others": others,
        "monitoring": model_monitoring(request.user, version),
        "splits": model_splits(version),
        "validations": model_validations(version),
        "screen": version.screen or {},
        "early_stop": early_stop(version),
        "can_approve": may_validate and version.status == ModelVersion.STATUS_TRAINED,
        "can_promote": may_validate and version.status == ModelVersion.STATUS_APPROVED,
        "may_validate": may_validate,
        "can_reject": may_validate and version.status in REJECTABLE,
        "can_restore": may_validate
        and version.status == ModelVersion.STATUS_RETIRED
        and version.approved_by_id is not None,
        "previous_champion": previous_champion(version.portfolio)
        if may_validate and version.status == ModelVersion.STATUS_CHAMPION
        else None,
        "review_report": next(iter(selectors.review_report(user=request.user, model_version=version)), None),
        "leaderboard": selectors.model_group_leaderboard_get(user=request.user, version=version)
        if version.training_group
        else None,
    }
    return page(request, "scoring/model_detail.html", context)


@login_required
@require_GET
def model_progress(request, version_id: int):
    return JsonResponse(
        model_progress_state(found(selectors.model_version_get(user=request.user, version_id=version_id)))
    )


def _transition(request, version_id: int, service, done: str, *, pass_request: bool = False, **options):
    version = found(selectors.model_version_get(user=request.user, version_id=version_id))
    require_perm(request.user, version.portfolio_id, "validate_portfolio", "approve or promote models")
    if pass_request:
        options["request"] = request
    try:
        service(version=version, user=request.user, **options)
    except RegistryError as exc:  # four eyes, wrong status, or a failed monitoring report
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Model version {version.version} {done}.")
    return redirect("portal:model_detail", version_id=version.pk)


@login_required
@require_POST
def model_approve(request, version_id: int):
    return _transition(request, version_id, model_version_approve, "approved")


@login_required
@require_POST
def model_promote(request, version_id: int):
    """Promote; a failed stability or fairness report blocks it unless the validator
    gives an override reason (recorded on the version and audited by the service)."""
    reason = request.POST.get("override_reason", "")[:2000]
    return _transition(
        request, version_id, model_version_promote, "is now the champion", override_reason=reason, pass_request=True
    )


# --- batch runs --------------------------------------------------------------------


ACTIVE_RUN = (BatchRun.STATUS_PENDING, BatchRun.STATUS_RUNNING)


def run_state(run: BatchRun) -> dict:
    """Progress as the runs pages show it: a rate and an ETA only while the run is
    active, and a phase in words from the first second (before any chunk is done)."""
    state = {"id": run.pk, "status_display": run.get_status_display(), **batch_run_progress(run)}
    active = run.status in ACTIVE_RUN
    done, total = state["rows_done"], state["rows_total"]
    if run.status == BatchRun.STATUS_PENDING and not done:
        phase = f"Queued: {run.chunks_total} chunks wait for a worker"
    elif active and not done:
        phase = f"Scoring the first chunk of {run.chunks_total}"
    elif active:
        phase = f"{state['chunks_done']} of {run.chunks_total} chunks done"
    elif run.status == BatchRun.STATUS_CANCELLED:
        phase = f"Cancelled after {done:,} of {total:,} rows; Resume scores the rest"
    elif run.status == BatchRun.STATUS_FAILED:
        phase = f"Failed after {done:,} of {total:,} rows" + (f": {run.error}" if run.error else "")
    else:
        phase = f"Done in {state['elapsed_seconds']:.0f} s"
    state.update(active=active, phase=phase)
    if not active:
        state["eta_seconds"] = None
        if run.status != BatchRun.STATUS_DONE:
            state["rows_per_second"] = None  # a stopped run has no current speed
    return state


@login_required
@require_GET
def run_list(request):
    runs = Paginator(selectors.batch_run_list(user=request.user), 25).get_page(request.GET.get("page"))
    rows = [
        {
            "run": run,
            "state": run_state(run),
            "can_score": has_portfolio_perm(request.user, run.portfolio_id, "score_portfolio"),
            "can_export": has_portfolio_perm(request.user, run.portfolio_id, "export_portfolio"),
        }
        for run in runs
    ]
    context = {"page_obj": runs, "rows": rows, "form": forms.BatchRunForm(user=request.user)}
    return page(request, "scoring/run_list.html", context)


@login_required
@require_POST
def run_start(request):
    form = forms.BatchRunForm(request.POST, user=request.user)
    if not form.is_valid():
        messages.error(request, f"Run not started: {form.errors.as_text()}")
        return redirect("portal:run_list")
    try:
        run = batch_run_start(
            portfolio=form.cleaned_data["portfolio"], chunk_size=form.cleaned_data["chunk_size"],
            requested_by=request.user, trigger="portal",
        )  # fmt: skip
    except (ScoringError, BatchError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run #{run.pk} started: {run.rows_total:,} applicants in {run.chunks_total} chunks.")
    return redirect("portal:run_list")


@login_required
@require_GET
def run_detail(request, run_id: int):
    run = found(selectors.batch_run_get(user=request.user, run_id=run_id))
    summary = selectors.batch_run_summary(user=request.user, run=run)
    bands = summary["bands"]
    start = run.started_at or run.created_at
    done_rows = 0
    throughput: dict[str, list[float]] = {"seconds": [0.0], "rows": [0]}
    for finished_at, rows in summary["chunks"]:
        done_rows += rows
        throughput["seconds"].append(round((finished_at - start).total_seconds(), 2))
        throughput["rows"].append(done_rows)
    decisions = [(d, summary["decisions"].get(d, 0)) for d in ("approve", "refer", "decline")]
    crossed = [
        {"champion": a, "cells": [summary["crossed"].get((a, b), 0) for b in ("approve", "refer", "decline")]}
        for a in ("approve", "refer", "decline")
    ]
    context = {
        "run": run,
        "state": run_state(run),
        "decisions": decisions,
        "decided": sum(n for _, n in decisions),
        "crossed": crossed if summary["crossed"] else None,
        "can_score": has_portfolio_perm(request.user, run.portfolio_id, "score_portfolio"),
        "can_export": has_portfolio_perm(request.user, run.portfolio_id, "export_portfolio"),
        "distribution": {
            "x": [b + selectors.SCORE_BIN_POINTS / 2 for b in bands],
            "width": selectors.SCORE_BIN_POINTS,
            "champion": [summary["champion_bins"].get(b, 0) for b in bands],
            "challenger": [summary["challenger_bins"].get(b, 0) for b in bands] if summary["challenger_bins"] else None,
            "cutoffs": {"approve": run.portfolio.approve_min_score, "decline": run.portfolio.decline_below_score},
        },
        "throughput": throughput,
    }
    return page(request, "scoring/run_detail.html", context)


def _run_action(request, run_id: int, service, done: str):
    run = found(selectors.batch_run_get(user=request.user, run_id=run_id))
    require_perm(request.user, run.portfolio_id, "score_portfolio", "cancel or resume runs")
    service(run=run)
    messages.success(request, f"Run #{run.pk} {done}.")
    return redirect("portal:run_list")


@login_required
@require_POST
def run_cancel(request, run_id: int):
    return _run_action(request, run_id, batch_run_cancel, "cancelled")


@login_required
@require_POST
def run_resume(request, run_id: int):
    return _run_action(request, run_id, batch_run_resume, "resumed")


@login_required
@require_GET
def run_progress(request):
    """Progress of the runs named in ?ids=1,2,3 that the user can see."""
    ids = [int(i) for i in request.GET.get("ids", "").split(",") if i.strip().isdigit()][:100]
    runs = selectors.batch_run_list(user=request.user).filter(pk__in=ids)
    return JsonResponse({"runs": [run_state(run) for run in runs]})


@login_required
@require_GET
def run_export(request, run_id: int, file_format: str):
    if file_format not in ("csv", "parquet"):
        raise Http404("Not found")
    run = found(selectors.batch_run_get(user=request.user, run_id=run_id))
    require_perm(request.user, run.portfolio_id, "export_portfolio", "export scores")
    # The export service records export.create with the rows actually sent.
    if file_format == "csv":
        response = StreamingHttpResponse(
            export_csv_lines(run, actor=request.user, request=request), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.csv"'
        return response
    name = export_parquet_store(run, actor=request.user, request=request)
    response = StreamingHttpResponse(export_stream(name), content_type="application/vnd.apache.parquet")
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.parquet"'
    return response


# --- audit log ---------------------------------------------------------------------


def audit_events(request):
    if not capabilities(request.user)["audit"]:
        raise Http404("Not found")
    form = forms.AuditFilterForm(request.GET or None)
    cleaned = form.cleaned_data if form.is_valid() else {}
    filters = {k: (v.pk if isinstance(v, Portfolio) else v) for k, v in cleaned.items() if v not in (None, "")}
    return form, filters, selectors.audit_event_list(user=request.user, filters=filters)


@login_required
@require_GET
def audit_list(request):
    form, filters, events = audit_events(request)
    # Recorded before the page is read, so the count and the rows agree (the view is one of them).
    audit_record(
        action="audit.view", request=request, object_type="audit_event",
        details={"filters": {k: str(v) for k, v in filters.items()}, "page": request.GET.get("page") or 1},
    )  # fmt: skip
    page_obj = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page_obj": page_obj, "rows": display.audit_rows(page_obj), "query": query.urlencode()}
    return page(request, "scoring/audit_list.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


AUDIT_COLUMNS = ("id", "occurred_at", "actor_username", "action", "outcome", "portfolio_id", "object_type",
                 "object_ids", "details", "request_id", "ip", "hash")  # fmt: skip


@login_required
@require_GET
def audit_export(request):
    _, filters, events = audit_events(request)
    audit_record(
        action="audit.export", request=request, object_type="audit_event",
        details={"filters": {k: str(v) for k, v in filters.items()}, "format": "csv"},
    )  # fmt: skip
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow(AUDIT_COLUMNS)
        for event in events.iterator(chunk_size=2000):
            values = [getattr(event, c) for c in AUDIT_COLUMNS]
            values = [json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for v in values]
            yield writer.writerow([escape_cell(v) for v in values])

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
    return response
