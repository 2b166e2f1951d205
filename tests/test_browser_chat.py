"""The chat page in a real browser: follow-ups, a changed index on disk, progress, deleted sources (issue 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_browser import CHROMIUM, app_url, ask, browser, open_citation, page, upload  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]
SCREENS = Path("/work/screens")


def _screenshot(page, name: str) -> None:
    if SCREENS.is_dir():  # the reviewer's folder, when it exists; the page fixture keeps its own copy
        page.screenshot(path=str(SCREENS / f"chat-{name}.png"), full_page=True)


def test_a_follow_up_shows_how_it_was_understood_and_can_be_asked_as_typed(page):
    first = ask(page, "“模力高地”什么时候正式投用？")
    assert "5月22日" in first
    follow = ask(page, "那它的面积呢？")
    bot = page.locator("#chat [data-testid='bot']").last
    # The topic is carried (模力高地), not the previous question's asked attribute (正式投用).
    assert "理解为：模力高地的面积呢？" in bot.inner_text()
    assert "投用" not in follow.split("理解为：", 1)[1].split("\n", 1)[0]
    assert follow.count("5月22日") == 0  # not the previous answer again
    bar = page.locator("#follow-up")
    bar.wait_for(state="visible")
    assert "模力高地的面积呢？" in bar.inner_text()
    _screenshot(page, "follow-up")
    # Correctable: put the understood question in the box to edit it ...
    page.click("#edit-resolved")
    page.wait_for_function("() => document.querySelector('#question textarea').value === '模力高地的面积呢？'")
    page.fill("#question textarea", "")
    # ... or ask the question as typed, which replaces the misread answer.
    bots = page.locator("#chat [data-testid='bot']").count()
    page.click("#ask-literal")
    page.wait_for_function(
        """() => { const bots = document.querySelectorAll("#chat [data-testid='bot']");
                   const last = bots[bots.length - 1];
                   return last && last.innerText.trim() !== '…' && !last.innerText.includes('理解为'); }""")
    assert page.locator("#chat [data-testid='bot']").count() == bots
    assert page.locator("#chat [data-testid='user']").last.inner_text().strip() == "那它的面积呢？"
    bar.wait_for(state="hidden")
