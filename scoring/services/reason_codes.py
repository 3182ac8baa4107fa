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


def _label(column: dict) -> str:
    return str(column.get("label") or _humanise(column["name"]))


def reason_catalogue_default(*, schema: DatasetSchema, months: int = 24) -> dict[str, dict[str, str]]:
    """The catalogue a portfolio's first policy version starts from: reason key → {code,
    text, group}. A numeric feature has one statement per direction ("Debt to income is
    high (0.61)", "... is low", "... not given"); a categorical one quotes its value; the
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
