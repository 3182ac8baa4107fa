"""Every error of the API has one body: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.throttling import UserRateThrottle

from scoring.api import views
from scoring.services.access import portfolio_access_grant
from tests.factories import UserFactory
from tests.scoring.api.conftest import client_for


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["message"]
    return body["error"]


def test_a_missing_object_and_another_portfolios_object_answer_the_same_404(api_world):
    owner = client_for(api_world["owner"])
    theirs = api_world["their_applicants"][0]
    hidden = error_of(owner.get(f"/api/v1/applicants/{theirs.pk}/"), 404)
    missing = error_of(owner.get("/api/v1/applicants/99999999/"), 404)
    assert hidden == missing == {"code": "not_found", "message": "Not found.", "details": None}
    hidden_score = error_of(owner.get(f"/api/v1/scores/{theirs.scores.get().pk}/explanation/"), 404)
    assert hidden_score == missing


def test_an_unknown_path_under_the_api_is_a_404_in_the_error_format(api_world):
    for client in (client_for(api_world["owner"]), client_for()):
        error = error_of(client.get("/api/v1/no-such-thing/"), 404)
        assert error["code"] == "not_found" and "/api/v1/no-such-thing/" in error["message"]


def test_no_credentials_is_a_401_with_the_token_challenge(api_world):
    response = client_for().get("/api/v1/applicants/")
    error = error_of(response, 401)
    assert error["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"


def test_a_missing_grant_is_a_403_and_a_csrf_failure_too(api_world):
    # The stranger sees their own portfolio but holds no train grant on it.
    error = error_of(
        client_for(api_world["stranger"]).post(
            "/api/v1/models/train/", {"portfolio": api_world["theirs"].pk, "kind": "mlp"}, format="json"
        ),
        403,
    )
    assert error["code"] == "permission_denied"
    # Session authentication enforces CSRF on writes; its refusal has the same shape.
    session = client_for(enforce_csrf_checks=True)
    session.force_login(api_world["owner"])
    assert session.get("/api/v1/applicants/").status_code == 200
    error = error_of(session.post("/api/v1/batch-runs/", {"portfolio": api_world["mine"].pk}, format="json"), 403)
    assert error["code"] == "permission_denied" and "CSRF" in error["message"]


def test_invalid_input_lists_every_problem_per_field(api_world):
    owner = client_for(api_world["owner"])
    error = error_of(owner.post("/api/v1/models/train/", {"kind": "forest"}, format="json"), 400)
    assert error["code"] == "invalid"
    assert set(error["details"]) == {"portfolio", "kind"}
    assert error["message"].startswith("Invalid input: ")
    # A rule of the whole body (not one field) is a non-field error.
    url = f"/api/v1/portfolios/{api_world['mine'].pk}/score/"
    error = error_of(owner.post(url, {}, format="json"), 400)
    assert error["details"] == {"non_field_errors": ["Give exactly one of applicant_id, external_id or applicant."]}
    # A filter's value is input too.
    error = error_of(owner.get("/api/v1/scores/?decision=maybe"), 400)
    assert list(error["details"]) == ["decision"]


def test_malformed_json_a_wrong_method_and_a_page_past_the_end(api_world):
    owner = client_for(api_world["owner"])
    error = error_of(owner.post("/api/v1/models/train/", "{not json", content_type="application/json"), 400)
    assert error["code"] == "parse_error"
    assert error_of(owner.delete(f"/api/v1/applicants/{api_world['applicants'][0].pk}/"), 405)["code"] == (
        "method_not_allowed"
    )
    assert error_of(owner.get("/api/v1/applicants/?page=99"), 404)["code"] == "not_found"


def test_a_state_conflict_is_a_409(api_world):
    version = api_world["version"]  # a champion already
    error = error_of(client_for(api_world["owner"]).post(f"/api/v1/models/{version.pk}/approve/"), 403)
    assert error["code"] == "permission_denied"  # the owner is no validator
    validator = UserFactory(username="validator")
    portfolio_access_grant(portfolio=api_world["mine"], grantee=validator, role="model validator")
    error = error_of(client_for(validator).post(f"/api/v1/models/{version.pk}/approve/"), 409)
    assert error["code"] == "conflict" and "champion" in error["message"]


class OnePerMinute(UserRateThrottle):
    scope = "test-one-per-minute"
    rate = "1/minute"


def test_throttling_is_a_429_with_the_wait(api_world, monkeypatch):
    cache.clear()
    monkeypatch.setattr(views.ApplicantViewSet, "throttle_classes", [OnePerMinute])
    owner = client_for(api_world["owner"])
    assert owner.get("/api/v1/applicants/").status_code == 200
    response = owner.get("/api/v1/applicants/")
    error = error_of(response, 429)
    assert error["code"] == "throttled"
    assert 0 < error["details"]["retry_after_seconds"] <= 60
    assert int(response["Retry-After"]) == pytest.approx(error["details"]["retry_after_seconds"], abs=1)


def test_an_unexpected_failure_is_a_500_in_the_error_format_without_internals(api_world, monkeypatch):
    def explode(self, request, *args, **kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(views.ApplicantViewSet, "list", explode)
    response = client_for(api_world["owner"], raise_request_exception=False).get("/api/v1/applicants/")
    error = error_of(response, 500)
    assert error["code"] == "server_error" and "hunter2" not in response.content.decode()
