"""Webhook endpoints and the delivery of decision events to them.

Endpoints (``WebhookEndpoint``) are configured per portfolio by administrators, in
the admin or in code, always through the ``webhook_endpoint_*`` functions here:
the URL is checked (http/https, no credentials in it, no link-local or unspecified
address unless ``WEBHOOK_ALLOW_LINK_LOCAL``), the signing secret is kept encrypted
under the PII keys and returned in clear only by the call that creates or rotates
it, and every change is audited (``webhook.*``, before and after, never the secret).

Delivery: ``scoring.services.decision_events`` writes one ``WebhookDelivery`` per
event and active endpoint, in the decision's transaction; the task
``scoring.tasks.webhook_deliver`` calls :func:`webhook_delivery_attempt` for it. One
attempt is a POST of the payload's JSON with

    X-Risk-Event-Id: <event uuid>          (the idempotency key: the same on every retry)
    X-Risk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

A 2xx answer delivers it; anything else (an error status, a refused connection, a
timeout) raises :class:`WebhookAttemptFailed`, and the task retries with the tasks'
backoff helper until ``WEBHOOK_RETRY_BUDGET_SECONDS`` after the first failure, then
marks the delivery failed. Redirects are not followed (a 3xx is a failure): a
receiver cannot bounce the request to an address the URL check would refuse.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from scoring.audit import audit_record
from scoring.models import Portfolio, WebhookDelivery, WebhookEndpoint
from scoring.permissions import has_portfolio_perm
from scoring.roles import SCORE
from scoring.services.errors import ConflictError, ForbiddenError, ServiceError, public_error_text

SIGNATURE_HEADER = "X-Risk-Signature"
EVENT_ID_HEADER = "X-Risk-Event-Id"
USER_AGENT = "riskapp-webhooks/1"
# What of the receiver's answer is kept for the log: its status line, never its body.
_MAX_ERROR = WebhookDelivery._meta.get_field("last_error").max_length or 500
ATTEMPT_LOG_SIZE = 20
# The cloud metadata services (AWS, GCP, Azure: 169.254.169.254; AWS over IPv6).
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}


class WebhookError(ServiceError):
    """The endpoint's configuration is refused (a bad URL, an unknown portfolio)."""

    code = "invalid"
    status = 400


class WebhookForbidden(ForbiddenError):
    """Only administrators manage webhook endpoints; redelivery needs the score grant."""


class WebhookConflict(ConflictError):
    """The delivery's state forbids the request (it is already pending)."""


class WebhookAttemptFailed(Exception):
    """One attempt did not deliver (an error status, no connection, a timeout): the
    task retries it within the budget, counted from ``first_failed_at`` (epoch seconds)."""

    def __init__(self, message: str, *, first_failed_at: float):
        super().__init__(message)
        self.first_failed_at = first_failed_at


# --- Addresses --------------------------------------------------------------------
def _address_refused(address: str) -> str | None:
    """Why a receiver at this IP address is refused, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_unspecified or ip.is_multicast:
        return f"{ip} is not a receiver's address"
    if settings.WEBHOOK_ALLOW_LINK_LOCAL:
        return None
    if ip in _METADATA or ip.is_link_local:
        return f"{ip} is link-local (the cloud metadata service lives there); set WEBHOOK_ALLOW_LINK_LOCAL to allow it"
    return None


def _resolve(host: str, port: int) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def webhook_url_check(url: str) -> str:
    """The URL, stripped, if a receiver may live there; ``WebhookError`` says why not.
    A name that does not resolve now is accepted (it is checked again at each send)."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise WebhookError(f"Not a URL: {error}.") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookError("A webhook URL starts with http:// or https://.")
    if not parts.hostname:
        raise WebhookError("A webhook URL names a host.")
    if parts.username or parts.password:
        raise WebhookError("Credentials do not go in the URL (it is shown and audited); the signature authenticates.")
    if parts.fragment:
        raise WebhookError("A webhook URL has no #fragment.")
    try:
        addresses = [str(ipaddress.ip_address(parts.hostname))]
    except ValueError:
        try:
            addresses = _resolve(parts.hostname, port or (443 if parts.scheme == "https" else 80))
        except OSError:
            addresses = []
    for address in addresses:
        reason = _address_refused(address)
        if reason:
            raise WebhookError(f"Refused receiver address: {reason}.")
    return url


