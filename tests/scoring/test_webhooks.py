"""Decision events: signed webhooks of final decisions, sent by a real Celery worker
to a real local HTTP receiver (a threading http.server on a port of 15500-15549)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from scoring.models import Applicant, AuditEvent, ModelVersion, Score, WebhookDelivery, WebhookEndpoint
from scoring.services.access import portfolio_access_grant
from scoring.services.decision_events import DecisionEventError, decision_final
from scoring.services.errors import ServiceError
from scoring.services.scoring import score_record
from scoring.services.supervisor import supervise
from scoring.services.webhooks import (
    WebhookForbidden,
    webhook_delivery_redeliver,
    webhook_endpoint_create,
    webhook_endpoint_update,
    webhook_url_check,
)
from tests.conftest import wait_for
from tests.factories import PortfolioFactory, UserFactory

PORTS = range(15500, 15549)
DOWN_PORT = 15549  # nothing listens here: a receiver that is down


def verify(secret: str, body: bytes, header: str, *, tolerance: int = 300) -> bool:
    """The receiver's check, as docs/webhooks.md gives it."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(fields["t"])
    if abs(time.time() - timestamp) > tolerance:
        return False  # a replay of an old request
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


class Receiver:
    """An origination system's receiver: answers the scripted statuses in turn (then
    the last one), and records each request's arrival time, headers and body."""

    def __init__(self, statuses=(200,)):
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                index = len(receiver.requests)
                receiver.requests.append({"at": time.monotonic(), "headers": dict(self.headers), "body": body})
                status = receiver.statuses[min(index, len(receiver.statuses) - 1)]
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        for port in PORTS:
            try:
                self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
                break
            except OSError:
                continue
        else:
            raise RuntimeError("no free port in 15500-15548")
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/decisions?source=riskapp"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory():
    receivers = []

    def start(statuses=(200,)):
        receiver = Receiver(statuses)
        receivers.append(receiver)
        return receiver

    yield start
    for receiver in receivers:
        receiver.stop()


def _book() -> dict:
    portfolio = PortfolioFactory(name="Webhooks")
    other = PortfolioFactory(name="Other book")
    version = ModelVersion.objects.create(
        portfolio=portfolio, version=3, kind="mlp", status="champion", schema=portfolio.schema
    )
    applicant = Applicant.objects.create(
        portfolio=portfolio, external_id="APP-0042", schema=portfolio.schema, features={"income": 1.0}
    )
    admin = UserFactory(username="webhook-root", is_staff=True, is_superuser=True)
    return {"portfolio": portfolio, "other": other, "version": version, "applicant": applicant, "admin": admin}


@pytest.fixture
def book(db):
    return _book()


@pytest.fixture
def committed_book(transactional_db):
    """The same book, committed: a real worker process reads it."""
    return _book()


def new_score(book, decision: str, *, points: float = 600.0) -> Score:
    """A real-time decision as both scoring paths save it: through ``score_record``."""
    score = Score(
        portfolio=book["portfolio"], applicant=book["applicant"], model_version=book["version"], pd=0.042,
        score=points, decision=decision, base_log_odds=-3.1, reasons=[], contributions=[],
        input_features={"income": 1.0}, input_hash="0" * 64,
    )  # fmt: skip
    return score_record(score=score, version=book["version"], requested_by=book["admin"])


def endpoint_for(book, url: str) -> tuple[WebhookEndpoint, str]:
    return webhook_endpoint_create(portfolio=book["portfolio"], url=url, user=book["admin"])


# --- Configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "http://[fd00:ec2::254]/hook",
        "http://0.0.0.0:8080/hook",
        "https://user:password@example.com/hook",
        "https:///no-host",
    ],
)
def test_it_refuses_urls_a_receiver_should_not_have(url, db):
    with pytest.raises(ServiceError):
        webhook_url_check(url)


def test_link_local_receivers_are_allowed_only_by_the_setting(settings, db):
    settings.WEBHOOK_ALLOW_LINK_LOCAL = True
    assert webhook_url_check(" http://169.254.10.20/hook ") == "http://169.254.10.20/hook"
    assert webhook_url_check("https://127.0.0.1:15500/hook") == "https://127.0.0.1:15500/hook"


