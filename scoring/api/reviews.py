"""The review queue over the API: the referred applications of your portfolios, and
taking, releasing and deciding one (``scoring.services.reviews`` holds every rule).

A case is known by its score's id. Reading the queue needs the view grant (auditors
and analysts read it); acting on a case needs the review grant (underwriters)."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
)
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from scoring import selectors
from scoring.api import examples as ex
from scoring.api.errors import ErrorResponseSerializer, error_body
from scoring.api.serializers import ReasonSerializer
from scoring.api.views import ScopedViewSet
from scoring.models import ReviewDecision, Score
from scoring.permissions import restrict
from scoring.roles import REVIEW as REVIEW_PERM
from scoring.services.reviews import REASON_MAX_CHARS, REASON_MIN_CHARS, review_decide, review_release, review_take


class ReviewDecisionSerializer(serializers.ModelSerializer):
    """A case's review: who holds it, and the final decision beside the model's."""

    state = serializers.CharField(read_only=True, help_text="open, taken or decided")
    assigned_to = serializers.CharField(source="assigned_to.username", allow_null=True, default=None)
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)

    class Meta:
        model = ReviewDecision
        fields = ["id", "score", "state", "model_decision", "assigned_to", "taken_at", "decision", "reason",
                  "decided_by", "decided_at", "is_override"]  # fmt: skip
        read_only_fields = fields


class ReviewCaseSerializer(serializers.ModelSerializer):
    """A referred decision in the queue (``id`` is the score's)."""

    applicant_external_id = serializers.CharField(source="applicant.external_id", read_only=True)
    model_version_number = serializers.IntegerField(source="model_version.version", read_only=True)
    reasons = ReasonSerializer(many=True)
    review = ReviewDecisionSerializer(read_only=True, allow_null=True, default=None)

    class Meta:
        model = Score
        fields = ["id", "portfolio", "applicant", "applicant_external_id", "model_version", "model_version_number",
                  "policy_version", "pd", "score", "decision", "reasons", "created_at", "review"]  # fmt: skip


class ApplicantDecisionSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="score id")
    created_at = serializers.DateTimeField()
    model_version = serializers.IntegerField()
    score = serializers.FloatField()
    decision = serializers.CharField(help_text="the model's (and policy's) decision")
    final_decision = serializers.CharField(allow_null=True, help_text="decided by review, if it was")


class ReviewCaseDetailSerializer(ReviewCaseSerializer):
    history = serializers.SerializerMethodField(help_text="the applicant's decisions, newest first")
    repayment_months = serializers.SerializerMethodField(help_text="months of repayment history on file")

    class Meta(ReviewCaseSerializer.Meta):
        fields = [*ReviewCaseSerializer.Meta.fields, "history", "repayment_months"]

    @extend_schema_field(ApplicantDecisionSerializer(many=True))
    def get_history(self, score: Score) -> list[dict]:
        user, applicant = self.context["request"].user, score.applicant
        assert applicant is not None  # a case is an applicant's decision
        reviews = selectors.applicant_reviews(user=user, applicant=applicant)
        rows = selectors.applicant_scores(user=user, applicant=applicant, limit=20)
        return [{"id": s.pk, "created_at": s.created_at, "model_version": s.model_version_id, "score": s.score,
                 "decision": s.decision, "final_decision": reviews[s.pk].decision if s.pk in reviews else None}
                for s in rows]  # fmt: skip

    def get_repayment_months(self, score: Score) -> int:
        assert score.applicant is not None
        return len(selectors.applicant_history(user=self.context["request"].user, applicant=score.applicant))


class ReviewDecideRequestSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["approve", "decline"])
    reason = serializers.CharField(
        min_length=REASON_MIN_CHARS, max_length=REASON_MAX_CHARS, help_text="why: kept with the decision and audited"
    )


REVIEW = {"id": 1, "score": 90211, "state": "taken", "model_decision": "refer", "assigned_to": "underwriter",
          "taken_at": "2026-11-03T10:02:11Z", "decision": "", "reason": "", "decided_by": None, "decided_at": None,
          "is_override": False}  # fmt: skip
REVIEW_DECIDED = {**REVIEW, "state": "decided", "decision": "approve", "decided_by": "underwriter",
                  "reason": "Income verified with three payslips; the new job is permanent.",
                  "decided_at": "2026-11-03T10:09:40Z"}  # fmt: skip
CASE = {"id": 90211, "portfolio": 1, "applicant": 4711, "applicant_external_id": "SYN00004711", "model_version": 3,
        "model_version_number": 3, "policy_version": 1, "pd": 0.0790736768698401, "score": 557.9592,
        "decision": "refer", "reasons": ex.SCORE["reasons"], "created_at": ex.CREATED, "review": None}  # fmt: skip
