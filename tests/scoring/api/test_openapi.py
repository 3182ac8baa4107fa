"""The OpenAPI document: valid, and every operation documented with a summary, tags,
examples and its errors in the one error format."""

from __future__ import annotations

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator

from tests.scoring.api.conftest import client_for

WRITE_METHODS = {"post", "put", "patch"}
ERROR_REF = "#/components/schemas/ErrorResponse"


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield f"{method.upper()} {path}", method, operation


def examples_of(body: dict) -> list:
    return [example for media in body.get("content", {}).values() for example in media.get("examples", {}).values()]


def test_the_schema_validates_without_a_single_warning(tmp_path):
    out = tmp_path / "openapi.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    document = yaml.safe_load(out.read_text())
    assert document["openapi"].startswith("3.")
    assert "/api/v1/scores/{id}/explanation/" in document["paths"]


def test_every_operation_has_a_summary_tags_and_examples(schema):
    problems = []
    count = 0
    for name, method, operation in operations(schema):
        count += 1
        if not operation.get("summary"):
            problems.append(f"{name}: no summary")
        if not operation.get("tags"):
            problems.append(f"{name}: no tags")
        successes = {code: r for code, r in operation["responses"].items() if code.startswith("2")}
        if not successes:
            problems.append(f"{name}: no success response")
        response_examples = [e for r in successes.values() for e in examples_of(r)]
        request_examples = examples_of(operation.get("requestBody", {}))
        if method in WRITE_METHODS and "requestBody" in operation and not request_examples:
            problems.append(f"{name}: no request example")
        if not response_examples and not (method in WRITE_METHODS and request_examples):
            problems.append(f"{name}: no response example")
    assert count >= 30
    assert not problems, "\n".join(problems)


def test_every_error_response_is_the_error_component_with_an_example(schema):
    assert {"ErrorResponse", "Error"} <= set(schema["components"]["schemas"])
    problems = []
    for name, method, operation in operations(schema):
        codes = set(operation["responses"])
        for needed in ("401", "403", "429"):
            if needed not in codes:
                problems.append(f"{name}: {needed} undocumented")
        if "{" in name and "404" not in codes:
            problems.append(f"{name}: 404 undocumented")
        if method in WRITE_METHODS and "requestBody" in operation and "400" not in codes:
            problems.append(f"{name}: 400 undocumented")
        for code, response in operation["responses"].items():
            if code[0] in "45":
                media = response.get("content", {}).get("application/json", {})
                if media.get("schema", {}).get("$ref") != ERROR_REF:
                    problems.append(f"{name} {code}: not the error component")
                examples = [e["value"] for e in media.get("examples", {}).values()]
                if not examples or any(set(e) != {"error"} for e in examples):
                    problems.append(f"{name} {code}: no example in the error format")
    assert not problems, "\n".join(problems)


def test_lists_document_their_filters_and_the_capped_page_size(schema):
    def query(path: str) -> set[str]:
        return {p["name"] for p in schema["paths"][path]["get"].get("parameters", []) if p["in"] == "query"}

    assert {"external_id", "external_id_prefix", "decision", "score_min", "score_max", "created_after",
            "created_before", "portfolio", "page", "page_size"} <= query("/api/v1/applicants/")  # fmt: skip
    assert {"decision", "model_version", "created_after", "created_before"} <= query("/api/v1/scores/")
    assert {"status", "kind"} <= query("/api/v1/models/")
    assert {"status"} <= query("/api/v1/batch-runs/")
    assert "500" in next(
        p["description"] for p in schema["paths"]["/api/v1/scores/"]["get"]["parameters"] if p["name"] == "page_size"
    )


@pytest.mark.django_db
def test_the_schema_swagger_ui_and_redoc_are_served():
    from tests.factories import UserFactory

    client = client_for(UserFactory(username="reader"))
    assert b"/api/v1/scores/{id}/explanation/" in client.get("/api/v1/schema/").content
    for url in ("/api/v1/docs/", "/api/v1/redoc/"):
        assert client.get(url).status_code == 200, url