# --- Secrets ------------------------------------------------------------------------
def _secret_encrypt(secret: str) -> str:
    from scoring.services.pii import pii_encrypt

    return pii_encrypt({"webhook_secret": secret})[0]


def webhook_secret(endpoint: WebhookEndpoint) -> str:
    """The endpoint's signing secret in clear: for signing only, never for showing."""
    from scoring.services.pii import pii_decrypt

    return pii_decrypt(endpoint.secret_ciphertext)["webhook_secret"]


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Risk-Signature`` value: ``t=<timestamp>,v1=<hex HMAC-SHA256(secret, "t.body")>``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def webhook_secrets_rotate_keys() -> int:
    """Re-encrypt every endpoint's secret under the newest PII key (``rotate_pii_keys``)."""
    from scoring.services.pii import pii_decrypt

    done = 0
    for endpoint in WebhookEndpoint.objects.only("pk", "secret_ciphertext"):
        secret = pii_decrypt(endpoint.secret_ciphertext)["webhook_secret"]
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret_ciphertext=_secret_encrypt(secret))
        done += 1
    return done


# --- Endpoints ------------------------------------------------------------------------
def webhook_may_manage(user) -> bool:
    """Administrators (the role's model permission) and superusers manage endpoints."""
    return bool(user is not None and user.is_active and user.has_perm("scoring.change_webhookendpoint"))


def _endpoint_view(endpoint: WebhookEndpoint) -> dict:
    return {"url": endpoint.url, "active": endpoint.active, "description": endpoint.description}


def _managed(user, *, portfolio_id: int, action: str, object_ids: list[int]) -> None:
    if not webhook_may_manage(user):
        audit_record(action=action, actor=user, portfolio_id=portfolio_id, object_type="webhookendpoint",
                     object_ids=object_ids, outcome="denied", details={"reason": "not an administrator"})  # fmt: skip
        raise WebhookForbidden("Only administrators manage webhook endpoints.")


def webhook_endpoint_create(
    *, portfolio: Portfolio, url: str, user, active: bool = True, description: str = "", secret: str | None = None
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint of ``portfolio`` and its signing secret, returned here only
    (generated unless given: at least 24 characters)."""
    _managed(user, portfolio_id=portfolio.pk, action="webhook.endpoint_create", object_ids=[])
    if secret is not None and len(secret) < 24:
        raise WebhookError("A webhook secret has at least 24 characters.")
    secret = secret or secrets.token_urlsafe(32)
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            portfolio=portfolio, url=webhook_url_check(url), active=active, description=description.strip(),
            secret_ciphertext=_secret_encrypt(secret), created_by=user,
        )  # fmt: skip
        audit_record(action="webhook.endpoint_create", actor=user, portfolio_id=portfolio.pk,
                     object_type="webhookendpoint", object_ids=[endpoint.pk],
                     details={"before": None, "after": _endpoint_view(endpoint)})  # fmt: skip
    return endpoint, secret


def webhook_endpoint_update(
    *,
    endpoint: WebhookEndpoint,
    user,
    url: str | None = None,
    active: bool | None = None,
    description: str | None = None,
) -> WebhookEndpoint:
    """Change an endpoint's URL, state or description (audited with before/after)."""
    _managed(user, portfolio_id=endpoint.portfolio_id, action="webhook.endpoint_update", object_ids=[endpoint.pk])
    with transaction.atomic():
        saved = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        before = _endpoint_view(saved)
        if url is not None:
            saved.url = webhook_url_check(url)
        if active is not None:
            saved.active = active
        if description is not None:
            saved.description = description.strip()
        after = _endpoint_view(saved)
        if after != before:
            saved.save(update_fields=["url", "active", "description", "updated_at"])
            audit_record(action="webhook.endpoint_update", actor=user, portfolio_id=saved.portfolio_id,
                         object_type="webhookendpoint", object_ids=[saved.pk],
                         details={"before": before, "after": after})  # fmt: skip
    return saved


def webhook_endpoint_secret_rotate(*, endpoint: WebhookEndpoint, user) -> str:
    """A new signing secret for the endpoint, returned here only; deliveries sent from
    now on are signed with it."""
    _managed(user, portfolio_id=endpoint.portfolio_id, action="webhook.secret_rotate", object_ids=[endpoint.pk])
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret_ciphertext=_secret_encrypt(secret),
                                                              updated_at=timezone.now())  # fmt: skip
        audit_record(action="webhook.secret_rotate", actor=user, portfolio_id=endpoint.portfolio_id,
                     object_type="webhookendpoint", object_ids=[endpoint.pk], details={"url": endpoint.url})  # fmt: skip
    return secret


