import pytest
from django.core.management import call_command

from scoring.models import Applicant, ModelVersion, Portfolio

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def test_setup_demo_loads_trains_approves_and_prints_logins_once(capsys):
    call_command("setup_demo", "--synthetic-count", "800")
    out = capsys.readouterr().out
    assert Applicant.objects.filter(portfolio__name="German credit").count() == 1000
    assert Applicant.objects.filter(portfolio__name="Synthetic").count() == 800
    german, synthetic = Portfolio.objects.get(name="German credit"), Portfolio.objects.get(name="Synthetic")
    champion = ModelVersion.objects.get(portfolio=synthetic, status="champion")
    assert champion.kind == "cnn" and champion.approved_by.username == "validator"
    assert champion.trained_by.username == "developer"  # four eyes
    assert synthetic.challenger_version.kind == "mlp"
    assert ModelVersion.objects.get(portfolio=german, status="champion").kind == "mlp"
    # The initial batch run scores every applicant, and the cutoffs are each book's own.
    from scoring.models import Score

    for portfolio in (german, synthetic):
        scored = Score.objects.filter(portfolio=portfolio, is_shadow=False).values("applicant_id").distinct().count()
        assert scored == Applicant.objects.filter(portfolio=portfolio).count()
    assert (german.approve_min_score, synthetic.approve_min_score) == (500.0, 555.0)
    assert "German credit: run #" in out and "approve >= 500, decline < 480: approve " in out
    passwords = [line.split()[1] for line in out.splitlines() if line.startswith("  analyst ")]
    assert len(passwords) == 1 and len(passwords[0]) >= 12
    # The refers of the initial runs wait for the demo underwriter in the review queue.
    from scoring.selectors import review_cases

    assert any(line.startswith("  underwriter ") and "underwriter" in line.split()[-1] for line in out.splitlines())
    for portfolio in (german, synthetic):
        assert review_cases().filter(portfolio=portfolio).exists()
    assert f"German credit: {review_cases().filter(portfolio=german).count():,} referred applications wait" in out

    call_command("setup_demo", "--synthetic-count", "800")  # again: nothing new, no password shown
    out = capsys.readouterr().out
    assert "already loaded" in out and "unchanged since it was first printed" in out
    assert "German credit: already scored" in out
    assert Applicant.objects.filter(portfolio__name="German credit").count() == 1000
