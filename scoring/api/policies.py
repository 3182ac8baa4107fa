"""The credit policy over the API: a portfolio's versions, proposing one, its impact,
and approving or rejecting a proposal (``scoring.services.policy`` holds every rule:
who may propose, four eyes, a stale proposal).

Reading versions needs the view grant; proposing and deciding need the policy grant
(credit risk officers). A refusal of the service is answered in the API's error format
(403 four eyes, 409 already decided or stale, 400 a policy that is not valid)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from scoring.api import examples as ex
from scoring.api.errors import ErrorResponseSerializer, error_body
from scoring.api.views import ScopedViewSet
from scoring.models import PolicyVersion, Portfolio
from scoring.roles import POLICY
from scoring.services.policy import (
    CUTOFF_FIELDS,
    RULE_ACTIONS,
    SCALE_FIELDS,
    policy_approve,
    policy_changes,
    policy_impact,
    policy_propose,
    policy_reject,
    policy_state,
)
from scoring.services.registry import REASON_MAX


class RuleSerializer(serializers.Serializer):
    """One row of the strategy decision table."""

    code = serializers.CharField(max_length=40, help_text="the rule's reason code, unique in the table")
    action = serializers.ChoiceField(choices=RULE_ACTIONS, help_text="knockout, refer or approve")
    text = serializers.CharField(max_length=500, help_text="the reason a notice reads")
    conditions = serializers.DictField(
        child=serializers.CharField(max_length=200),
        help_text="input (a feature, pd, score or history.*) → zen unary expression (`> 0.6`, `[18..65]`, "
        '`"rent"`); the row fires when all hold',
    )


class PolicyVersionSerializer(serializers.ModelSerializer):
    """One version of a portfolio's policy: its content and its review."""

    state = serializers.SerializerMethodField(help_text="proposed, approved (in force), rejected or superseded")
    in_force = serializers.SerializerMethodField()
    rules = RuleSerializer(many=True)
    reason_catalogue_size = serializers.SerializerMethodField()
    proposed_by = serializers.CharField(source="proposed_by.username", allow_null=True, default=None)
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)
    changes = serializers.SerializerMethodField(help_text="field → {before, after} against `based_on`")

    class Meta:
        model = PolicyVersion
        fields = ["id", "portfolio", "version", "status", "state", "in_force", "based_on", *SCALE_FIELDS,
                  *CUTOFF_FIELDS, "rules", "reason_catalogue_size", "comment", "proposed_by", "proposed_at",
                  "decided_by", "decided_at", "decision_reason", "changes"]  # fmt: skip
        read_only_fields = fields

    def get_state(self, row: PolicyVersion) -> str:
        return policy_state(row, in_force_id=row.portfolio.policy_version_id)

    def get_in_force(self, row: PolicyVersion) -> bool:
        return row.pk == row.portfolio.policy_version_id

    def get_reason_catalogue_size(self, row: PolicyVersion) -> int:
        return len(row.reason_catalogue or {})

    @extend_schema_field(serializers.DictField())
    def get_changes(self, row: PolicyVersion) -> dict:
        return policy_changes(policy_version=row)


class PolicyProposeSerializer(serializers.Serializer):
    """The fields to change (any of them; ``rules`` replaces the whole table), and why."""

    base_score = serializers.FloatField(required=False)
    base_odds = serializers.FloatField(required=False)
    pdo = serializers.FloatField(required=False)
    approve_min_score = serializers.FloatField(required=False)
    decline_below_score = serializers.FloatField(required=False)
    rules = RuleSerializer(many=True, required=False, help_text="the whole decision table")
    reason_catalogue = serializers.DictField(
        child=serializers.DictField(), required=False, help_text="reason key → {code, text, group} to replace"
    )
    comment = serializers.CharField(max_length=REASON_MAX, required=False, allow_blank=True, default="")


class PolicyDecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=REASON_MAX, help_text="why (kept in the audit event)")


class ImpactSideSerializer(serializers.Serializer):
    policy_version = serializers.IntegerField()
    approval_rate = serializers.FloatField()
    refer_rate = serializers.FloatField()
    decline_rate = serializers.FloatField()
    approved_bad_rate = serializers.FloatField(allow_null=True, help_text="observed, among approved with an outcome")
    approved_with_outcome = serializers.IntegerField()


class PolicyImpactSerializer(serializers.Serializer):
    run = serializers.IntegerField(allow_null=True, help_text="the last finished batch run measured on")
    rows = serializers.IntegerField()
    old = ImpactSideSerializer(allow_null=True, help_text="the version this one was proposed on")
    new = ImpactSideSerializer(allow_null=True, help_text="this version")


def _error(name: str, status_code: int, code: str, message: str) -> OpenApiResponse:
    return OpenApiResponse(
        ErrorResponseSerializer,
        description=message,
        examples=[ex.response(name, error_body(code, message), status=status_code)],
    )


FOUR_EYES = _error("Four eyes", 403, "policy_forbidden", "Four eyes: a policy is decided by a second person, never its proposer.")  # fmt: skip
DECIDED = _error("Decided already", 409, "policy_conflict", "Policy v3 is approved already.")
INVALID = _error("Not valid", 400, "invalid_policy", "Rule 1 (KO01): the condition on debt_to_income ('>> 0.6') does not parse.")  # fmt: skip