# --- Deliveries -----------------------------------------------------------------------
def webhook_deliveries_enqueue(ids: list[int]) -> None:
    """Send the delivery tasks once the current transaction commits (at once outside one)."""
    from scoring.tasks import webhook_deliver

    def send() -> None:
        for delivery_id in ids:
            webhook_deliver.delay(delivery_id)

    transaction.on_commit(send)


def webhook_body(payload: dict) -> bytes:
    """The exact bytes POSTed (and signed)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    """A connection to the receiver pinned to an address checked here (so a name cannot
    resolve to a refused address between the check and the connect), and the path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = _resolve(host, port)
    for address in addresses:
        reason = _address_refused(address)
        if reason:
            raise _Refused(f"refused receiver address: {reason}")
    connect_timeout = settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS
    read_timeout = settings.WEBHOOK_READ_TIMEOUT_SECONDS

    def create_connection(address, timeout=None, source_address=None):
        sock = socket.create_connection((addresses[0], port), connect_timeout, source_address)
        sock.settimeout(read_timeout)  # after connecting: each read waits at most this
        return sock

    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(host, port, timeout=connect_timeout)
    conn._create_connection = create_connection  # type: ignore[attr-defined]  # TLS still checks the host name
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return conn, path


class _Refused(Exception):
    """The receiver's address is refused: no attempt is made, and none will be."""


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """(status code, error text) of one POST; the status is None without an answer."""
    try:
        conn, path = _connection(url)
    except _Refused:
        raise
    except OSError as error:
        return None, f"cannot resolve the receiver: {error}"[:_MAX_ERROR]
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(65536)  # a bounded read: the body is not kept
        status = response.status
        return status, "" if 200 <= status < 300 else f"HTTP {status} {response.reason}"[:_MAX_ERROR]
    except TimeoutError:
        return None, "timed out"
    except (OSError, http.client.HTTPException) as error:
        return None, f"{type(error).__name__}: {public_error_text(str(error))}"[:_MAX_ERROR]
    finally:
        conn.close()


@dataclass
class _Claimed:
    delivery: WebhookDelivery
    at: datetime


def _claim(delivery_id: int) -> _Claimed | None:
    """The delivery, if it is pending and due, claimed by moving its due time past this
    attempt's timeouts; None when it is gone, done, not due or claimed by another worker."""
    now = timezone.now()
    lease = settings.WEBHOOK_CONNECT_TIMEOUT_SECONDS + settings.WEBHOOK_READ_TIMEOUT_SECONDS + 30
    claimed = (
        WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.STATUS_PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + timedelta(seconds=1)))
        .update(next_attempt_at=now + timedelta(seconds=lease), updated_at=now)
    )
    if not claimed:
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    return _Claimed(delivery=delivery, at=now)


def _log(delivery: WebhookDelivery, entry: dict) -> list:
    return [*delivery.attempt_log, entry][-ATTEMPT_LOG_SIZE:]


