"""How the portal names and writes feature values: the schema's words, not the
column keys, and each value in its declared type (an integer column shows 12, not
12.0). One place, so the applicant page, the reasons, the what-if panel and the
new-application form say the same thing."""

from __future__ import annotations

from typing import Any

from scoring.models import DatasetSchema

MISSING = "(missing)"
NONE = "\N{EN DASH}"  # an empty cell of the audit log


def column_label(column: dict) -> str:
    """A column's human label: its declared ``label``, else its name in words."""
    label = column.get("label")
    if isinstance(label, str) and label.strip():
        return label.strip()
    return str(column["name"]).replace("_", " ").strip().capitalize()


def value_text(column: dict | None, value: Any) -> str:
    """A value as the page shows it."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    integral = isinstance(value, (int, float)) and float(value).is_integer()
    if column is not None and column.get("type") == "integer" and integral:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def feature_columns(schema: DatasetSchema) -> list[dict]:
    """The model features of a schema, in its declared order."""
    return schema.columns_with_role(DatasetSchema.ROLE_NUMERIC, DatasetSchema.ROLE_CATEGORICAL)


def feature_labels(schema: DatasetSchema) -> dict[str, str]:
    return {column["name"]: column_label(column) for column in schema.definition["columns"]}


def feature_rows(schema: DatasetSchema, features: dict) -> list[dict]:
    """Label and value of each model feature, in the schema's order; features the
    applicant holds that the schema no longer declares come last, under their key."""
    columns = feature_columns(schema)
    rows = [
        {"name": c["name"], "label": column_label(c), "value": value_text(c, features.get(c["name"]))} for c in columns
    ]
    declared = {c["name"] for c in columns}
    rows += [
        {"name": k, "label": k.replace("_", " ").capitalize(), "value": value_text(None, v)}
        for k, v in sorted(features.items())
        if k not in declared
    ]
    return rows


def reasons_labelled(schema: DatasetSchema, reasons: list[dict]) -> list[dict]:
    """Reasons with the feature's label and its value written like the feature table."""
    columns = {c["name"]: c for c in schema.definition["columns"]}
    out = []
    for reason in reasons or []:
        column = columns.get(reason.get("feature"))
        label = column_label(column) if column else str(reason.get("feature", ""))
        out.append({**reason, "label": label, "value_text": value_text(column, reason.get("value"))})
    return out


def whatif_change(schema: DatasetSchema, before, after) -> dict:
    """Old → new of a what-if: PD, points and decision, and each reason of either answer
    (``before``/``after``: ``ScoredRow``s of the same champion on the current and on the
    changed values), matched by feature so a reason that appears or goes shows as such."""
    measures = [
        {"label": "Probability of default", "before": round(before.pd, 4), "after": round(after.pd, 4)},
        {"label": "Score (points)", "before": round(before.score), "after": round(after.score)},
        {"label": "Decision", "before": before.decision, "after": after.decision},
    ]
    old = {r["feature"]: r for r in reasons_labelled(schema, before.reasons)}
    new = {r["feature"]: r for r in reasons_labelled(schema, after.reasons)}
    reasons = []
    for feature in [*new, *(f for f in old if f not in new)]:
        a, b = old.get(feature), new.get(feature)
        shown = b or a
        assert shown is not None  # the feature came from one side or the other
        reasons.append(
            {
                "feature": feature,
                "label": shown["label"],
                "code": shown.get("code") or "",
                "text": shown.get("text") or "",
                "before_value": a["value_text"] if a else None,
                "after_value": b["value_text"] if b else None,
                "before_points": round(a["points"], 1) if a else None,
                "after_points": round(b["points"], 1) if b else None,
            }
        )
    return {"measures": measures, "reasons": reasons}


