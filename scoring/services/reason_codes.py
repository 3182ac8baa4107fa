"""The reason-code catalogue: the sentences behind each feature's contribution.
Defaults are generated from the schema (``reason_catalogue_default``); the admin lists
the same entries (one per feature and direction, one per category) and a reworded text
becomes a policy proposal of every portfolio on the schema (``reason_text_propose``)."""

from __future__ import annotations

import re

from models.features import HISTORY_SOURCES
from models.reasons import RECENT_MONTHS, category_text
from scoring.models import DatasetSchema, PolicyVersion, Portfolio, ReasonCode
from scoring.services.errors import ServiceError

_IDENTIFIER = re.compile(r"[A-Za-z0-9]+(?:[_-][A-Za-z0-9]+)*")

HISTORY_TEXT = {
    "history.days_past_due": (
        "Payments 30+ days late in {value} of the last " + str(RECENT_MONTHS) + " months",
        "Payments 30+ days late in {value} earlier months",
    ),
    "history.amount_paid": ("Recent payment amounts", "Earlier payment amounts"),
    "history.balance": ("Recent outstanding balance", "Earlier outstanding balance"),
    "history.observed": (
        "Length of recent repayment history",
        "Length of repayment history ({value} months on record)",
    ),
}


def _humanise(name: str) -> str:
    return name.replace("_", " ").strip().capitalize()


def reason_codes_ensure(*, schema: DatasetSchema) -> dict[str, ReasonCode]:
    """The admin's rows of a schema: exactly the entries of its default catalogue (the
    keys decisions look up, per feature and direction), with their codes. Rows of other
    keys (the per-feature rows of before, which no decision reads) are removed; a row's
    text is the default (a rewording is a policy proposal, never saved on the row)."""
    catalogue = reason_catalogue_default(schema=schema)
    rows = ReasonCode.objects.filter(schema=schema)
    stale = [rc.pk for rc in rows if catalogue.get(rc.feature, {}).get("code") != rc.code]
    if stale:
        ReasonCode.objects.filter(pk__in=stale).delete()
    existing = {rc.feature for rc in ReasonCode.objects.filter(schema=schema)}
    if set(catalogue) - existing:
        ReasonCode.objects.bulk_create(
            [
                ReasonCode(schema=schema, feature=key, code=entry["code"], text=entry["text"][:300])
                for key, entry in catalogue.items()
                if key not in existing
            ],
            ignore_conflicts=True,  # workers creating the rows at once agree on them
        )
    return {rc.feature: rc for rc in ReasonCode.objects.filter(schema=schema)}


class ReasonTextError(ServiceError):
    """The reworded reason is not an entry of the schema's catalogue."""

    code = "invalid_reason"
    status = 400


def reason_text_propose(
    *, schema: DatasetSchema, key: str, text: str, user
) -> list[tuple[Portfolio, PolicyVersion | ServiceError]]:
    """Reword one catalogue entry (a feature and direction, or a category) for every
    portfolio on ``schema``: each gets a policy proposal (``policy_propose``, the admin's
    console standing in for the policy role) replacing only that entry's text, its code
    and group kept, to be approved by a second person. Returns each portfolio with its
    proposal, or the service error that stopped it."""
    from scoring.services.policy import policy_in_force, policy_propose

    default = reason_catalogue_default(schema=schema).get(key)
    if default is None:
        raise ReasonTextError(f"{key!r} is not a reason of schema {schema}.")
    out: list[tuple[Portfolio, PolicyVersion | ServiceError]] = []
    for portfolio in Portfolio.objects.filter(schema=schema).order_by("pk"):
        entry = {**default, **policy_in_force(portfolio).catalogue.get(key, {}), "text": text}
        try:
            proposal = policy_propose(
                portfolio=portfolio, user=user, admin=True, comment=f"reason {entry['code']} reworded",
                changes={"reason_catalogue": {key: entry}},
            )  # fmt: skip
        except ServiceError as error:
            out.append((portfolio, error))
        else:
            out.append((portfolio, proposal))
    return out


def category_label(column: dict, category) -> str:
    """A category as a statement names it: the schema's ``category_labels`` entry, else a
    code in words ("debt_consolidation" → "debt consolidation"), else as written; a
    whole number without decimals."""
    text = category_text(category)
    labels = column.get("category_labels") or {}
    if isinstance(labels.get(text), str) and labels[text].strip():
        return labels[text].strip()
    if _IDENTIFIER.fullmatch(text) and ("_" in text or text.islower()):
        return text.replace("_", " ")
    return text


def _label(column: dict) -> str:
    return str(column.get("label") or _humanise(column["name"]))


def reason_catalogue_default(*, schema: DatasetSchema, months: int = 24) -> dict[str, dict[str, str]]:
    """The catalogue a portfolio's first policy version starts from: reason key → {code,
    text, group}. A numeric feature has one statement per direction ("Debt to income is
    high (0.61)", "... is low", "... not given"); a categorical one a statement per
    category ("Purpose: debt consolidation", the schema's ``label`` and ``category_labels``
    when declared); the
    history windows of one channel share a group. Codes are grouped (R003H, R003L, R003M
    are cause R003), so a notice states each cause once. ``{value}`` is filled with the
    value as a notice prints it (``models.reasons.format_value``)."""
    catalogue: dict[str, dict[str, str]] = {}
    columns = schema.columns_with_role(DatasetSchema.ROLE_NUMERIC, DatasetSchema.ROLE_CATEGORICAL)
    for number, column in enumerate(columns, start=1):
        name, label, code = column["name"], _label(column), f"R{number:03d}"
        if column["role"] == DatasetSchema.ROLE_NUMERIC:
            catalogue[f"{name}:high"] = {
                "code": f"{code}H",
                "group": name,
                "text": column.get("reason_high") or f"{label} is high ({{value}})",
            }
            catalogue[f"{name}:low"] = {
                "code": f"{code}L",
                "group": name,
                "text": column.get("reason_low") or f"{label} is low ({{value}})",
            }
        else:
            # One statement per declared category ("Purpose: debt consolidation"); the
            # column's own entry covers a value the schema does not declare.
            for index, category in enumerate(column.get("categories") or [], start=1):
                catalogue[f"{name}={category_text(category)}"] = {
                    "code": f"{code}C{index}",
                    "group": name,
                    "text": f"{label}: {category_label(column, category)}",
                }
            catalogue[name] = {"code": code, "group": name, "text": column.get("reason") or f"{label}: {{value}}"}
        catalogue[f"{name}:missing"] = {"code": f"{code}M", "group": name, "text": f"{label} not given"}
    base = len(columns)
    for offset, source in enumerate(HISTORY_SOURCES, start=1):
        recent, earlier = HISTORY_TEXT[source]
        code = f"R{base + offset:03d}"
        catalogue[f"{source}:last_{RECENT_MONTHS}m"] = {"code": f"{code}R", "group": source, "text": recent}
        if months > RECENT_MONTHS:
            catalogue[f"{source}:earlier"] = {"code": f"{code}E", "group": source, "text": earlier}
    return catalogue
