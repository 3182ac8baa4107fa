"""The webhook delivery log over the API: the decision events sent to each portfolio's
endpoints, read through the one gate (``ScopedViewSet``), and a redeliver action. The
endpoints themselves (and their secrets) are managed in the admin, never here."""

from __future__ import annotations

import django_filters as filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from scoring.api import examples as ex
from scoring.api.errors import ErrorResponseSerializer, error_body
from scoring.api.views import ScopedViewSet
from scoring.filters import IdFilter, _CreatedRange
from scoring.models import WebhookDelivery
from scoring.roles import SCORE
from scoring.services.webhooks import webhook_delivery_redeliver

DELIVERY = {
    "id": 41,
    "event_id": "0b7c5a8e-3f43-4c1e-9a51-6f2d0f9b8c11",
    "portfolio": 1,
    "endpoint": 2,
    "score": 1207,
    "payload": {
        "event": "decision.final",
        "event_id": "0b7c5a8e-3f43-4c1e-9a51-6f2d0f9b8c11",
        "score_id": 1207,
        "applicant_external_id": "SYN00004711",
        "portfolio_id": 1,
        "decision": "approve",
        "model_decision": "approve",
        "pd": 0.0312,
        "points": 612.4,
        "policy_version": 3,
        "model_version": 7,
        "source": "model",
        "decided_by": None,
        "decided_at": ex.CREATED,
    },
    "status": "delivered",
    "attempts": 3,
    "last_status_code": 200,
    "last_error": "",
    "attempt_log": [
        {"at": "2026-11-03T09:41:27.9Z", "status_code": 500, "error": "HTTP 500 Internal Server Error",
         "next_delay": 0.8},
        {"at": "2026-11-03T09:41:28.8Z", "status_code": 500, "error": "HTTP 500 Internal Server Error",
         "next_delay": 1.7},
        {"at": "2026-11-03T09:41:30.6Z", "status_code": 200, "error": ""},
    ],
    "next_attempt_at": None,
    "delivered_at": "2026-11-03T09:41:30.6Z",
    "created_at": ex.CREATED,
    "updated_at": "2026-11-03T09:41:30.6Z",
}  # fmt: skip
REDELIVERED = {**DELIVERY, "status": "pending", "next_attempt_at": "2026-11-04T08:00:00Z", "delivered_at": None}


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "event_id", "portfolio", "endpoint", "score", "payload", "status", "attempts",
                  "last_status_code", "last_error", "attempt_log", "next_attempt_at", "delivered_at", "created_at",
                  "updated_at"]  # fmt: skip
        read_only_fields = fields


class WebhookDeliveryFilter(_CreatedRange):
    portfolio = IdFilter(field_name="portfolio_id")
    endpoint = IdFilter(field_name="endpoint_id")
    score = IdFilter(field_name="score_id")
    status = filters.ChoiceFilter(choices=WebhookDelivery.STATUS_CHOICES)
    event_id = filters.UUIDFilter(field_name="event_id")

    class Meta:
        model = WebhookDelivery
        fields = ["portfolio", "endpoint", "score", "status", "event_id"]


@extend_schema(tags=["Scores"])
@extend_schema_view(
    list=extend_schema(
        summary="List the decision events sent to your portfolios' webhooks, newest first",
        description="One row per final decision (approve or decline, by the model in real time or by an "
        "underwriter) and endpoint: the payload POSTed, how the receiver answered, when it is tried next. "
        "Batch rescoring and refer decisions send nothing.",
        examples=[ex.response("Delivered on the third attempt", DELIVERY)],
    ),
    retrieve=extend_schema(summary="Get one webhook delivery", examples=[ex.response("Delivery", DELIVERY)]),
)
class WebhookDeliveryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    queryset = WebhookDelivery.objects.order_by("-created_at", "-id")
    serializer_class = WebhookDeliverySerializer
    filterset_class = WebhookDeliveryFilter
    required_portfolio_perms = {"redeliver": SCORE}

    @extend_schema(
        summary="Send a delivered or failed decision event again (same event id)",
        description="Queues the delivery again with a fresh retry budget; the receiver sees the same "
        "`X-Risk-Event-Id` and can ignore a duplicate. Needs the score grant; 409 while it is pending.",
        request=None,
        responses={
            200: WebhookDeliverySerializer,
            409: OpenApiResponse(
                ErrorResponseSerializer,
                description="The delivery is pending already.",
                examples=[
                    ex.response(
                        "Conflict",
                        error_body("conflict", "This delivery is pending already: it is sent (or retried) by itself."),
                        status=409,
                    )
                ],
            ),
        },
        examples=[ex.response("Queued again", REDELIVERED)],
    )
    @action(detail=True, methods=["post"], filterset_class=None)
    def redeliver(self, request, pk=None):
        delivery = webhook_delivery_redeliver(delivery=self.get_object(), user=request.user)
        return Response(WebhookDeliverySerializer(delivery).data)