def test_only_administrators_manage_endpoints_and_every_change_is_audited(book):
    analyst = UserFactory(username="webhook-analyst")
    portfolio_access_grant(portfolio=book["portfolio"], grantee=analyst, role="senior analyst")
    with pytest.raises(WebhookForbidden):
        webhook_endpoint_create(portfolio=book["portfolio"], url="https://example.com/h", user=analyst)
    endpoint, _ = endpoint_for(book, "https://example.com/h")
    webhook_endpoint_update(endpoint=endpoint, user=book["admin"], url="https://example.org/h2", active=False)
    events = list(AuditEvent.objects.filter(action__startswith="webhook.").order_by("id"))
    assert [(e.action, e.outcome) for e in events] == [
        ("webhook.endpoint_create", "denied"),
        ("webhook.endpoint_create", "success"),
        ("webhook.endpoint_update", "success"),
    ]
    assert events[2].details == {
        "before": {"url": "https://example.com/h", "active": True, "description": ""},
        "after": {"url": "https://example.org/h2", "active": False, "description": ""},
    }


def test_the_secret_is_never_in_clear_in_the_database_the_api_or_the_audit_log(book, client):
    endpoint, secret = endpoint_for(book, "https://example.com/hook")
    assert len(secret) >= 32
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM scoring_webhookendpoint WHERE id = %s", [endpoint.pk])
        row = cursor.fetchone()
        cursor.execute("SELECT secret_ciphertext FROM scoring_webhookendpoint WHERE id = %s", [endpoint.pk])
        (raw,) = cursor.fetchone()
    assert secret not in " ".join(map(str, row))
    assert raw.startswith("gAAAA")  # a Fernet token under the PII keys
    from scoring.services.webhooks import webhook_secret

    assert webhook_secret(WebhookEndpoint.objects.get(pk=endpoint.pk)) == secret
    new_score(book, "approve")
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1
    api = APIClient()
    api.force_authenticate(book["admin"])
    listing = api.get("/api/v1/webhook-deliveries/")
    assert listing.status_code == 200 and listing.json()["count"] == 1
    assert secret not in listing.content.decode()
    assert not AuditEvent.objects.filter(details__icontains=secret).exists()
    client.force_login(book["admin"])
    page = client.get(f"/admin/scoring/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200 and secret not in page.content.decode()
    assert raw not in page.content.decode()


def test_the_admin_shows_a_new_secret_once_and_saves_through_the_service(book, client):
    client.force_login(book["admin"])
    response = client.post(
        "/admin/scoring/webhookendpoint/add/",
        {"portfolio": book["portfolio"].pk, "url": "https://example.com/admin-hook", "active": "on", "description": ""},
    )
    assert response.status_code == 200, response.content[:500]
    endpoint = WebhookEndpoint.objects.get(url="https://example.com/admin-hook")
    from scoring.services.webhooks import webhook_secret

    assert webhook_secret(endpoint) in response.content.decode()
    assert AuditEvent.objects.filter(action="webhook.endpoint_create", object_ids=[endpoint.pk]).exists()
    refused = client.post(
        "/admin/scoring/webhookendpoint/add/",
        {"portfolio": book["portfolio"].pk, "url": "http://169.254.169.254/", "active": "on", "description": ""},
    )
    assert refused.status_code == 200 and "link-local" in refused.content.decode()
    assert not WebhookEndpoint.objects.filter(url__contains="169.254").exists()


# --- Which decisions are events ------------------------------------------------------------


def test_final_decisions_owe_one_delivery_per_active_endpoint_and_refer_owes_none(book):
    first, _ = endpoint_for(book, "https://example.com/a")
    second, _ = endpoint_for(book, "https://example.com/b")
    webhook_endpoint_create(portfolio=book["other"], url="https://example.com/other", user=book["admin"])
    webhook_endpoint_update(endpoint=second, user=book["admin"], active=False)
    refer = new_score(book, "refer")
    approve = new_score(book, "approve", points=612.4)
    assert not WebhookDelivery.objects.filter(score=refer).exists()
    (delivery,) = WebhookDelivery.objects.filter(score=approve)
    assert delivery.endpoint == first and delivery.status == "pending"
    payload = delivery.payload
    assert payload == {
        "event": "decision.final", "event_id": str(delivery.event_id), "score_id": approve.pk,
        "applicant_external_id": "APP-0042", "portfolio_id": book["portfolio"].pk, "decision": "approve",
        "model_decision": "approve", "pd": 0.042, "points": 612.4, "policy_version": None, "model_version": 3,
        "source": "model", "decided_by": None, "decided_at": approve.created_at.isoformat(),
    }  # fmt: skip


def test_a_reviewed_refer_is_an_event_of_the_review(book):
    endpoint_for(book, "https://example.com/a")
    underwriter = UserFactory(username="webhook-underwriter")
    refer = new_score(book, "refer")
    with transaction.atomic():
        (delivery,) = decision_final(score=refer, decision="decline", source="review", decided_by=underwriter)
    assert delivery.payload["source"] == "review"
    assert (delivery.payload["decision"], delivery.payload["model_decision"]) == ("decline", "refer")
    assert delivery.payload["decided_by"] == underwriter.pk
    with pytest.raises(DecisionEventError):
        decision_final(score=refer, decision="refer", source="review")
    with pytest.raises(DecisionEventError):
        decision_final(score=refer, decision="approve", source="portal")


def test_a_rolled_back_score_owes_nothing(book):
    endpoint_for(book, "https://example.com/a")
    with pytest.raises(RuntimeError), transaction.atomic():
        new_score(book, "decline")
        raise RuntimeError("the request failed after scoring")
    assert not Score.objects.exists() and not WebhookDelivery.objects.exists()


def test_batch_and_shadow_scores_are_not_events(book):
    endpoint_for(book, "https://example.com/a")
    from scoring.models import BatchRun

    run = BatchRun.objects.create(portfolio=book["portfolio"], model_version=book["version"])
    score = Score.objects.create(portfolio=book["portfolio"], applicant=book["applicant"], run=run,
                                 model_version=book["version"], pd=0.1, score=600, decision="approve",
                                 base_log_odds=-2.0, input_hash="0" * 64)  # fmt: skip
    assert decision_final(score=score, decision="approve", source="model") == []


# --- The API ---------------------------------------------------------------------------------


def test_the_delivery_log_is_permission_filtered_and_redeliver_needs_the_score_grant(book):
    endpoint_for(book, "https://example.com/a")
    webhook_endpoint_create(portfolio=book["other"], url="https://example.com/other", user=book["admin"])
    approve = new_score(book, "approve")
    mine = WebhookDelivery.objects.get(score=approve)
    other_score = Score.objects.create(portfolio=book["other"], model_version=book["version"], pd=0.1, score=600,
                                       decision="approve", base_log_odds=-2.0, input_hash="0" * 64)  # fmt: skip
    other_endpoint = WebhookEndpoint.objects.get(portfolio=book["other"])
    theirs = WebhookDelivery.objects.create(portfolio=book["other"], endpoint=other_endpoint, score=other_score,
                                            payload={}, status="failed")  # fmt: skip
    analyst, auditor = UserFactory(username="wh-analyst"), UserFactory(username="wh-auditor")
    portfolio_access_grant(portfolio=book["portfolio"], grantee=analyst, role="analyst")
    portfolio_access_grant(portfolio=book["portfolio"], grantee=auditor, role="auditor")
    api = APIClient()
    api.force_authenticate(analyst)
    assert [row["id"] for row in api.get("/api/v1/webhook-deliveries/").json()["results"]] == [mine.pk]
    assert api.get(f"/api/v1/webhook-deliveries/{theirs.pk}/").status_code == 404
    assert api.post(f"/api/v1/webhook-deliveries/{theirs.pk}/redeliver/").status_code == 404
    assert api.post(f"/api/v1/webhook-deliveries/{mine.pk}/redeliver/").status_code == 409  # pending
    WebhookDelivery.objects.filter(pk=mine.pk).update(status="failed", first_failed_at=approve.created_at)
    answer = api.post(f"/api/v1/webhook-deliveries/{mine.pk}/redeliver/")
    assert answer.status_code == 200 and answer.json()["status"] == "pending"
    mine.refresh_from_db()
    assert mine.first_failed_at is None and mine.event_id == WebhookDelivery.objects.get(pk=mine.pk).event_id
    assert AuditEvent.objects.filter(action="webhook.redeliver", object_ids=[mine.pk], actor_id=analyst.pk).exists()
    auditor_api = APIClient()
    auditor_api.force_authenticate(auditor)
    assert auditor_api.get(f"/api/v1/webhook-deliveries/{mine.pk}/").status_code == 200
    assert auditor_api.post(f"/api/v1/webhook-deliveries/{mine.pk}/redeliver/").status_code == 403
    with pytest.raises(WebhookForbidden):
        webhook_delivery_redeliver(delivery=theirs, user=auditor)


# --- Delivery by a real worker to a real receiver ---------------------------------------------


@pytest.mark.worker
@pytest.mark.slow
def test_a_final_decision_arrives_signed_with_the_endpoints_secret(committed_book, receiver_factory,
                                                                    celery_worker_factory):  # fmt: skip
    receiver = receiver_factory([200])
    _, secret = endpoint_for(committed_book, receiver.url)
    celery_worker_factory(roles=("default",))
    score = new_score(committed_book, "approve")
    delivery = WebhookDelivery.objects.get(score=score)
    wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "delivered", timeout=60,
             message="the delivery")  # fmt: skip
    (request,) = receiver.requests
    assert verify(secret, request["body"], request["headers"]["X-Risk-Signature"])
    assert not verify("another-secret-of-enough-length", request["body"], request["headers"]["X-Risk-Signature"])
    assert request["headers"]["X-Risk-Event-Id"] == str(delivery.event_id)
    assert json.loads(request["body"]) == delivery.payload
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_status_code, delivery.last_error) == (1, 200, "")


