"""Every operation of the OpenAPI schema, asked by every member of a fixed cast.

The operations come from drf-spectacular's generator, so a new endpoint is
covered the day it appears: reads (list, retrieve, GET actions) are classified
automatically; an operation that changes something must name the grant it needs
(``required_portfolio_perms`` of its viewset, or ``COLLECTION_PERMS`` here for a
create whose portfolio is in the body) or this test fails. The few operations
that are not portfolio data at all are listed in ``GLOBAL_READS``.

What each cast member may do is written out by hand below (not read from
``scoring.roles``), then every answer is checked against it:

* another portfolio's object, or a portfolio not granted: 404, with exactly the
  body of a missing id;
* a visible object, but an action the member's role or grant lacks: 403;
* an allowed action: 2xx (or 409 when the object's state forbids it);
* a list: exactly the rows of the member's portfolios, compared with the database;
* no answer anywhere carries another portfolio's id (a leak).

Members authenticate with real API tokens (one of them narrowed to a portfolio),
and every request runs in a savepoint that is rolled back, so the answers do not
depend on the order of the requests.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import resolve
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from scoring.models import (
    Applicant,
    AuditEvent,
    BatchRun,
    ImportJob,
    ModelVersion,
    Portfolio,
    Score,
    TuningStudy,
    WebhookDelivery,
)
from scoring.services.access import portfolio_access_grant
from scoring.services.batch import batch_run_create
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.scoring import score_realtime
from scoring.services.synthetic import synthetic_files_write
from scoring.services.tokens import api_token_create
from scoring.services.training import model_version_create, model_version_train
from scoring.services.webhooks import webhook_endpoint_create
from tests.factories import UserFactory, synthetic_portfolio

VIEW, SCORE, IMPORT, EXPORT, TRAIN, VALIDATE, REVIEW = (
    "view_portfolio_data", "score_portfolio", "import_portfolio", "export_portfolio", "train_portfolio",
    "validate_portfolio", "review_portfolio",
)  # fmt: skip
SENIOR = {VIEW, SCORE, IMPORT, EXPORT, "view_portfolio_pii"}

# The cast: (role, portfolios granted by role, direct grants without a role, token narrowed to).
CAST: dict[str, tuple[str | None, tuple[str, ...], tuple[str, ...], tuple[str, ...] | None]] = {
    "owner": ("senior analyst", ("A",), (), None),
    "analyst": ("analyst", ("A",), (), None),
    "other_analyst": ("senior analyst", ("B",), (), None),
    "narrowed_token": ("senior analyst", ("A", "B"), (), ("B",)),  # granted both, the token reaches B only
    "no_role": (None, (), ("A",), None),  # every grant on A, but no role: a grant alone does nothing
    "developer": ("model developer", ("A",), (), None),
    "validator": ("model validator", ("A",), (), None),
    "auditor": ("auditor", ("A",), (), None),
    "underwriter": ("underwriter", ("A",), (), None),
    "outsider": (None, (), (), None),
}
# What each member may do where: written out by hand, independently of scoring/roles.py.
EXPECTED: dict[str, dict[str, set[str]]] = {
    "owner": {"A": SENIOR},
    "analyst": {"A": {VIEW, SCORE}},
    "other_analyst": {"B": SENIOR},
    "narrowed_token": {"B": SENIOR},
    "no_role": {},
    "developer": {"A": {VIEW, TRAIN}},
    "validator": {"A": {VIEW, VALIDATE}},
    "auditor": {"A": {VIEW}},
    "underwriter": {"A": {VIEW, REVIEW}},
    "outsider": {},
}
ANONYMOUS = "anonymous"

# Creates on a collection: the portfolio is in the body; the grant each needs.
COLLECTION_PERMS = {
    "batch_runs_create": SCORE,
    "imports_create": IMPORT,
    "imports_infer_schema_create": IMPORT,
    "imports_applications_create": IMPORT,
    "imports_outcomes_create": IMPORT,
    "models_train_create": TRAIN,
    "models_tune_create": TRAIN,
}
# Not portfolio data: declarations any signed-in user may read.
GLOBAL_READS = {"schemas_list", "schemas_retrieve"}
# Not portfolio data: readable with a model-level permission (a role), across portfolios.
MODEL_PERM_READS = {
    "audit_events_list": "scoring.view_auditevent",
    "audit_events_retrieve": "scoring.view_auditevent",
    "audit_events_export_retrieve": "scoring.view_auditevent",
}
# Who holds those model-level permissions in the cast (by hand, as EXPECTED).
MODEL_PERMS = {"auditor": {"scoring.view_auditevent"}}
# Operations answered without credentials (none yet: the schema and docs views are not in the schema).
TOKENLESS: set[str] = set()

MISSING_ID = 987_654_321
ALLOWED_STATUSES = {200, 201, 202, 204, 409}


@dataclass
class Operation:
    """One path and method of the schema, and how the gate should treat it."""

    method: str
    path: str
    operation_id: str
    kind: str  # list | object | collection | global
    perm: str = VIEW
    model: Any = None
    portfolio_field: str = "portfolio_id"
    view_queryset: Any = None
    spec: dict = field(default_factory=dict)


def openapi_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _view_of(path: str, method: str):
    match = resolve(path.replace("{id}", "1"))
    view_cls = getattr(match.func, "cls", None) or getattr(match.func, "view_class", None)
    actions = getattr(match.func, "actions", None) or {}
    return view_cls, actions.get(method)


def classify(schema: dict) -> tuple[list[Operation], list[str]]:
    """Every operation with its expected treatment, and the operations that cannot
    be classified (each a reason this test fails)."""
    from scoring.api.views import ScopedViewSet

    operations, problems = [], []
    for path, methods in schema["paths"].items():
        for method, spec in methods.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            op_id = spec["operationId"]
            path_params = {p["name"] for p in spec.get("parameters", []) if p["in"] == "path"}
            view_cls, action = _view_of(path, method)
            if op_id in GLOBAL_READS:
                operations.append(Operation(method, path, op_id, "global", spec=spec))
                continue
            if op_id in MODEL_PERM_READS:
                operations.append(Operation(method, path, op_id, "model_perm", perm=MODEL_PERM_READS[op_id], spec=spec))
                continue
            if path_params - {"id"}:
                problems.append(f"{op_id}: path parameters {sorted(path_params)} (only {{id}} is understood)")
                continue
            if view_cls is None or not issubclass(view_cls, ScopedViewSet):
                problems.append(f"{op_id}: {view_cls} is not a ScopedViewSet, so its reads skip the gate")
                continue
            queryset = view_cls.queryset
            declared = getattr(view_cls, "required_portfolio_perms", {}).get(action)
            op = Operation(
                method, path, op_id, "", model=queryset.model, view_queryset=queryset, spec=spec,
                portfolio_field=view_cls.portfolio_field or "portfolio_id",
            )  # fmt: skip
            if "id" in path_params:
                op.kind, op.perm = "object", declared or VIEW
                if method != "get" and op.perm == VIEW:
                    problems.append(f"{op_id}: {method.upper()} declares no grant in required_portfolio_perms")
                    continue
            elif method == "get" and action == "list":
                op.kind = "list"
            elif method == "post":
                perm = COLLECTION_PERMS.get(op_id, declared)
                if perm is None:
                    problems.append(f"{op_id}: a create without a grant in COLLECTION_PERMS/required_portfolio_perms")
                    continue
                if declared is not None and declared != perm:
                    problems.append(f"{op_id}: the viewset declares {declared}, this test expects {perm}")
                    continue
                op.kind, op.perm = "collection", perm
            else:
                problems.append(f"{op_id}: {method.upper()} {path} is not classified")
                continue
            operations.append(op)
    return operations, problems


def test_every_operation_of_the_schema_is_classified():
    operations, problems = classify(openapi_schema())
    assert problems == [], "unclassified operations:\n" + "\n".join(problems)
    ids = {op.operation_id for op in operations}
    assert {"portfolios_score_create", "applicants_list", "models_approve_create", "imports_create",
            "models_reject_create", "models_notes_create"} <= ids  # fmt: skip
    assert set(COLLECTION_PERMS) | GLOBAL_READS | set(MODEL_PERM_READS) <= ids  # no stale entries


# --- the world ------------------------------------------------------------------


FAST = {"max_epochs": 3, "patience": 2, "batch_size": 128}


def _tuning_study_row(*, portfolio, kind, n_trials, seed=0, requested_by=None):
    """Stands in for ``tuning_study_start`` here: the real one creates Optuna's study
    through a second connection (which a test transaction on SQLite locks out) and
    sends its trials to the broker at once. This test is about who may start a study;
    tests/scoring/test_tuning*.py run the real one."""
    return TuningStudy.objects.create(
        portfolio=portfolio, kind=kind, n_trials=n_trials, seed=seed, requested_by=requested_by,
        study_name=f"permission-test-{portfolio.pk}-{TuningStudy.objects.count()}",
    )  # fmt: skip


@pytest.fixture
def world(db, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("scoring.api.views.tuning_study_start", _tuning_study_row)
    cache.clear()  # throttle counters of earlier tests
    a = synthetic_portfolio(n=600, seed=31, name="A")
    b = synthetic_portfolio(n=60, seed=32, name="B")
    portfolios = {"A": a, "B": b}
    users = {}
    for name, (role, by_role, direct, narrowed) in CAST.items():
        user = UserFactory(username=f"cast-{name}")
        for key in by_role:
            portfolio_access_grant(portfolio=portfolios[key], grantee=user, role=role)
        for key in direct:
            portfolio_access_grant(
                portfolio=portfolios[key], grantee=user, perms=tuple(sorted(SENIOR | {TRAIN, VALIDATE, REVIEW}))
            )
        scope = None if narrowed is None else [portfolios[k] for k in narrowed]
        users[name] = (user, api_token_create(user=user, name="cast", portfolios=scope)[1])
    developer, validator = users["developer"][0], users["validator"][0]

    version = model_version_train(
        model_version_id=model_version_create(
            portfolio=a, kind="mlp", seed=1, hyperparameters=FAST, requested_by=developer
        ).pk
    )
    model_version_approve(version=version, user=validator)
    model_version_promote(version=version, user=validator, override_reason="permission test fixture")
    other_version = ModelVersion.objects.create(
        portfolio=b, version=1, kind="mlp", status=ModelVersion.STATUS_TRAINED, schema=b.schema
    )
    for portfolio in (a, b):
        applicant = Applicant.objects.filter(portfolio=portfolio).order_by("pk").first()
        if portfolio is a:
            score_realtime(portfolio=a, requested_by=users["owner"][0], applicant=applicant, top_k=3)
            batch_run_create(portfolio=a, requested_by=users["owner"][0], chunk_size=200, trigger="api")
        else:
            BatchRun.objects.create(portfolio=b, model_version=other_version, rows_total=1)
            Score.objects.create(portfolio=b, applicant=applicant, model_version=other_version, pd=0.1, score=600,
                                 decision="approve", base_log_odds=-2.0, input_hash="0" * 64)  # fmt: skip
        # A referred application of each portfolio (a case of the review queue): a copy of
        # the portfolio's first decision, for its second applicant, decided refer.
        first = Score.objects.filter(portfolio=portfolio).order_by("pk").first()
        first.pk, first.run, first.decision, first.requested_by = None, None, "refer", None
        first.applicant = Applicant.objects.filter(portfolio=portfolio).order_by("pk")[1]
        first.save()
        ImportJob.objects.create(portfolio=portfolio, kind="applicants", schema=portfolio.schema, file_name="x.csv")
        TuningStudy.objects.create(portfolio=portfolio, kind="mlp", study_name=f"study-{portfolio.pk}", n_trials=2)
    # Webhook endpoints and a failed delivery in each portfolio (created after the scores, so
    # the real-time score above owed nothing): the delivery log lists and redelivers them.
    root = UserFactory(username="cast-root", is_superuser=True)
    for portfolio in (a, b):
        endpoint, _ = webhook_endpoint_create(portfolio=portfolio, url="https://example.com/hook", user=root)
        score = Score.objects.filter(portfolio=portfolio).order_by("pk").first()
        WebhookDelivery.objects.create(portfolio=portfolio, endpoint=endpoint, score=score, payload={}, status="failed")
    files = synthetic_files_write(directory=tmp_path / "upload", count=5, seed=3)
    return {"portfolios": portfolios, "users": users, "upload": files.applicants.read_bytes()}


# --- requests -------------------------------------------------------------------


def _example_body(spec: dict) -> tuple[dict | None, str | None]:
    content = (spec.get("requestBody") or {}).get("content") or {}
    for media, fmt in (("application/json", "json"), ("multipart/form-data", "multipart")):
        if media in content:
            examples = content[media].get("examples") or {}
            for example in examples.values():
                return copy.deepcopy(example["value"]), fmt
            return {}, fmt  # no example: the required fields are filled in below
    return None, None


def build_body(op: Operation, world: dict, portfolio_id: int) -> tuple[dict | None, str | None]:
    """The request body: the schema's first example, with the portfolio under test and
    objects that exist; minimal valid bodies where an example cannot work as it is."""
    a = world["portfolios"]["A"]
    if op.operation_id == "portfolios_score_create":
        applicant = Applicant.objects.filter(portfolio=a).order_by("pk").first()
        return {"external_id": applicant.external_id}, "json"
    if op.operation_id == "imports_create":
        upload = SimpleUploadedFile("applicants.csv", world["upload"], content_type="text/csv")
        return {"portfolio": portfolio_id, "kind": "applicants", "file": upload}, "multipart"
    if op.operation_id in ("imports_applications_create", "imports_outcomes_create"):
        from scoring.services.pii import pii_read

        applicant = Applicant.objects.filter(portfolio=a).order_by("pk").first()
        if op.operation_id == "imports_outcomes_create":
            record = {"applicant_id": applicant.external_id, "defaulted": True, "observed_on": "2026-10-01"}
        else:
            id_column = a.schema.columns_with_role("id")[0]["name"]
            record = {id_column: applicant.external_id, **applicant.features, **applicant.protected_attributes}
            record.update(pii_read(applicant) or {})
        return {"portfolio": portfolio_id, "records": [record]}, "json"
    if op.operation_id == "imports_infer_schema_create":  # read within the request: a real CSV
        upload = SimpleUploadedFile("applicants.csv", b"applicant_id,income\nA1,100\nA2,250\n", content_type="text/csv")
        return {"portfolio": portfolio_id, "file": upload}, "multipart"
    body, fmt = _example_body(op.spec)
    if body is None:
        return None, None
    if "portfolio" in body or op.kind == "collection":
        body["portfolio"] = portfolio_id
    for key in ("challenger", "model_version"):  # ids of the example's world, not ours
        body.pop(key, None)
    return body, fmt


def call(client: APIClient, method: str, path: str, body, fmt) -> tuple[int, Any]:
    """One request inside a savepoint that is rolled back: nothing it writes stays,
    and nothing it enqueues on commit is sent."""
    with transaction.atomic():
        kwargs = {"format": fmt} if body is not None else {}
        response = getattr(client, method)(path, body, **kwargs) if body is not None else getattr(client, method)(path)
        raw = b"".join(response.streaming_content) if response.streaming else response.content
        transaction.set_rollback(True)
    try:
        parsed = json.loads(raw) if raw and response.get("Content-Type", "").startswith("application/json") else raw
    except ValueError:
        parsed = raw
    return response.status_code, parsed


def portfolio_ids_in(value: Any) -> set[int]:
    """Every portfolio id an answer names (``portfolio`` / ``portfolio_id`` keys, at any depth)."""
    found: set[int] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key in {"portfolio", "portfolio_id"} and isinstance(item, int):
                found.add(item)
            elif key in {"portfolio", "portfolio_id"} and isinstance(item, dict) and isinstance(item.get("id"), int):
                found.add(item["id"])
            else:
                found |= portfolio_ids_in(item)
    elif isinstance(value, list):
        for item in value:
            found |= portfolio_ids_in(item)
    return found


def all_pages(client: APIClient, path: str) -> tuple[int, list, Any]:
    status, body = call(client, "get", path + "?page_size=500", None, None)
    rows = []
    while status == 200 and isinstance(body, dict):
        rows += body["results"]
        if not body.get("next"):
            break
        status, body = call(client, "get", body["next"].split("testserver", 1)[-1], None, None)
    return status, rows, body


@pytest.mark.slow
def test_every_operation_answers_each_cast_member_as_their_role_and_grants_allow(world):
    operations, problems = classify(openapi_schema())
    assert problems == [], problems
    portfolios = world["portfolios"]
    a = portfolios["A"]
    clients = {ANONYMOUS: APIClient()}
    for name, (_, key) in world["users"].items():
        clients[name] = APIClient()
        clients[name].credentials(HTTP_AUTHORIZATION=f"Token {key}")

    failures: list[str] = []
    checked = 0

    def fail(op, who, message):
        failures.append(f"{op.method.upper()} {op.path} ({op.operation_id}) as {who}: {message}")

    for op in operations:
        for who, client in clients.items():
            checked += 1
            allowed = {portfolios[k].pk: perms for k, perms in EXPECTED.get(who, {}).items()}
            visible = {pid for pid, perms in allowed.items() if VIEW in perms}
            if op.kind == "object":
                # The first object the operation's viewset can reach (the review queue reaches referred scores only).
                target = a if op.model is Portfolio else op.view_queryset.filter(portfolio=a).order_by("pk").first()
                assert target is not None, f"the world has no {op.model.__name__} of portfolio A for {op.operation_id}"
                path = op.path.replace("{id}", str(target.pk))
                missing_path = op.path.replace("{id}", str(MISSING_ID))
                body, fmt = build_body(op, world, a.pk)
            elif op.kind == "collection":
                path, missing_path = op.path, op.path
                body, fmt = build_body(op, world, a.pk)
            else:
                path, missing_path, body, fmt = op.path, None, None, None

            if who == ANONYMOUS and op.operation_id not in TOKENLESS:
                status, _ = call(client, op.method, path, body, fmt)
                if status != 401:
                    fail(op, who, f"{status}, expected 401 without credentials")
                continue

            if op.kind == "model_perm":
                target = AuditEvent.objects.order_by("pk").first()
                assert target is not None, "the world has no audit event"
                status, answer = call(client, op.method, op.path.replace("{id}", str(target.pk)), None, None)
                expected_status = 200 if op.perm in MODEL_PERMS.get(who, set()) else 403
                if status != expected_status:
                    fail(op, who, f"{status}, expected {expected_status}: {str(answer)[:200]}")
                continue

            if op.kind == "global":
                status, _ = call(client, op.method, op.path.replace("{id}", str(a.schema_id)), None, None)
                if status != 200:
                    fail(op, who, f"{status}, expected 200 (readable by every signed-in user)")
                continue

            if op.kind == "list":
                status, rows, last = all_pages(client, path)
                if status != 200:
                    fail(op, who, f"{status}: {last}")
                    continue
                expected = set(
                    op.view_queryset.filter(**{f"{op.portfolio_field}__in": visible}).values_list("pk", flat=True)
                )
                got = {row["id"] for row in rows}
                if got != expected:
                    fail(op, who, f"rows {sorted(got)[:10]}... expected {sorted(expected)[:10]}... "
                                  f"({len(got)} vs {len(expected)})")  # fmt: skip
                if not expected and visible:
                    fail(op, who, "the world has no rows to list for this member: extend the fixture")
                leaked = portfolio_ids_in(rows) - visible
                if leaked:
                    fail(op, who, f"LEAK: rows of portfolios {sorted(leaked)}")
                continue

            # An object operation, or a create in portfolio A.
            if fmt == "multipart":  # a file is read once: a fresh one for this request
                body, fmt = build_body(op, world, a.pk)
            status, answer = call(client, op.method, path, body, fmt)
            if a.pk not in visible:
                if status != 404:
                    fail(op, who, f"{status}, expected 404 (portfolio A is not theirs): {str(answer)[:200]}")
                    continue
                missing_body, missing_fmt = (
                    build_body(op, world, MISSING_ID) if op.kind == "collection" else (body, fmt)
                )
                if fmt == "multipart" and op.kind != "collection":
                    missing_body, missing_fmt = build_body(op, world, a.pk)
                missing_status, missing_answer = call(client, op.method, missing_path, missing_body, missing_fmt)
                if (missing_status, missing_answer) != (404, answer):
                    fail(op, who, f"forbidden {answer!r} differs from missing {missing_status} {missing_answer!r}")
            elif op.perm not in allowed[a.pk]:
                if status != 403:
                    fail(op, who, f"{status}, expected 403 (no {op.perm}): {str(answer)[:200]}")
            elif status not in ALLOWED_STATUSES:
                fail(op, who, f"{status}, expected success (holds {op.perm}): {str(answer)[:300]}")
            elif isinstance(answer, dict | list):
                leaked = portfolio_ids_in(answer) - visible
                if leaked:
                    fail(op, who, f"LEAK: answer names portfolios {sorted(leaked)}")

    members = len(clients)
    print(f"\n{len(operations)} operations x {members} users = {checked} checks, leaks 0" if not failures else "")
    assert not failures, f"{len(failures)} of {checked} checks failed:\n" + "\n".join(failures)
    assert checked == len(operations) * members


def test_the_fixed_cast_is_written_out_for_every_member():
    assert set(EXPECTED) == set(CAST)
    assert re.fullmatch(r"[a-z_]+", "".join(CAST))