def webhook_delivery_attempt(*, delivery_id: int) -> str:
    """One attempt at a delivery; what happened, in words. Raises ``WebhookAttemptFailed``
    when the receiver did not take it (the task retries)."""
    claim = _claim(delivery_id)
    if claim is None:
        return "skipped: gone, done, not due or claimed by another worker"
    delivery, now = claim.delivery, claim.at
    endpoint = delivery.endpoint
    if not endpoint.active:
        _finish(delivery, status=WebhookDelivery.STATUS_FAILED, code=None, error="the endpoint is inactive", now=now)
        return "failed: endpoint inactive"
    body = webhook_body(delivery.payload)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: str(delivery.event_id),
        SIGNATURE_HEADER: webhook_signature(webhook_secret(endpoint), timestamp, body),
    }
    try:
        code, error = _post(endpoint.url, body, headers)
    except _Refused as refused:
        _finish(delivery, status=WebhookDelivery.STATUS_FAILED, code=None, error=str(refused), now=now)
        return "failed: refused address"
    if code is not None and 200 <= code < 300:
        _finish(delivery, status=WebhookDelivery.STATUS_DELIVERED, code=code, error="", now=now)
        return f"delivered: HTTP {code}"
    first_failed_at = delivery.first_failed_at or now
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=delivery.attempts + 1, last_status_code=code, last_error=error, first_failed_at=first_failed_at,
        attempt_log=_log(delivery, {"at": now.isoformat(), "status_code": code, "error": error}),
        updated_at=timezone.now(),
    )  # fmt: skip
    raise WebhookAttemptFailed(error, first_failed_at=first_failed_at.timestamp())


def _finish(delivery: WebhookDelivery, *, status: str, code: int | None, error: str, now: datetime) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status, attempts=delivery.attempts + 1, last_status_code=code, last_error=error,
        next_attempt_at=None, delivered_at=timezone.now() if status == WebhookDelivery.STATUS_DELIVERED else None,
        attempt_log=_log(delivery, {"at": now.isoformat(), "status_code": code, "error": error}),
        updated_at=timezone.now(),
    )  # fmt: skip


def webhook_delivery_retry_scheduled(*, delivery_id: int, delay: float) -> None:
    """Record when the retry the task is about to send is due (and its delay, in the log)."""
    delivery = WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.STATUS_PENDING).first()
    if delivery is None:
        return
    log = list(delivery.attempt_log)
    if log:
        log[-1] = {**log[-1], "next_delay": round(delay, 3)}
    WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.STATUS_PENDING).update(
        next_attempt_at=timezone.now() + timedelta(seconds=delay), attempt_log=log, updated_at=timezone.now()
    )


def webhook_delivery_fail(*, delivery_id: int, error: str) -> None:
    """The retry budget is spent: the delivery is failed (and may be redelivered)."""
    budget = settings.WEBHOOK_RETRY_BUDGET_SECONDS
    WebhookDelivery.objects.filter(pk=delivery_id, status=WebhookDelivery.STATUS_PENDING).update(
        status=WebhookDelivery.STATUS_FAILED, next_attempt_at=None, updated_at=timezone.now(),
        last_error=f"retry budget of {budget} s spent; last: {error}"[:_MAX_ERROR],
    )  # fmt: skip


def webhook_may_redeliver(user, delivery: WebhookDelivery) -> bool:
    """Who decides in the portfolio (the score grant) or manages its webhooks."""
    return has_portfolio_perm(user, delivery.portfolio_id, SCORE) or webhook_may_manage(user)


def webhook_delivery_redeliver(*, delivery: WebhookDelivery, user) -> WebhookDelivery:
    """Send a delivered or failed delivery again, with the same event id (the receiver
    can tell it has seen it) and a fresh retry budget; audited."""
    if not webhook_may_redeliver(user, delivery):
        audit_record(action="webhook.redeliver", actor=user, portfolio_id=delivery.portfolio_id,
                     object_type="webhookdelivery", object_ids=[delivery.pk], outcome="denied",
                     details={"reason": "no score grant"})  # fmt: skip
        raise WebhookForbidden("Redelivering needs the score grant on the portfolio.")
    with transaction.atomic():
        pending = WebhookDelivery.objects.filter(pk=delivery.pk).exclude(status=WebhookDelivery.STATUS_PENDING)
        updated = pending.update(status=WebhookDelivery.STATUS_PENDING, next_attempt_at=timezone.now(),
                                 first_failed_at=None, updated_at=timezone.now())  # fmt: skip
        if not updated:
            raise WebhookConflict("This delivery is pending already: it is sent (or retried) by itself.")
        audit_record(action="webhook.redeliver", actor=user, portfolio_id=delivery.portfolio_id,
                     object_type="webhookdelivery", object_ids=[delivery.pk],
                     details={"event_id": str(delivery.event_id), "was": delivery.status})  # fmt: skip
        webhook_deliveries_enqueue([delivery.pk])
    delivery.refresh_from_db()
    return delivery
