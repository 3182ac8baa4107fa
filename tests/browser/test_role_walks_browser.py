"""The daily tasks of the senior analyst, the model developer and the validator in
Chromium, on both demo books (German credit and synthetic), with screenshots.

One demo world for the whole module: both books with their champions and initial batch
runs, two more trained versions per book for the validator, one real Celery worker
(default and train queues) and one live server, built once and flushed at the end. The
training the developer starts in the browser is real but tiny (3 epochs). Every page
visited is layout-checked (``visit``); any console error fails the test, and so does
any request the browser makes to another host."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from playwright.sync_api import expect

from scoring.models import AuditEvent, ImportJob, ModelVersion, Portfolio, ValidationNote
from scoring.services.demo import DEMO_DIR
from scoring.services.monitoring import monitoring_run
from scoring.services.training import model_version_create, model_version_train
from tests.browser.conftest import SCREENSHOTS, Problems, layout_problems, log_in
from tests.conftest import WorkerProcess, flush_database
from tests.scoring.portal_world import PASSWORD, bad_applicants_csv, german_world, portal_world

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.worker]

BOOKS = ["german", "synthetic"]
TINY = {"max_epochs": 2, "patience": 1, "batch_size": 256}


@dataclass
class Book:
    portfolio: Portfolio
    champion: ModelVersion
    to_reject: ModelVersion
    to_promote: ModelVersion
    bad_file: Path


@dataclass
class Demo:
    url: str
    books: dict[str, Book]
    users: dict = field(default_factory=dict)


def german_bad_file(path: Path) -> Path:
    """Five of German credit's own rows as a new file, one of them broken: a duration
    below the schema's minimum and a purpose the schema does not know."""
    with (DEMO_DIR / "german_credit.csv").open(newline="") as source:
        rows = list(csv.DictReader(source))[:5]
    for i, row in enumerate(rows):
        row["applicant_id"] = f"NEW-{i}"
    rows[2]["duration_in_month"], rows[2]["purpose"] = "-5", "castle"
    with path.open("w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def candidates(portfolio: Portfolio, users: dict) -> tuple[ModelVersion, ModelVersion]:
    """Two versions the developer trained, with their monitoring reports computed (what
    the validator reads before deciding)."""
    versions = []
    for seed in (11, 12):
        queued = model_version_create(
            portfolio=portfolio, kind="mlp", seed=seed, hyperparameters=TINY, requested_by=users["developer"]
        )
        version = model_version_train(model_version_id=queued.pk)
        monitoring_run(portfolio=portfolio, model_version=version, alert=False)
        versions.append(version)
    return versions[0], versions[1]


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker, tmp_path_factory):
    from pytest_django.live_server_helper import LiveServer

    tmp = tmp_path_factory.mktemp("walks")
    with django_db_blocker.unblock():
        synthetic = portal_world(tmp)
        german = german_world(users=synthetic.users)
        books = {}
        for name, portfolio, champion, bad in (
            ("german", german.portfolio, german.champion, german_bad_file(tmp / "german-march.csv")),
            ("synthetic", synthetic.alpha, synthetic.champion, bad_applicants_csv(tmp / "march.csv", synthetic.alpha)),
        ):
            books[name] = Book(portfolio, champion, *candidates(portfolio, synthetic.users), bad_file=bad)
        queues = [settings.CELERY_QUEUES_BY_ROLE[role] for role in ("default", "train")]
        worker = WorkerProcess(queues=queues, log_dir=tmp).start()
        server = LiveServer("localhost:0")
        server._live_server_modified_settings.enable()
        try:
            yield Demo(url=server.url, books=books, users=synthetic.users)
        finally:
            server._live_server_modified_settings.disable()
            server.stop()
            worker.stop()
            flush_database()  # as after a transactional test


@pytest.fixture
def orm(demo, django_db_blocker):
    """The tests read the world's committed rows (no test transaction: the live server and
    the worker must see what the browser does)."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def walk(chromium, demo, orm):
    """A fresh browser context; fails the test on a console error or a request to another host."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems, elsewhere = Problems(), []
    problems.attach(page)
    own = urlparse(demo.url).netloc
    page.on(
        "request",
        lambda r: urlparse(r.url).scheme in ("http", "https") and urlparse(r.url).netloc != own
        and elsewhere.append(r.url),
    )  # fmt: skip
    yield page
    context.close()
    assert not problems.unexpected(), problems.unexpected()
    assert not elsewhere, f"requests to other hosts: {elsewhere}"


