"""The lean real-time path (scoring/api/fast.py, scoring/services/realtime.py):
the same decisions as the full path, from per-process caches that a change
invalidates, and the score with its audit event in one transaction."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer

from scoring.api.serializers import ScoreSerializer
from scoring.caches import cache_version, process_cache
from scoring.models import Applicant, AuditEvent, Score
from scoring.services.access import portfolio_access_grant, portfolio_access_revoke
from scoring.services.registry import model_version_approve, model_version_promote
from scoring.services.scoring import score_realtime
from scoring.services.tokens import api_token_create, api_token_revoke
from scoring.services.training import model_version_create, model_version_train
from tests.conftest import ROOT, database_url_for_subprocess, flush_database
from tests.factories import UserFactory, synthetic_portfolio

FAST = {"max_epochs": 2, "patience": 1, "batch_size": 128}


@pytest.fixture(scope="module")
def trained(django_db_setup, django_db_blocker):
    """A portfolio with an MLP and a CNN (approved), users and a token: built once
    for the module (training is the slow part), removed after it."""
    with django_db_blocker.unblock():
        portfolio = synthetic_portfolio(n=400, seed=5, name="Realtime")
        users = {name: UserFactory(username=f"rt-{name}") for name in ("owner", "validator", "developer", "viewer")}
        portfolio_access_grant(portfolio=portfolio, grantee=users["owner"], role="senior analyst")
        portfolio_access_grant(portfolio=portfolio, grantee=users["validator"], role="model validator")
        portfolio_access_grant(
            portfolio=portfolio, grantee=users["viewer"], role="analyst", perms=("view_portfolio_data",)
        )
        versions = {}
        for kind in ("mlp", "cnn"):
            queued = model_version_create(
                portfolio=portfolio, kind=kind, seed=1, hyperparameters=FAST, requested_by=users["developer"]
            )
            versions[kind] = model_version_train(model_version_id=queued.pk)
            model_version_approve(version=versions[kind], user=users["validator"])
        yield {"portfolio": portfolio, "versions": versions, **users}
        flush_database()  # as after a transactional test


def promote(trained, kind: str):
    return model_version_promote(
        version=trained["versions"][kind], user=trained["validator"], override_reason="test of real-time scoring"
    )


def token_client(user, portfolio=None, **kwargs) -> tuple[Client, str]:
    _, key = api_token_create(user=user, name="rt", portfolios=[portfolio] if portfolio else None)
    return Client(HTTP_AUTHORIZATION=f"Token {key}", **kwargs), key


def post(client: Client, portfolio, body: dict):
    return client.post(
        f"/api/v1/portfolios/{portfolio.pk}/score/", data=json.dumps(body), content_type="application/json"
    )


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_the_lean_path_gives_the_full_paths_decisions_hashes_and_reasons(trained, kind, db):
    portfolio = trained["portfolio"]
    promote(trained, kind)
    client, _ = token_client(trained["owner"], portfolio)
    applicants = list(Applicant.objects.filter(portfolio=portfolio).order_by("pk")[:30])
    for applicant in applicants:
        full = score_realtime(portfolio=portfolio, requested_by=trained["owner"], applicant=applicant)
        response = post(client, portfolio, {"external_id": applicant.external_id})
        assert response.status_code == 201, response.content
        lean = Score.objects.get(pk=response.json()["id"])
        assert response.json() == json.loads(JSONRenderer().render(ScoreSerializer(lean).data))  # the API's contract
        assert lean.model_version_id == full.model_version_id == trained["versions"][kind].pk
        assert (lean.decision, lean.pd, lean.score, lean.input_hash) == (
            full.decision,
            full.pd,
            full.score,
            full.input_hash,
        )
        assert lean.reasons == full.reasons and lean.contributions == full.contributions
        assert lean.input_features == full.input_features and lean.input_history == full.input_history
        assert lean.requested_by_id == trained["owner"].pk and lean.applicant_id == applicant.pk


def test_a_warm_request_reads_the_version_and_the_applicant_and_writes_score_and_audit_together(trained, db):
    portfolio = trained["portfolio"]
    promote(trained, "mlp")
    client, _ = token_client(trained["owner"], portfolio)
    external_id = Applicant.objects.filter(portfolio=portfolio).values_list("external_id", flat=True).first()
    assert post(client, portfolio, {"external_id": external_id}).status_code == 201  # fills this process's cache
    with CaptureQueriesContext(connection) as queries:
        response = post(client, portfolio, {"external_id": external_id})
    assert response.status_code == 201
    statements = [q["sql"] for q in queries.captured_queries]
    reads = [s for s in statements if s.startswith("SELECT") and "scoring_auditevent" not in s]
    assert len(reads) == 2, reads  # the cache version, the applicant
    assert "scoring_cacheversion" in reads[0] and "scoring_applicant" in reads[1]
    # (The test's own transaction makes the write take a savepoint; served, it takes none.)
    writes = [s for s in statements if not s.startswith(("SELECT", "SAVEPOINT", "RELEASE SAVEPOINT"))]
    if connection.vendor == "postgresql":
        # One statement writes both, its own transaction: no BEGIN, no COMMIT round trip.
        assert len(writes) == 1 and writes[0].startswith("WITH"), writes
        assert 'INSERT INTO "scoring_score"' in writes[0] and 'INSERT INTO "scoring_auditevent"' in writes[0]
    else:
        # The score and its event commit in one transaction (the audit event joins the score's).
        insert_score = next(i for i, s in enumerate(statements) if s.startswith('INSERT INTO "scoring_score"'))
        insert_event = next(i for i, s in enumerate(statements) if s.startswith('INSERT INTO "scoring_auditevent"'))
        between = statements[insert_score:insert_event]
        assert not any(s.upper().startswith(("COMMIT", "RELEASE SAVEPOINT")) for s in between), between
    event = AuditEvent.objects.order_by("-id").first()
    assert event.action == "score.create" and event.object_ids == [response.json()["id"]]
    score = Score.objects.get(pk=response.json()["id"])
    assert (event.actor_id, event.portfolio_id, event.object_type) == (trained["owner"].pk, portfolio.pk, "score")
    assert event.details == {"applicant": score.applicant_id, "model_version": score.model_version_id,
                             "decision": score.decision}  # fmt: skip


def test_a_failed_audit_write_leaves_no_decision_behind(trained, db, monkeypatch):
    portfolio = trained["portfolio"]
    promote(trained, "mlp")
    client, _ = token_client(trained["owner"], portfolio, raise_request_exception=False)
    import scoring.audit.events

    built = scoring.audit.events.audit_event_new

    def refused_by_the_database(**kwargs):
        event = built(**kwargs)
        event.actor_username = None  # NOT NULL: the database refuses the event's INSERT
        return event

    monkeypatch.setattr(scoring.audit.events, "audit_event_new", refused_by_the_database)
    before = Score.objects.count()
    response = post(client, portfolio, {"applicant_id": Applicant.objects.filter(portfolio=portfolio).first().pk})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert Score.objects.count() == before


def test_a_score_written_with_its_event_is_the_row_the_orm_writes(trained, db):
    """``audit_record_with`` (one statement on PostgreSQL) stores exactly what the ORM's
    save stores, for the score and for its event."""
    from scoring.audit import audit_record, audit_record_with

    portfolio = trained["portfolio"]
    version = promote(trained, "cnn")  # the CNN's score carries every field, its history bytes too
    applicant = Applicant.objects.filter(portfolio=portfolio).order_by("pk").first()
    unsaved = score_realtime(portfolio=portfolio, requested_by=trained["owner"], applicant=applicant)
    values = {f.attname: getattr(unsaved, f.attname) for f in Score._meta.concrete_fields if f.attname != "id"}
    together, alone = Score(**values), Score(**values)
    details = {"applicant": applicant.pk, "decision": "refer", "ratio": 0.5}
    event = audit_record_with(together, action="score.create", actor=trained["owner"], portfolio_id=portfolio.pk,
                              object_type="score", details=details)  # fmt: skip
    alone.save(force_insert=True)
    orm_event = audit_record(action="score.create", actor=trained["owner"], portfolio_id=portfolio.pk,
                             object_type="score", object_ids=[alone.pk], details=details)  # fmt: skip
    assert together.pk is not None and event.object_ids == [together.pk]

    def stored(model, pk, skip):
        row = model.objects.filter(pk=pk).values().get()
        return {k: v for k, v in row.items() if k not in skip}

    skip = {"id", "created_at", "occurred_at", "object_ids"}
    assert stored(Score, together.pk, skip) == stored(Score, alone.pk, skip)
    assert stored(AuditEvent, event.pk, skip) == stored(AuditEvent, orm_event.pk, skip)
    assert AuditEvent.objects.get(pk=event.pk).object_ids == [together.pk]
    assert Score.objects.get(pk=together.pk).created_at == together.created_at
    assert version.pk == together.model_version_id


def test_every_refusal_is_the_full_paths_own_answer(trained, db):
    portfolio = trained["portfolio"]
    owner, _ = token_client(trained["owner"], portfolio)
    viewer, _ = token_client(trained["viewer"], portfolio)
    outsider, _ = token_client(UserFactory(username="rt-outsider"))
    model_version_promote(version=trained["versions"]["mlp"], user=trained["validator"], override_reason="x")
    cases = [
        (Client(HTTP_AUTHORIZATION="Token nope"), {"external_id": "SYN00000001"}, 401, "authentication_failed"),
        (outsider, {"external_id": "SYN00000001"}, 404, "not_found"),
        (viewer, {"external_id": "SYN00000001"}, 403, "permission_denied"),
        (owner, {"external_id": "NOBODY"}, 404, "not_found"),
        (owner, {"external_id": "SYN00000001", "applicant_id": 1}, 400, "invalid"),
        (owner, {"applicant": {"income": "lots"}}, 400, "invalid"),
        (owner, {"external_id": "SYN00000001", "top_reasons": 99}, 400, "invalid"),
    ]
    for client, body, status, code in cases:
        response = post(client, portfolio, body)
        assert response.status_code == status, (body, response.content)
        assert response.json()["error"]["code"] == code
    unknown = post(owner, portfolio, {"external_id": "NOBODY"}).json()
    assert unknown["error"]["message"] == "No such applicant in this portfolio."


def test_a_new_applicants_data_is_validated_and_scored_like_the_full_path(trained, db):
    portfolio = trained["portfolio"]
    promote(trained, "cnn")
    client, _ = token_client(trained["owner"], portfolio)
    features = Applicant.objects.filter(portfolio=portfolio).first().features
    history = [{"balance": 9000 - 250 * i, "amount_paid": 260, "days_past_due": i % 3} for i in range(24)]
    response = post(client, portfolio, {"applicant": features, "history": history, "top_reasons": 3})
    assert response.status_code == 201, response.content
    lean = Score.objects.get(pk=response.json()["id"])
    full = score_realtime(
        portfolio=portfolio, requested_by=trained["owner"], features=features, history=history, top_k=3
    )
    assert lean.applicant_id is None
    assert (lean.decision, lean.pd, lean.input_hash, lean.reasons) == (
        full.decision,
        full.pd,
        full.input_hash,
        full.reasons,
    )


def test_a_revoked_token_grant_or_a_new_champion_is_seen_on_the_next_request(trained, db):
    """In one process; the gunicorn test below checks it across two."""
    portfolio = trained["portfolio"]
    promote(trained, "mlp")
    client, _ = token_client(trained["owner"], portfolio)
    external_id = "SYN00000002"
    assert (
        post(client, portfolio, {"external_id": external_id}).json()["model_version"] == trained["versions"]["mlp"].pk
    )
    version = cache_version()
    promote(trained, "cnn")
    assert cache_version() > version
    assert (
        post(client, portfolio, {"external_id": external_id}).json()["model_version"] == trained["versions"]["cnn"].pk
    )
    portfolio_access_revoke(portfolio=portfolio, grantee=trained["owner"], perms=("score_portfolio",))
    assert post(client, portfolio, {"external_id": external_id}).status_code == 403
    portfolio_access_grant(portfolio=portfolio, grantee=trained["owner"], role="senior analyst")
    assert post(client, portfolio, {"external_id": external_id}).status_code == 201
    from scoring.models import ApiToken

    api_token_revoke(token=ApiToken.objects.get(key_hash__isnull=False, name="rt", user=trained["owner"]))
    assert post(client, portfolio, {"external_id": external_id}).status_code == 401
    process_cache.clear()


# --- Two web processes -----------------------------------------------------------
class Gunicorn:
    """``gunicorn --workers 2`` on the test database; its access log names the worker
    (pid) that answered each request, so a test can check both."""

    def __init__(self, tmp_path, port: int = 15611):
        self.port = port
        self.log_path = tmp_path / "access.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> Gunicorn:
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()  # never leave a server behind holding the port
            raise

    def _start(self, timeout: float) -> Gunicorn:
        env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "PYTHONUNBUFFERED": "1"}
        env["VAR_DIR"] = str(django_settings.VAR_DIR)
        env["ARTIFACT_DIR"] = str(django_settings.ARTIFACT_DIR)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "riskapp.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
             "--workers", "2", "--timeout", "180", "--access-logfile", str(self.log_path), "--access-logformat", "%(p)s %(s)s %(r)s",
             "--log-level", "warning"],
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "gunicorn exited early"
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"gunicorn not ready after {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # workers still booting ignore a graceful stop
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)

    def answered(self) -> list[tuple[str, int]]:
        """(worker pid, status) of each scoring request logged so far."""
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        return [(line.split()[0], int(line.split()[1])) for line in lines if "/score/" in line]

    def post_many(self, path: str, body: dict, key: str, n: int = 8) -> list[tuple[int, dict]]:
        """``n`` requests at once, each on its own connection (so both workers take some)."""

        def one(_) -> tuple[int, dict]:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            connection.request(
                "POST", path, body=json.dumps(body),
                headers={"Authorization": f"Token {key}", "Content-Type": "application/json", "Connection": "close"},
            )  # fmt: skip
            response = connection.getresponse()
            return response.status, json.loads(response.read())

        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(one, range(n)))

    def until_both_answered(self, path: str, body: dict, key: str, since: int) -> list[tuple[int, dict]]:
        """Requests until both workers have answered at least one since log line ``since``."""
        results = []
        for _ in range(10):
            results += self.post_many(path, body, key)
            time.sleep(0.2)  # the access log is written after the response
            if len({pid for pid, _ in self.answered()[since:]}) == 2:
                return results
        raise AssertionError(f"one worker answered everything: {self.answered()[since:]}")


@pytest.mark.slow
def test_two_gunicorn_workers_see_a_new_champion_and_a_revoked_grant_on_their_next_request(
    trained, transactional_db, tmp_path
):
    portfolio = trained["portfolio"]
    promote(trained, "mlp")
    _, key = api_token_create(user=trained["owner"], name="rt-processes", portfolios=[portfolio])
    path, body = f"/api/v1/portfolios/{portfolio.pk}/score/", {"external_id": "SYN00000003"}
    server = Gunicorn(tmp_path).start()
    try:
        # Both workers hold the token, grants and the MLP champion in their caches.
        warm = server.until_both_answered(path, body, key, since=0)
        assert {(status, answer.get("model_version")) for status, answer in warm} == {
            (201, trained["versions"]["mlp"].pk)
        }
        promote(trained, "cnn")  # committed here, in the test process
        mark = len(server.answered())
        after = server.until_both_answered(path, body, key, since=mark)
        assert {(status, answer["model_version"]) for status, answer in after} == {(201, trained["versions"]["cnn"].pk)}
        portfolio_access_revoke(portfolio=portfolio, grantee=trained["owner"], perms=("score_portfolio",))
        mark = len(server.answered())
        refused = server.until_both_answered(path, body, key, since=mark)
        assert {status for status, _ in refused} == {403}
    finally:
        server.stop()
