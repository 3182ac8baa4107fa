"""Adverse-action reasons: readable statements per feature and direction, integers as
integers, never None or an empty text; reasons measured against the approval boundary
add up to the points the applicant was short."""

import re

import numpy as np
import pytest

from models.reasons import boundary_points, format_value
from scoring.models import Score
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import batch_run_create, score_chunk_run
from scoring.services.explanations import boundary_reference, score_explanation
from scoring.services.policy import policy_in_force
from scoring.services.reason_codes import reason_catalogue_default
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.training import model_version_create, model_version_train
from tests.factories import UserFactory, demo_schema, synthetic_portfolio

FAST = {"max_epochs": 4, "patience": 2, "batch_size": 128}
FLOAT_OF_INTEGER = re.compile(r"\b\d+\.0\b")


@pytest.mark.django_db
@pytest.mark.parametrize("schema", ["synthetic", "german_credit"])
def test_no_default_text_is_empty_and_each_numeric_feature_has_both_directions(schema):
    definition = demo_schema(schema)
    catalogue = reason_catalogue_default(schema=definition)
    assert all(entry["text"].strip() and entry["code"] and entry["group"] for entry in catalogue.values())
    for column in definition.columns_with_role("numeric"):
        high, low = catalogue[f"{column['name']}:high"], catalogue[f"{column['name']}:low"]
        assert high["text"] != low["text"] and high["group"] == low["group"] == column["name"]
        assert high["code"][:4] == low["code"][:4]  # one cause, two directions


def test_values_print_as_a_notice_prints_them():
    assert format_value(48.0, integer=True) == "48" and format_value(3) == "3"
    assert format_value(0.6123) == "0.61" and format_value(42000.0) == "42,000"
    assert format_value(None) == "" and format_value(float("nan")) == ""


@pytest.fixture
def scored(db):
    portfolio = synthetic_portfolio(n=500, seed=17)
    developer, validator = UserFactory(username="dev"), UserFactory(username="val")
    portfolio_access_grant(portfolio=portfolio, grantee=validator, role="model validator")
    version = model_version_create(
        portfolio=portfolio, kind="mlp", seed=1, hyperparameters=FAST, requested_by=developer
    )
    version = model_version_train(model_version_id=version.pk)
    model_version_approve(version=version, user=validator)
    model_version_promote(version=version, user=validator, override_reason="test book")
    run = batch_run_create(portfolio=portfolio, chunk_size=250)
    for chunk_id in run.chunks.values_list("id", flat=True):
        score_chunk_run(chunk_id=chunk_id)
    return list(Score.objects.filter(run=run).select_related("model_version__schema", "model_version__portfolio"))


def test_reason_texts_never_print_none_or_a_float_for_an_integer(scored):
    texts = [r["text"] for s in scored for r in s.reasons]
    assert texts and all(t.strip() for t in texts)
    assert not [t for t in texts if "None" in t or "nan" in t.lower()]
    integer_reasons = [r for s in scored for r in s.reasons if r["feature"] in ("duration_months", "num_credit_lines")]
    assert integer_reasons and all(isinstance(r["value"], int) for r in integer_reasons)
    assert not [r["text"] for r in integer_reasons if FLOAT_OF_INTEGER.search(r["text"])]
    assert any(" is high (" in t for t in texts) and any(" is low (" in t for t in texts)


def test_boundary_contributions_add_up_to_the_points_short_on_every_row(scored):
    version = scored[0].model_version
    policy = policy_in_force(version.portfolio)
    reference, reference_log_odds = boundary_reference(version)
    contributions = np.array([s.contributions for s in scored])
    score = np.array([s.score for s in scored])
    costs, _ = boundary_points(contributions, score, cutoff=policy.approve_min_score, scale=policy.scale,
                               reference=reference, reference_log_odds=reference_log_odds)  # fmt: skip
    error = np.abs(costs.sum(axis=1) - (policy.approve_min_score - score))
    assert error.max() < 1e-6, error.max()
    declined = next(s for s in scored if s.decision == "decline")
    boundary = score_explanation(score=declined)["boundary"]
    assert sum(c["points"] for c in boundary["costs"]) == pytest.approx(boundary["points_short"], abs=1e-6)
    principal = boundary["principal"]
    assert principal and len({p["cause"] for p in principal}) == len(principal)  # one statement per cause
    assert all(p["points"] > 0 and p["text"] and "None" not in p["text"] for p in principal)