def visit(page, name: str, *, full_page: bool = True) -> None:
    """The layout check on the page in view, then its screenshot into var/screenshots/."""
    problems = layout_problems(page)
    assert not problems, f"layout of {name} ({page.url}): {problems[:10]}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)


def drawn(page, chart: str):
    expect(page.locator(f'canvas[data-chart="{chart}"]').first).to_have_attribute("data-drawn", "1")


def accept_confirms(page) -> None:
    page.on("dialog", lambda dialog: dialog.accept())


# Marked for the database (the others take the world's committed rows through ``orm``):
# pytest-django creates the test database only when some collected test asks for it,
# so this module run alone still gets one.
@pytest.mark.django_db
def test_each_book_offers_the_validator_two_candidates_trained_by_someone_else(demo):
    for book in demo.books.values():
        for version in (book.to_reject, book.to_promote):
            assert version.status == ModelVersion.STATUS_TRAINED
            assert version.trained_by == demo.users["developer"]  # four eyes allow the validator
            assert version.portfolio == book.portfolio


@pytest.mark.parametrize("kind", BOOKS)
def test_a_senior_analyst_imports_a_file_with_errors_and_reads_the_report(kind, demo, walk):
    book, page = demo.books[kind], walk
    log_in(page, demo.url, "analyst_a", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Imports").click()
    visit(page, f"{kind}-imports")
    upload = page.locator("form", has=page.get_by_role("button", name="Upload and validate"))
    upload.get_by_label("Portfolio").select_option(label=book.portfolio.name)
    upload.get_by_label("File contains").select_option(label="Applicants")
    upload.get_by_label("File", exact=True).set_input_files(str(book.bad_file))
    upload.get_by_role("button", name="Upload and validate").click()
    page.wait_for_url(re.compile(r"/imports/\d+/$"))
    # The page polls the job and reloads itself when the worker has finished.
    expect(page.locator("#validation-report")).to_be_visible(timeout=90_000)
    expect(page.get_by_text("Rejected: invalid rows, nothing written")).to_be_visible()
    report = page.locator("#validation-report tbody tr")
    expect(report).to_have_count(2)
    job = ImportJob.objects.filter(portfolio=book.portfolio, file_name=book.bad_file.name).latest("id")
    assert (job.status, job.rows_invalid, job.rows_created) == (ImportJob.STATUS_REJECTED, 1, 0)
    bad_category, bad_number = ("purpose", "duration_in_month") if kind == "german" else ("home_ownership", "income")
    expect(report.filter(has_text=bad_category)).to_contain_text("not one of the declared categories")
    expect(report.filter(has_text=bad_number)).to_contain_text("4")  # the spreadsheet row of the bad line
    visit(page, f"{kind}-import-report")


@pytest.mark.parametrize("kind", BOOKS)
def test_a_developer_trains_a_model_and_compares_it_with_the_champion_on_the_same_rows(kind, demo, walk):
    book, page = demo.books[kind], walk
    log_in(page, demo.url, "developer", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Models").click()
    visit(page, f"{kind}-models")
    train = page.locator("form", has=page.get_by_role("button", name="Train"))
    train.get_by_label("Portfolio").select_option(label=book.portfolio.name)
    train.get_by_label("Model").select_option(value="mlp")
    train.get_by_label("At most epochs").fill("3")  # tiny: the walk, not the model, is under test
    train.get_by_role("button", name="Train").click()
    page.wait_for_url(re.compile(r"/models/\d+/$"))
    version = ModelVersion.objects.filter(portfolio=book.portfolio).order_by("-pk").first()
    assert version.trained_by == demo.users["developer"] and version.hyperparameters.get("max_epochs") == 3
    # The page polls the training and reloads itself when the worker has finished.
    expect(page.locator(".badge", has_text="Trained")).to_be_visible(timeout=150_000)
    for chart in ("roc", "ks", "calibration", "gains", "training"):
        drawn(page, chart)
    expect(page.locator("#early-stopping")).to_be_visible()
    visit(page, f"{kind}-model-trained")

    # The same rows: this version's test split scored by the champion as well.
    same_rows = page.locator("form", has=page.get_by_role("heading", name="Compare on the same rows"))
    champion = ModelVersion.objects.get(portfolio=book.portfolio, status=ModelVersion.STATUS_CHAMPION)
    same_rows.get_by_label(re.compile(rf"^v{champion.version} MLP \(champion\)")).check()
    same_rows.get_by_role("button", name="Compare").click()
    page.wait_for_url(re.compile(r"/models/compare/"))
    expect(page.locator("main")).to_contain_text(f"v{version.version} MLP")
    expect(page.locator("main")).to_contain_text(f"v{champion.version} MLP")
    expect(page.locator("main table").first).to_contain_text("AUC")
    for chart in ("compare-roc", "compare-gains"):
        drawn(page, chart)
    visit(page, f"{kind}-model-compare")


@pytest.mark.parametrize("kind", BOOKS)
def test_a_validator_reads_the_reports_writes_a_note_rejects_one_version_and_promotes_another(kind, demo, walk):
    book, page = demo.books[kind], walk
    accept_confirms(page)
    log_in(page, demo.url, "validator", PASSWORD)

    # The version to reject: its monitoring reports are on its page before any decision.
    page.goto(f"{demo.url}/models/{book.to_reject.pk}/")
    monitoring = page.locator("section", has=page.get_by_role("heading", name="Monitoring of this version"))
    expect(monitoring.get_by_role("table", name="Latest monitoring reports of this version")).to_contain_text(
        "Stability (PSI/CSI)"
    )
    expect(monitoring).to_contain_text("CSI by feature")
    expect(monitoring.get_by_role("heading", name=re.compile("^Fairness: ")).first).to_be_visible()
    visit(page, f"{kind}-validator-reports")

    note = f"{kind}: reproduced the test AUC on the same rows; CSI below 0.1 for every feature."
    page.get_by_label("New note").fill(note)
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#validation-notes")).to_contain_text(note)
    expect(page.locator("#validation-notes")).to_contain_text("validator")
    reason = "Below the champion on the same rows; seed 11 is unstable."
    page.get_by_label("Rejection reason").fill(reason)
    page.get_by_role("button", name="Reject this version").click()
    expect(page.locator(".messages")).to_contain_text(f"Model version {book.to_reject.version} rejected.")
    expect(page.locator("#rejection")).to_contain_text(reason)
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    visit(page, f"{kind}-validator-rejected")
    page.screenshot(path=str(SCREENSHOTS / f"{kind}-validation.png"))  # the first screen, for the README
    book.to_reject.refresh_from_db()
    assert (book.to_reject.status, book.to_reject.rejected_by) == ("rejected", demo.users["validator"])
    assert ValidationNote.objects.filter(model_version=book.to_reject, text=note).exists()

    # The other one: approve (four eyes: the developer trained it), then promote; a failed
    # report blocks the promotion until the validator gives a reason.
    page.goto(f"{demo.url}/models/{book.to_promote.pk}/")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".messages")).to_contain_text(f"Model version {book.to_promote.version} approved.")
    page.get_by_role("button", name="Promote to champion").click()
    messages = page.locator(".messages")
    expect(messages).to_be_visible()
    if "Promotion blocked" in messages.inner_text():
        page.get_by_label("Override reason").fill("Reviewed the failed report with the risk committee.")
        page.get_by_role("button", name="Promote to champion").click()
    expect(page.locator(".messages")).to_contain_text("is now the champion")
    expect(page.locator(".badge", has_text="Champion").first).to_be_visible()
    visit(page, f"{kind}-validator-promoted")
    book.to_promote.refresh_from_db()
    assert book.to_promote.status == ModelVersion.STATUS_CHAMPION
    events = AuditEvent.objects.filter(
        object_type="modelversion", outcome="success", actor_id=demo.users["validator"].pk
    )
    actions = {e.action for e in events if e.object_ids == [book.to_reject.pk]}
    assert {"model.note", "model.reject"} <= actions


def test_the_api_docs_call_no_other_host(demo, walk):
    """ReDoc drew a logo from Redocly's CDN (a CSP violation); neither docs page asks
    another host for anything now (``walk`` fails on such a request)."""
    page = walk
    log_in(page, demo.url, "validator", PASSWORD)
    page.goto(f"{demo.url}/api/v1/redoc/")
    expect(page.get_by_text("Reject a model version for good, with a reason").first).to_be_attached(timeout=30_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SCREENSHOTS / "redoc.png"))
    page.goto(f"{demo.url}/api/v1/docs/")
    expect(page.get_by_text("Add a validation note to a model version").first).to_be_visible(timeout=30_000)
    page.wait_for_load_state("networkidle")