CASE_DETAIL = {**CASE, "history": [{"id": 90211, "created_at": ex.CREATED, "model_version": 3, "score": 557.9592,
               "decision": "refer", "final_decision": None}], "repayment_months": 24}  # fmt: skip
CONFLICT = OpenApiResponse(
    ErrorResponseSerializer,
    description="The case is taken by someone else, decided already, or no longer in the queue.",
    examples=[ex.response("Taken", error_body("review_conflict", "Decision #90211 is being reviewed by uw_b already."),
                          status=409)],
)  # fmt: skip


@extend_schema(tags=["Review queue"])
@extend_schema_view(
    list=extend_schema(
        summary="List the referred applications waiting for a person's decision, oldest first",
        description="An applicant's latest decision when it is a refer not decided by review yet. `state`: open "
        "(nobody holds it), taken, mine (taken by you); by default every case. Needs the view grant.",
        parameters=[
            OpenApiParameter("state", str, enum=["open", "taken", "mine"], required=False),
            OpenApiParameter("portfolio", int, required=False),
        ],
        examples=[ex.response("Open case", CASE)],
    ),
    retrieve=extend_schema(
        summary="Get one case: decision, PD, points, reasons, the review and the applicant's decisions",
        description="A referred decision, in the queue or decided by review.",
        examples=[ex.response("Case", CASE_DETAIL)],
    ),
)
class ReviewQueueViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    # The queue (the list); a case's own page and actions also find it once decided.
    queryset = selectors.review_cases().select_related("applicant", "model_version", "review__assigned_to")
    required_portfolio_perms = {"take": REVIEW_PERM, "release": REVIEW_PERM, "decide": REVIEW_PERM}
    filterset_class = None

    def get_serializer_class(self):
        return ReviewCaseDetailSerializer if self.action == "retrieve" else ReviewCaseSerializer

    def get_queryset(self):
        if self.action == "list":
            params = self.request.query_params
            state, portfolio = params.get("state"), params.get("portfolio", "")
            filters = {"state": state if state in selectors.REVIEW_STATES else None,
                       "portfolio": int(portfolio) if portfolio.isascii() and portfolio.isdigit() and len(portfolio) < 12 else None}  # fmt: skip
            return selectors.review_queue_filter(super().get_queryset(), user=self.request.user, filters=filters)
        # A decided case stays readable, and answers a second decision with 409 rather than 404.
        referred = Score.objects.filter(decision="refer", is_shadow=False, applicant__isnull=False)
        return restrict(referred, self.request.user).select_related(
            "applicant", "model_version", "review__assigned_to", "review__decided_by"
        )

    def _answer(self, review: ReviewDecision) -> Response:
        return Response(ReviewDecisionSerializer(review).data)

    @extend_schema(
        summary="Take a case: it is assigned to you and nobody else can take it",
        description="Needs the review grant (underwriters); never a decision you requested (four eyes). 409 when "
        "someone else holds it. Taking your own case again changes nothing.",
        request=None,
        responses={200: ReviewDecisionSerializer, 409: CONFLICT},
        examples=[ex.response("Taken", REVIEW)],
    )
    @action(detail=True, methods=["post"])
    def take(self, request, pk=None):
        return self._answer(review_take(score=self.get_object(), user=request.user, request=request))

    @extend_schema(
        summary="Release a case you hold back to the queue",
        request=None,
        responses={200: ReviewDecisionSerializer, 409: CONFLICT},
        examples=[ex.response("Released", {**REVIEW, "state": "open", "assigned_to": None, "taken_at": None})],
    )
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        return self._answer(review_release(score=self.get_object(), user=request.user, request=request))

    @extend_schema(
        summary="Decide a case you hold: approve or decline, with a reason",
        description=f"The final decision is stored beside the model's (the score itself never changes) and "
        f"audited; it is final. The reason is required ({REASON_MIN_CHARS}-{REASON_MAX_CHARS} characters). "
        "`is_override`: the decision differs from the model's own (its points against the cutoffs).",
        request=ReviewDecideRequestSerializer,
        responses={200: ReviewDecisionSerializer, 409: CONFLICT},
        examples=[
            ex.request("Approve", {"decision": "approve", "reason": REVIEW_DECIDED["reason"]}),
            ex.request("Decline", {"decision": "decline", "reason": "Two bureau defaults in the last year."}),
            ex.response("Decided", REVIEW_DECIDED),
        ],
    )
    @action(detail=True, methods=["post"])
    def decide(self, request, pk=None):
        score = self.get_object()
        body = ReviewDecideRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        review = review_decide(score=score, user=request.user, request=request, **body.validated_data)
        return self._answer(review)