def _versions(portfolio_id: int):
    return PolicyVersion.objects.filter(portfolio_id=portfolio_id).select_related(
        "portfolio", "proposed_by", "decided_by", "based_on"
    )


class PortfolioPolicyViewSet(ScopedViewSet):
    """``/portfolios/{id}/policies/``: the versions of a portfolio's policy, and proposing one."""

    queryset = Portfolio.objects.order_by("name")
    portfolio_field = "id"
    required_portfolio_perms = {"propose": POLICY}
    serializer_class = PolicyVersionSerializer

    @extend_schema(
        tags=["Policy"],
        operation_id="portfolios_policies_list",
        summary="List the versions of a portfolio's credit policy, newest first",
        description="Every version with its status (`state` says `superseded` for an approved version no longer "
        "in force), who proposed and decided it and when, its cutoffs, scale and strategy rules, and its changes "
        "against the version it was proposed on. Needs the view grant.",
        responses={200: PolicyVersionSerializer(many=True)},
        examples=[ex.response("Versions", [ex.POLICY_VERSION])],
    )
    def versions(self, request, pk=None):
        portfolio = self.get_object()
        page = self.paginate_queryset(_versions(portfolio.pk).order_by("-version"))
        return self.get_paginated_response(PolicyVersionSerializer(page, many=True).data)

    @extend_schema(
        tags=["Policy"],
        operation_id="portfolios_policies_create",
        summary="Propose a policy change (cutoffs, points scale, strategy rules, reason texts)",
        description="A new version: the one in force with the given fields changed (`rules` replaces the whole "
        "decision table; `reason_catalogue` entries replace those keys). It decides nothing until a second "
        "holder of the policy grant approves it. Needs the policy grant (credit risk officers); 400 names the "
        "first problem (cutoffs out of order, a rule that does not parse, a condition on an unknown input).",
        request=PolicyProposeSerializer,
        responses={201: PolicyVersionSerializer, 400: INVALID},
        examples=[
            ex.request(
                "Tighter cutoff and two rules", ex.POLICY_PROPOSE, description="POST /api/v1/portfolios/2/policies/"
            ),
            ex.response("Proposed", ex.POLICY_VERSION, status=201),
        ],
    )
    def propose(self, request, pk=None):
        portfolio = self.get_object()
        body = PolicyProposeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        changes = dict(body.validated_data)
        comment = changes.pop("comment", "")
        if "rules" in changes:
            changes["rules"] = [dict(rule) for rule in changes["rules"]]
        row = policy_propose(portfolio=portfolio, user=request.user, changes=changes, comment=comment)
        return Response(
            PolicyVersionSerializer(_versions(portfolio.pk).get(pk=row.pk)).data, status=status.HTTP_201_CREATED
        )


class PolicyVersionViewSet(mixins.RetrieveModelMixin, ScopedViewSet):
    """``/policies/{id}/``: one version, its impact, and approving or rejecting it."""

    queryset = PolicyVersion.objects.select_related("portfolio", "proposed_by", "decided_by", "based_on").order_by(
        "portfolio_id", "-version"
    )
    serializer_class = PolicyVersionSerializer
    required_portfolio_perms = {"approve": POLICY, "reject": POLICY}

    @extend_schema(
        tags=["Policy"],
        summary="Get one policy version",
        examples=[ex.response("Proposed", ex.POLICY_VERSION)],
    )
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        tags=["Policy"],
        summary="What a version would decide on the last batch run's stored scores, beside the one it replaces",
        description="Approval, refer and decline rates and the observed bad rate of the approved, old against "
        "new, over the portfolio's last finished batch run (nothing is re-scored). `run` is null when the "
        "portfolio has no finished run. Needs the view grant.",
        responses={200: PolicyImpactSerializer},
        examples=[ex.response("Impact", ex.POLICY_IMPACT)],
    )
    @action(detail=True, methods=["get"])
    def impact(self, request, pk=None):
        return Response(PolicyImpactSerializer(policy_impact(policy_version=self.get_object())).data)

    def _decide(self, request, decide):
        row = self.get_object()
        body = PolicyDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        decide(policy_version=row, user=request.user, reason=body.validated_data["reason"])
        return Response(PolicyVersionSerializer(self.get_queryset().get(pk=row.pk)).data)

    @extend_schema(
        tags=["Policy"],
        summary="Approve a proposed version: it is in force at once (four eyes: never by its proposer)",
        description="Needs the policy grant. 403 for the proposer (four eyes); 409 when the version is decided "
        "already or was proposed against a version no longer in force. Audited with the before/after.",
        request=PolicyDecisionSerializer,
        responses={200: PolicyVersionSerializer, 403: FOUR_EYES, 409: DECIDED},
        examples=[
            ex.request("Approve", {"reason": ex.POLICY_DECISION_REASON}),
            ex.response("Approved", ex.POLICY_APPROVED),
        ],
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, policy_approve)

    @extend_schema(
        tags=["Policy"],
        summary="Reject a proposed version (four eyes: never by its proposer)",
        description="Needs the policy grant. 403 for the proposer; 409 when the version is decided already.",
        request=PolicyDecisionSerializer,
        responses={200: PolicyVersionSerializer, 403: FOUR_EYES, 409: DECIDED},
        examples=[
            ex.request("Reject", {"reason": ex.POLICY_REJECTED["decision_reason"]}),
            ex.response("Rejected", ex.POLICY_REJECTED),
        ],
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(request, policy_reject)