def recourse_view(schema: DatasetSchema, recourse) -> dict:
    """A :class:`scoring.services.recourse.ScoreRecourse` as the API and the what-if panel
    show it: each change under the feature's label, before → after written as a notice
    writes values (integers as integers, never ``None``)."""
    from models.reasons import format_value

    columns = {c["name"]: c for c in schema.definition["columns"]}

    def text(name: str, value: Any) -> str:
        column = columns.get(name) or {}
        return format_value(value, integer=column.get("type") == "integer") or MISSING

    score = recourse.score
    suggestions = [
        {
            **suggestion,
            "changes": [
                {
                    **c,
                    "label": column_label(columns.get(c["feature"]) or {"name": c["feature"]}),
                    "before_text": text(c["feature"], c["before"]),
                    "after_text": text(c["feature"], c["after"]),
                }
                for c in suggestion["changes"]
            ],
        }
        for suggestion in recourse.suggestions
    ]
    policy = recourse.policy
    return {
        "score": score.pk,
        "applicant": score.applicant_id,
        "model_version": recourse.version.pk,
        "policy_version": policy.id,
        "policy_note": f"decided under {policy.describe()}",
        "decision": score.decision,
        "points": score.score,
        "target": "approve",
        "feasible": recourse.result.feasible,
        "message": recourse.message,
        "suggestions": suggestions,
        "immutable": recourse.immutable,
        "immutable_labels": [column_label(columns.get(n) or {"name": n}) for n in recourse.immutable],
        "evaluated": recourse.result.evaluated,
    }


# --- the audit log, readable ----------------------------------------------------------

# Detail keys that hold a ModelVersion id: shown as "v2 MLP", like everywhere else in the portal.
MODEL_VERSION_KEYS = ("model_version", "challenger", "champion", "previous_champion", "version")


def _detail_text(value: Any) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_detail_text(v) for v in value) or NONE
    return str(value)


def _detail_fields(details: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if not isinstance(details, dict):
        return [] if details in (None, "", {}) else [(prefix or "value", details)]
    out: list[tuple[str, Any]] = []
    for key in sorted(details):
        value, name = details[key], f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += _detail_fields(value, f"{name}.")
        elif not (isinstance(value, dict) and not value):
            out.append((name, value))
    return out


def audit_rows(events) -> list[dict]:
    """Audit events as people read them: portfolio names, model versions as "v2 MLP",
    users by name, and details as labelled fields instead of a Python repr. Two
    queries for a page, whatever its length."""
    from django.contrib.auth import get_user_model

    from scoring.models import ModelVersion, Portfolio

    events = list(events)
    portfolio_ids = {e.portfolio_id for e in events if e.portfolio_id}
    version_ids: set[int] = set()
    user_ids: set[int] = set()
    for e in events:
        if e.object_type == "modelversion":
            version_ids.update(i for i in e.object_ids or [] if isinstance(i, int))
        if e.object_type == "user":
            user_ids.update(i for i in e.object_ids or [] if isinstance(i, int))
        for key, value in _detail_fields(e.details):
            if key.rsplit(".", 1)[-1] in MODEL_VERSION_KEYS and isinstance(value, int):
                version_ids.add(value)
    portfolios = dict(Portfolio.objects.filter(pk__in=portfolio_ids).values_list("pk", "name"))
    versions = {
        pk: f"v{number} {kind.upper()}"
        for pk, number, kind in ModelVersion.objects.filter(pk__in=version_ids).values_list("pk", "version", "kind")
    }
    users = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
    names = {"modelversion": versions, "user": users}
    words = {"batchrun": "run", "importjob": "import", "score": "decision", "monitoringreport": "report",
             "tuningstudy": "study", "audit_event": "event", "applicant": "applicant", "group": "group"}  # fmt: skip

    def object_text(e) -> str:
        ids = e.object_ids or []
        known = names.get(e.object_type, {})
        word = words.get(e.object_type, e.object_type.replace("_", " "))
        if not ids:
            return word if e.object_type else NONE
        shown = [known.get(i) or f"{word} #{i}" for i in ids[:5]]
        return ", ".join(shown) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")

    rows = []
    for e in events:
        fields = []
        for key, value in _detail_fields(e.details):
            if key.rsplit(".", 1)[-1] in MODEL_VERSION_KEYS and isinstance(value, int) and value in versions:
                value = versions[value]
            fields.append((key.replace("_", " "), _detail_text(value)))
        rows.append(
            {
                "event": e,
                "portfolio": portfolios.get(e.portfolio_id, f"#{e.portfolio_id}") if e.portfolio_id else NONE,
                "object": object_text(e),
                "fields": fields,
            }
        )
    return rows
