"""The layout check itself catches what German credit broke: a value squeezed to one
character a line beside a long name, and a card taller than three viewports."""

from __future__ import annotations

import pytest

from tests.browser.conftest import layout_problems

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The old applicant card: a max-content name column, values allowed to break anywhere.
SQUEEZED = """<!doctype html><html><body><main>
<dl style="display:grid;grid-template-columns:max-content 1fr;width:20rem">
<dt>number_of_people_being_liable_to_provide_maintenance_for</dt>
<dd style="overflow-wrap:anywhere;margin:0">critical account/ other credits existing</dd></dl>
<table style="width:12rem"><tr><th style="white-space:nowrap">installment_rate_in_percentage</th>
<td style="overflow-wrap:anywhere">critical account/ other credits existing</td></tr></table>
<section style="height:3000px">a decision card, mostly empty</section>
</main></body></html>"""


def test_it_reports_a_squeezed_cell_and_a_too_tall_element(browser_page):
    page = browser_page
    page.set_content(SQUEEZED)
    problems = layout_problems(page)
    assert any(p.startswith("dd") and "< 4 characters" in p for p in problems), problems  # a character a line
    assert any(p.startswith("td") and "< 4 characters" in p for p in problems), problems
    assert any(p.startswith("section") and "tall" in p for p in problems), problems


def test_it_accepts_a_page_that_wraps_by_words(browser_page):
    page = browser_page
    page.set_content(
        "<!doctype html><main><table style='width:30rem'><tr><th>Status of existing checking account</th>"
        "<td>no checking account</td></tr><tr><th>ETA</th><td>3</td></tr></table></main>"
    )
    assert layout_problems(page) == []