@pytest.mark.worker
@pytest.mark.slow
def test_a_receiver_answering_500_twice_gets_it_on_the_third_attempt_after_growing_delays(
    committed_book, receiver_factory, celery_worker_factory
):
    receiver = receiver_factory([500, 500, 200])
    endpoint_for(committed_book, receiver.url)
    celery_worker_factory(roles=("default",))
    delivery = WebhookDelivery.objects.get(score=new_score(committed_book, "decline"))
    wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "delivered", timeout=60,
             message="the third attempt")  # fmt: skip
    delivery.refresh_from_db()
    assert delivery.attempts == 3 and len(receiver.requests) == 3
    assert [entry["status_code"] for entry in delivery.attempt_log] == [500, 500, 200]
    delays = [entry["next_delay"] for entry in delivery.attempt_log[:2]]
    gaps = [b["at"] - a["at"] for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    print(f"\nscheduled delays {delays}, measured gaps {[round(g, 3) for g in gaps]}")
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and delays[1] > delays[0]  # 2^n s, jittered
    assert all(gap >= delay - 0.05 for gap, delay in zip(gaps, delays, strict=True))
    ids = {r["headers"]["X-Risk-Event-Id"] for r in receiver.requests}
    assert ids == {str(delivery.event_id)}  # one idempotency key for every attempt


@pytest.mark.worker
@pytest.mark.slow
def test_a_receiver_down_past_the_budget_is_failed(committed_book, celery_worker_factory):
    endpoint_for(committed_book, f"http://127.0.0.1:{DOWN_PORT}/hook")
    celery_worker_factory(roles=("default",), env={"WEBHOOK_RETRY_BUDGET_SECONDS": "3"})
    delivery = WebhookDelivery.objects.get(score=new_score(committed_book, "approve"))
    wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).status == "failed", timeout=60,
             message="the delivery to fail")  # fmt: skip
    delivery.refresh_from_db()
    print(f"\nfailed after {delivery.attempts} attempts: {delivery.last_error}")
    assert delivery.attempts >= 2 and delivery.next_attempt_at is None
    assert delivery.last_error.startswith("retry budget of 3 s spent; last: ")
    assert "ConnectionRefusedError" in delivery.last_error and "Traceback" not in delivery.last_error


