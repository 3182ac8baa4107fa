"""The reason-code catalogue: the sentences behind each feature's contribution.
Defaults are generated from the schema; the admin edits them."""

from __future__ import annotations

from models.features import HISTORY_SOURCES
from models.reasons import RECENT_MONTHS, history_groups
from scoring.models import DatasetSchema, ReasonCode

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


def default_reason_texts(schema: DatasetSchema, months: int = 24) -> dict[str, str]:
    texts = {}
    for column in schema.columns_with_role(DatasetSchema.ROLE_NUMERIC, DatasetSchema.ROLE_CATEGORICAL):
        texts[column["name"]] = column.get("reason") or f"{_humanise(column['name'])}: {{value}}"
    for group in history_groups(months):
        source, _, window = group.partition(":")
        assert source in HISTORY_SOURCES
        recent, earlier = HISTORY_TEXT[source]
        texts[group] = recent if window.startswith("last") else earlier
    return texts


def reason_codes_ensure(*, schema: DatasetSchema) -> dict[str, ReasonCode]:
    """The catalogue of a schema, creating the default entries that are missing (edits
    are kept). Codes follow the schema's order, so workers creating the catalogue at
    the same time agree on them, and the unique constraints keep one row each."""
    existing = {rc.feature: rc for rc in ReasonCode.objects.filter(schema=schema)}
    defaults = default_reason_texts(schema)
    if set(defaults) - set(existing):
        ReasonCode.objects.bulk_create(
            [
                ReasonCode(schema=schema, feature=feature, code=f"R{number:03d}", text=text)
                for number, (feature, text) in enumerate(defaults.items(), start=1)
                if feature not in existing
            ],
            ignore_conflicts=True,
        )
        existing = {rc.feature: rc for rc in ReasonCode.objects.filter(schema=schema)}
    return existing


def reason_catalogue_default(*, schema: DatasetSchema) -> dict[str, dict[str, str]]:
    """The catalogue a portfolio's first policy version starts from: reason key →
    {code, text}, a snapshot (later edits of the schema's table do not change a policy)."""
    return {feature: {"code": rc.code, "text": rc.text} for feature, rc in reason_codes_ensure(schema=schema).items()}
