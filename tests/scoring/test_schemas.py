import copy
import json
from pathlib import Path

import pytest

from scoring.services.schemas import SchemaError, schema_document_validate, schema_register

DEMO = Path(__file__).resolve().parents[2] / "scoring" / "demo"


def german_schema() -> dict:
    return json.loads((DEMO / "german_credit.schema.json").read_text())


def test_the_demo_schemas_are_valid():
    for name in ("german_credit", "synthetic"):
        schema_document_validate(json.loads((DEMO / f"{name}.schema.json").read_text()))


def test_protected_attributes_of_german_credit_are_not_model_features():
    roles = {c["name"]: c["role"] for c in german_schema()["columns"]}
    assert roles["personal_status_and_sex"] == roles["age_in_years"] == roles["foreign_worker"] == "protected"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["columns"].append({"name": "applicant_id", "role": "id"}), "declared twice"),
        (lambda d: d["columns"][1].update(role="feature"), "role 'feature'"),
        (lambda d: d["columns"][2].update(type="category"), "type 'category' is not allowed"),
        (lambda d: d["columns"][1].update(categories=[]), "categories"),
        (lambda d: d["columns"][-1].update(positive_label="awful"), "positive_label"),
        (lambda d: d["columns"][2].update(min=10, max=1), "'min' is above 'max'"),
        (lambda d: d.update(version=0), "version"),
        (lambda d: d["columns"].pop(0), "exactly one column must have role 'id'"),
    ],
)
def test_invalid_schemas_are_refused_with_a_reason(mutate, message):
    document = copy.deepcopy(german_schema())
    mutate(document)
    with pytest.raises(SchemaError, match=message):
        schema_document_validate(document)


@pytest.mark.django_db
def test_registering_the_same_version_twice_returns_it_and_a_changed_one_is_refused():
    first = schema_register(document=german_schema())
    assert schema_register(document=german_schema()).pk == first.pk
    changed = german_schema()
    changed["columns"][2]["max"] = 999
    with pytest.raises(SchemaError, match="new version"):
        schema_register(document=changed)
    changed["version"] = 2
    assert schema_register(document=changed).version == 2