@pytest.mark.worker
@pytest.mark.slow
def test_rolled_back_and_refer_decisions_send_nothing(committed_book, receiver_factory, celery_worker_factory):
    receiver = receiver_factory([200])
    endpoint_for(committed_book, receiver.url)
    celery_worker_factory(roles=("default",))
    with pytest.raises(RuntimeError), transaction.atomic():
        new_score(committed_book, "approve")
        raise RuntimeError("rolled back")
    new_score(committed_book, "refer")
    marker = new_score(committed_book, "decline")
    wait_for(lambda: len(receiver.requests) >= 1, timeout=60, message="the marker decision")
    time.sleep(2)  # anything else sent would have arrived by now
    assert [json.loads(r["body"])["score_id"] for r in receiver.requests] == [marker.pk]
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.worker
@pytest.mark.slow
def test_the_supervisor_resends_a_pending_delivery_whose_message_was_lost(
    committed_book, receiver_factory, celery_worker_factory
):
    from datetime import timedelta

    from django.utils import timezone

    receiver = receiver_factory([200])
    endpoint, _ = endpoint_for(committed_book, receiver.url)
    score = Score.objects.create(portfolio=committed_book["portfolio"], applicant=committed_book["applicant"],
                                 model_version=committed_book["version"], pd=0.1, score=610, decision="approve",
                                 base_log_odds=-2.0, input_hash="0" * 64)  # fmt: skip
    # An outbox row whose message never reached the broker.
    lost = WebhookDelivery.objects.create(portfolio=committed_book["portfolio"], endpoint=endpoint, score=score,
                                          payload={"score_id": score.pk},
                                          next_attempt_at=timezone.now() - timedelta(seconds=10))  # fmt: skip
    celery_worker_factory(roles=("default",), env={"WEBHOOK_LOST_AFTER_SECONDS": "2"})
    wait_for(lambda: WebhookDelivery.objects.get(pk=lost.pk).status == "delivered", timeout=90,
             message="the supervisor's resend")  # fmt: skip
    (event,) = AuditEvent.objects.filter(action="supervisor.webhook_resend")
    assert event.object_ids == [lost.pk] and event.portfolio_id == committed_book["portfolio"].pk
    assert len(receiver.requests) == 1
    assert supervise()["webhook_lost"] == 0  # delivered: nothing left to repair