def test_a_declined_applicant_gets_a_printable_notice_audited_when_produced(scored, client):
    from scoring.models import AuditEvent

    portfolio = scored[0].portfolio
    analyst = UserFactory(username="analyst")
    portfolio_access_grant(portfolio=portfolio, grantee=analyst, role="analyst")
    client.force_login(analyst)
    declined = next(s for s in scored if s.decision == "decline")
    response = client.get(f"/scores/{declined.pk}/notice/")
    assert response.status_code == 200
    page = response.content.decode()
    principal = score_explanation(score=declined)["boundary"]["principal"]
    assert "Notice of adverse action" in page and all(p["text"] in page for p in principal)
    assert "None" not in page
    event = AuditEvent.objects.get(action="notice.produce")
    assert event.object_ids == [declined.pk] and event.actor_username == "analyst"
    approved = next(s for s in scored if s.decision != "decline")
    assert client.get(f"/scores/{approved.pk}/notice/").status_code == 409
    outsider = UserFactory(username="outsider")
    client.force_login(outsider)
    assert client.get(f"/scores/{declined.pk}/notice/").status_code == 404


# --- categorical reasons: a statement per category, the admin editing the same entries ---


def _variant(name: str, **purpose):
    """The synthetic demo schema under another name, its purpose column changed."""
    import json

    from scoring.services.schemas import schema_register
    from tests.factories import DEMO

    document = json.loads((DEMO / "synthetic.schema.json").read_text())
    document["name"] = name
    for column in document["columns"]:
        if column["name"] == "purpose":
            column.update(purpose)
    return schema_register(document=document)


@pytest.mark.django_db
def test_each_category_has_its_own_readable_statement():
    catalogue = reason_catalogue_default(schema=demo_schema("synthetic"))
    assert catalogue["purpose=debt_consolidation"]["text"] == "Purpose: debt consolidation"
    assert catalogue["home_ownership=rent"]["text"] == "Home ownership: rent"
    categories = {k: v for k, v in catalogue.items() if "=" in k}
    assert categories and all("_" not in v["text"] and "{" not in v["text"] for v in categories.values())
    purpose = [v for k, v in categories.items() if k.startswith("purpose=")]
    assert {v["group"] for v in purpose} == {"purpose"} and len({v["code"][:4] for v in purpose}) == 1  # one cause
    assert len({v["code"] for v in purpose}) == len(purpose) == 6
    german = reason_catalogue_default(schema=demo_schema("german_credit"))
    assert german["purpose=car (new)"]["text"] == "Purpose: car (new)"  # written words stay as written
    labelled = reason_catalogue_default(
        schema=_variant(
            "synthetic_labels", label="Loan purpose", category_labels={"debt_consolidation": "paying off other debts"}
        )
    )
    assert labelled["purpose=debt_consolidation"]["text"] == "Loan purpose: paying off other debts"
    assert labelled["purpose=car"]["text"] == "Loan purpose: car"


def test_a_category_key_spells_whole_numbers_as_integers():
    from models.reasons import reason_key

    assert reason_key("purpose", "car", {"income": 1.0}) == "purpose=car"
    assert reason_key("grade", 2.0, {}) == "grade=2" and reason_key("grade", None, {}) == "grade:missing"
    assert reason_key("income", 5.0, {"income": 1.0}) == "income:high"


@pytest.mark.django_db
def test_category_labels_must_be_texts():
    from scoring.services.schemas import SchemaError

    with pytest.raises(SchemaError, match="category_labels"):
        _variant("synthetic_bad_labels", category_labels={"car": None})


def test_categorical_reasons_of_decisions_read_as_statements(scored):
    catalogue = policy_in_force(scored[0].portfolio).catalogue
    categorical = {"home_ownership", "purpose", "region"}
    reasons = [r for s in scored for r in s.reasons if r["feature"] in categorical]
    assert reasons
    for reason in reasons:
        assert reason["text"] == catalogue[f"{reason['feature']}={reason['value']}"]["text"]
        assert "_" not in reason["text"] and "None" not in reason["text"] and ": " in reason["text"]


@pytest.mark.django_db
def test_the_admin_rewords_the_per_direction_entry_the_decisions_read(client):
    from scoring.models import PolicyVersion, ReasonCode
    from tests.factories import PortfolioFactory

    portfolio = PortfolioFactory(name="Reworded")
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    assert client.get("/admin/scoring/reasoncode/").status_code == 200
    keys = set(ReasonCode.objects.filter(schema=portfolio.schema).values_list("feature", flat=True))
    assert set(reason_catalogue_default(schema=portfolio.schema)) == keys
    assert {"income:high", "income:low", "purpose=car"} <= keys and "income" not in keys
    row = ReasonCode.objects.get(schema=portfolio.schema, feature="income:high")
    response = client.post(f"/admin/scoring/reasoncode/{row.pk}/change/", {"text": "Income is above {value}"})
    assert response.status_code == 302
    proposal = PolicyVersion.objects.get(portfolio=portfolio, status=PolicyVersion.STATUS_PROPOSED)
    entry = proposal.reason_catalogue["income:high"]
    assert entry == {"code": "R001H", "group": "income", "text": "Income is above {value}"}
    assert proposal.reason_catalogue["income:low"] == reason_catalogue_default(schema=portfolio.schema)["income:low"]
    bad = client.post(f"/admin/scoring/reasoncode/{row.pk}/change/", {"text": "Income {amount}"}, follow=True)
    assert "no other placeholder" in bad.content.decode()
