"""POST /api/v1/schemas/infer/: a proposed schema for an uploaded file."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from models.synthetic_files import sba_like_frame

from .conftest import client_for

pytestmark = pytest.mark.django_db


def test_the_api_proposes_a_schema_for_an_upload_and_keeps_no_copy(api_world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    data = sba_like_frame(300, seed=2).to_csv(index=False).encode()
    upload = SimpleUploadedFile("SBAnational.csv", data)
    response = client_for(api_world["owner"]).post(
        "/api/v1/imports/infer-schema/", {"portfolio": api_world["mine"].pk, "file": upload}, format="multipart"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["schema"]["name"] == "sbanational" and body["rows_sampled"] == 300
    assert {c["name"]: c["type"] for c in body["schema"]["columns"]}["GrAppv"] == "money"
    assert not list((tmp_path / "media").rglob("*.csv"))
    other = {"portfolio": api_world["theirs"].pk, "file": SimpleUploadedFile("x.csv", data)}
    denied = client_for(api_world["owner"]).post("/api/v1/imports/infer-schema/", other, format="multipart")
    assert denied.status_code == 404  # another portfolio: as if it did not exist