def test_socket_in_the_down_port_is_closed():
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", DOWN_PORT)) != 0


def test_rotating_the_pii_keys_re_encrypts_webhook_secrets(book, settings):
    from cryptography.fernet import Fernet

    from scoring.services.webhooks import webhook_secret, webhook_secrets_rotate_keys

    endpoint, secret = endpoint_for(book, "https://example.com/a")
    new_key = Fernet.generate_key().decode()
    settings.PII_ENCRYPTION_KEYS = [new_key, *settings.PII_ENCRYPTION_KEYS]
    assert webhook_secrets_rotate_keys() == 1
    settings.PII_ENCRYPTION_KEYS = [new_key]  # the old key dropped
    assert webhook_secret(WebhookEndpoint.objects.get(pk=endpoint.pk)) == secret


def test_an_underwriters_decision_of_a_refer_is_announced_by_the_review_service(book):
    from scoring.services.reviews import review_decide, review_take

    endpoint_for(book, "https://example.com/a")
    underwriter = UserFactory(username="webhook-uw")
    portfolio_access_grant(portfolio=book["portfolio"], grantee=underwriter, role="underwriter")
    refer = new_score(book, "refer", points=545)
    assert not WebhookDelivery.objects.exists()
    review_take(score=refer, user=underwriter)
    assert not WebhookDelivery.objects.exists()  # taken, not decided
    review_decide(score=refer, user=underwriter, decision="approve",
                  reason="Income verified with three payslips; the new job is permanent.")  # fmt: skip
    (delivery,) = WebhookDelivery.objects.all()
    assert (delivery.payload["source"], delivery.payload["decision"], delivery.payload["model_decision"]) == (
        "review", "approve", "refer",
    )  # fmt: skip
    assert delivery.payload["decided_by"] == underwriter.pk
