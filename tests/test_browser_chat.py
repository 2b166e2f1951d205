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


def _docs_dir(page) -> Path:
    """The documents folder of the server behind `page`, as its header names it."""
    return Path(page.inner_text(".app-sub").split("文档目录", 1)[1].strip())


LAB = "\n渝州量子实验室于2026年8月8日揭牌，首任主任是林晓舟。\n"


def test_an_edited_document_is_noticed_and_one_click_updates_the_index(page):
    docs = _docs_dir(page)
    edited = sorted(docs.glob("004_*.txt"))[0]
    edited.write_text(edited.read_text(encoding="utf-8") + LAB, encoding="utf-8")
    before = ask(page, "渝州量子实验室的首任主任是谁？")  # answered from the index as loaded
    assert "林晓舟" not in before
    notice = page.locator("#index-notice")
    notice.wait_for(state="visible")
    assert f"已修改 {edited.name}" in notice.inner_text() and "回答仍基于原来的文档" in notice.inner_text()
    _screenshot(page, "docs-changed")
    page.click("#index-update")
    notice.wait_for(state="hidden")
    assert "林晓舟" in ask(page, "渝州量子实验室的首任主任是谁？")


def test_a_build_by_another_process_is_switched_to_and_said(page, embedder):
    from rag.index import build_index

    docs = _docs_dir(page)
    (docs / "ferry2.txt").write_text(
        "嘉陵江智能渡轮试运行\n\n2026年3月18日，重庆嘉陵江首艘智能渡轮“渝智二号”开始试运行。该渡轮可搭载乘客150人。\n",
        encoding="utf-8")
    build_index(docs, docs.parent / "index", embedder)  # what `rag index` in another terminal does
    page.reload()
    page.wait_for_selector("#question textarea")
    notice = page.locator("#index-notice")
    notice.wait_for(state="visible")
    # On a loaded machine the page's 15-s poll can see ferry2.txt before the build is done and show
    # "documents changed" first (a CI run under load did); the switch must follow by the next poll.
    page.wait_for_function("() => document.querySelector('#index-notice').innerText.includes('已换用磁盘上更新的索引')",
                           timeout=40_000)
    assert "6 篇文档" in notice.inner_text()
    page.wait_for_function("() => document.querySelector('.app-sub').innerText.includes('6 篇文档')")
    assert page.locator("#index-update").is_hidden()  # the new build matches the folder: nothing to update
    _screenshot(page, "switched")
    assert "150人" in ask(page, "渝智二号渡轮可以搭载多少乘客？")


def test_an_old_citation_into_a_deleted_file_says_it_was_deleted(page):
    assert "150人" in ask(page, "渝智二号渡轮可以搭载多少乘客？")
    docs = _docs_dir(page)
    page.get_by_role("tab", name="知识库").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete-choice input").fill("ferry2.txt")
    page.keyboard.press("Enter")
    page.click("#delete-button")
    page.wait_for_function("() => document.querySelector('#kb-status').innerText.includes('已删除 ferry2.txt')")
    page.locator("#index-notice").wait_for(state="hidden")  # the switch it reported is no longer the live build
    assert not (docs / "ferry2.txt").exists()
    page.get_by_role("tab", name="对话").click()
    panel = open_citation(page, 1)
    assert "这篇文档（ferry2.txt）已从知识库删除" in panel and "150人" in panel
    page.click("#view-article")
    page.wait_for_selector("#article mark#article-mark")
    assert "已从知识库删除" in page.inner_text("#article")
    _screenshot(page, "deleted-source")


def test_an_upload_shows_progress_that_advances_toward_the_true_total(page, tmp_path, seeds_dir):
    import random
    import re

    # A new arrangement of the seeds' sentences: a few hundred texts the cache has never seen.
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(seeds_dir.glob("*.txt")))
    sentences = [s + "。" for s in text.replace("\n", "").split("。") if s]
    random.Random(1).shuffle(sentences)
    path = tmp_path / "shuffled.txt"
    path.write_text("重排的资料\n\n" + "\n".join("".join(sentences[i : i + 3]).replace("重庆", "渝都")
                                                  for i in range(0, len(sentences), 3)), encoding="utf-8")
    page.get_by_role("tab", name="知识库").click()
    page.wait_for_selector("#upload-button")
    # Every progress text the page renders is recorded, however briefly it is shown.
    page.evaluate("""() => { window.__progress = new Set();
        new MutationObserver(() => document.querySelectorAll('.progress-text, .meta-text, .progress-level-inner').forEach(
            (e) => window.__progress.add(e.innerText))).observe(document.body, {subtree: true, childList: true,
                                                                               characterData: true}); }""")
    status = upload(page, path)
    embedded = int(re.search(r"新嵌入 (\d+) 段", status).group(1))
    seen = " | ".join(page.evaluate("() => [...window.__progress]"))
    assert "嵌入新内容（段落与句子）" in seen
    counts = {(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+) 条", seen)}
    assert {total for _, total in counts} == {embedded}  # the texts to embed, not the corpus
    assert any(0 < done < embedded for done, _ in counts)  # it moved before the end
