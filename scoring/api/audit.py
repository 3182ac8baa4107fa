"""The audit log over the API: a read-only, filtered list and a CSV export, for
those who may read the log (``scoring.selectors.audit_may_read``). Reading the log
is itself audited (``audit.view``, ``audit.export``)."""

from __future__ import annotations

import csv
import json

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action

from scoring.api import examples as ex
from scoring.audit import audit_record
from scoring.models import AuditEvent
from scoring.selectors import audit_event_list, audit_may_read
from scoring.services.exports import escape_cell

EXPORT_COLUMNS = ("id", "seq", "occurred_at", "actor_id", "actor_username", "action", "outcome", "portfolio_id",
                  "object_type", "object_ids", "details", "request_id", "ip", "prev_hash", "hash")  # fmt: skip


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = list(EXPORT_COLUMNS)
        read_only_fields = fields


class AuditFilterSerializer(serializers.Serializer):
    """The query parameters of the list and the export."""

    action = serializers.CharField(required=False, max_length=50, help_text='exact, or a family ending in "."')
    actor = serializers.CharField(required=False, max_length=150, help_text="user name")
    actor_id = serializers.IntegerField(required=False, min_value=1)
    portfolio = serializers.IntegerField(required=False, min_value=1, help_text="portfolio id")
    outcome = serializers.ChoiceField(required=False, choices=["success", "denied", "failure"])
    object_type = serializers.CharField(required=False, max_length=50)
    since = serializers.DateField(required=False, help_text="from this day (inclusive)")
    until = serializers.DateField(required=False, help_text="to this day (inclusive)")


class MayReadAuditLog(permissions.BasePermission):
    message = "Only auditors may read the audit log."

    def has_permission(self, request, view) -> bool:
        return audit_may_read(request.user)


class _Echo:
    def write(self, value: str) -> str:
        return value


@extend_schema(tags=["Audit"])
@extend_schema_view(
    list=extend_schema(
        summary="List audit events (auditors)",
        parameters=[AuditFilterSerializer],
        examples=[ex.response("Event", ex.AUDIT_EVENT)],
    ),
    retrieve=extend_schema(summary="Get one audit event (auditors)", examples=[ex.response("Event", ex.AUDIT_EVENT)]),
)
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The append-only audit log, newest first."""

    serializer_class = AuditEventSerializer
    permission_classes = [permissions.IsAuthenticated, MayReadAuditLog]
    filter_backends: list = []  # filtering is the selector's (validated by AuditFilterSerializer)

    def _filters(self) -> dict:
        params = AuditFilterSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return dict(params.validated_data)

    def get_queryset(self):
        if self.action == "retrieve":
            return audit_event_list(user=self.request.user)
        return audit_event_list(user=self.request.user, filters=self._filters())

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit_record(
            action="audit.view", request=request, object_type="audit_event",
            details={"filters": {k: str(v) for k, v in self._filters().items()}, "rows": response.data.get("count")},
        )  # fmt: skip
        return response

    @extend_schema(
        summary="Export audit events as CSV (auditors)",
        parameters=[AuditFilterSerializer],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY, description="CSV, one event a line")},
        examples=[OpenApiExample("CSV", value=ex.AUDIT_CSV, media_type="text/csv", response_only=True)],
    )
    @action(detail=False, methods=["get"])
    def export(self, request):
        filters = self._filters()
        events = self.get_queryset()
        writer = csv.writer(_Echo())

        def lines():
            rows = 0
            try:
                yield writer.writerow(EXPORT_COLUMNS)
                for event in events.iterator(chunk_size=2000):
                    values = [getattr(event, c) for c in EXPORT_COLUMNS]
                    values = [json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for v in values]
                    yield writer.writerow([escape_cell(v) for v in values])
                    rows += 1
            finally:
                audit_record(
                    action="audit.export", actor=request.user, request=request, object_type="audit_event",
                    details={"filters": {k: str(v) for k, v in filters.items()}, "rows": rows, "format": "csv"},
                )  # fmt: skip

        response = StreamingHttpResponse(lines(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
        return response
