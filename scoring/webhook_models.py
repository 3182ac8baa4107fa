"""The ORM models of decision events (webhooks to an origination system).

Kept apart from ``scoring/models.py``, which passed the house limit of about 800
lines; that module imports these, so ``from scoring.models import WebhookEndpoint``
works like any other model.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class WebhookEndpoint(models.Model):
    """WebhookEndpoint: where a portfolio's final decisions are announced (an
    origination system's receiver). Every final decision of the portfolio becomes one
    signed POST to each active endpoint (``scoring.services.decision_events``).

    ``secret_ciphertext`` is the Fernet token of the signing secret under the PII keys
    (``PII_ENCRYPTION_KEYS``, rotated with them); the secret in clear is returned once,
    by the service that creates or rotates it, and never shown again. Managed by
    administrators through ``scoring.services.webhooks`` (admin and code alike), every
    change audited."""

    portfolio = models.ForeignKey("scoring.Portfolio", on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500, help_text="http(s) address of the receiver; final decisions are POSTed here")
    active = models.BooleanField(default=True, help_text="inactive endpoints are sent nothing")
    description = models.CharField(max_length=200, blank=True)
    secret_ciphertext = models.TextField(editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["portfolio_id", "pk"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return f"{self.url} ({'active' if self.active else 'inactive'})"


class WebhookDelivery(models.Model):
    """WebhookDelivery: one decision event owed to one endpoint (an outbox row). It is
    written in the transaction of the decision, so a decision that rolls back owes
    nothing; a task on the ``default`` queue sends it, retrying with backoff until
    a 2xx (delivered) or the retry budget is spent (failed). ``event_id`` is the
    idempotency key the receiver sees (``X-Risk-Event-Id``): the same for a retry, a
    redelivery and every endpoint of one event. The payload carries no personal data
    beyond the applicant's external id."""

    STATUS_PENDING = "pending"
    STATUS_DELIVERED = "delivered"
    STATUS_FAILED = "failed"
    STATUS_CHOICES = [(STATUS_PENDING, "Pending"), (STATUS_DELIVERED, "Delivered"), (STATUS_FAILED, "Failed")]

    event_id = models.UUIDField(default=uuid.uuid4, editable=False)
    portfolio = models.ForeignKey("scoring.Portfolio", on_delete=models.CASCADE, related_name="+")
    # RESTRICT: an endpoint with a delivery log is deactivated, not deleted; a portfolio's
    # deletion still takes both.
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.RESTRICT, related_name="deliveries")
    score = models.ForeignKey("scoring.Score", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default=STATUS_PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Each attempt: {at, status_code, error, next_delay}; the last WEBHOOK_ATTEMPT_LOG_SIZE kept.
    attempt_log = models.JSONField(default=list, blank=True)
    # Due time of the next attempt; a claim moves it past the attempt's timeouts, so a
    # second message for the same delivery finds it not due ("another worker got there first").
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The retry budget (WEBHOOK_RETRY_BUDGET_SECONDS) runs from here: kept on the row, so
    # a message sent again by the supervisor keeps counting the same outage.
    first_failed_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["portfolio", "-created_at"]),
            # The supervisor's look for pending deliveries whose message was lost.
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"), name="webhook_pending_due"),
        ]
        constraints = [models.UniqueConstraint(fields=["event_id", "endpoint"], name="uniq_webhook_event_endpoint")]

    def __str__(self) -> str:
        return f"event {self.event_id} to endpoint {self.endpoint_id}: {self.status}"
