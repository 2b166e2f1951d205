"""The chat page in headless Chromium (Debian's package) driven by Playwright, against a live local server."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)"),
]

FERRY = "嘉陵江智能渡轮试运行\n\n2026年3月18日，重庆嘉陵江首艘智能渡轮“渝智一号”开始试运行。该渡轮可搭载乘客120人，最高航速每小时25公里。\n"
PAYLOAD_IMG = '<img src=x onerror="window.__pwned=1">'
PAYLOAD_SCRIPT = "<script>window.__pwned=1</script>"
HOSTILE = (
    f"南山云雾茶{PAYLOAD_SCRIPT}\n\n"
    f"南山云雾茶的采摘期从每年3月{PAYLOAD_IMG}开始，持续约四十天。"
    "模板${window.__pwned=1}与{{constructor.constructor('window.__pwned=1')()}}只是文字。\n"
)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, seeds_dir, seed_index_dir, embedder):
    """The page served on a free loopback port over copies of the seeds and the seed index."""
    from rag.app import serve
    from rag.kb import KnowledgeBase

    root = tmp_path_factory.mktemp("browser-kb")
    shutil.copytree(seeds_dir, root / "docs")
    shutil.copytree(seed_index_dir, root / "index")  # with its embedding cache: only new text is embedded
    kb = KnowledgeBase(root / "docs", root / "index", embedder)
    kb.load()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = serve(kb, "127.0.0.1", port, block=False, gold_path=ROOT / "eval" / "gold.jsonl", eval_dir=root / "reports")
    yield f"http://127.0.0.1:{port}"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser, app_url, tmp_path, request):
    """A fresh page on the app; a full-page screenshot is saved in the test's tmp dir afterwards."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(app_url)
    page.wait_for_selector("#question textarea")
    yield page
    page.screenshot(path=str(tmp_path / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def ask(page, question: str) -> str:
    """Ask in the chat tab; return the text of the final answer (after its citations became clickable)."""
    page.get_by_role("tab", name="对话").click()
    answers = page.locator("#chat [data-testid='bot']")
    before = answers.count()
    page.fill("#question textarea", question)
    page.press("#question textarea", "Enter")
    page.wait_for_function(
        """([n]) => { const bots = document.querySelectorAll("#chat [data-testid='bot']");
                      return bots.length > n && !bots[bots.length - 1].querySelector('.cite.pending')
                             && bots[bots.length - 1].innerText.trim() !== '…'; }""",
        arg=[before],
    )
    page.wait_for_function("() => !document.querySelector('#sources').innerText.includes('正在检索')")
    return answers.last.inner_text()


def open_citation(page, n: int = 1) -> str:
    """Click marker [n] of the last answer; return the sources panel's text once the passage is highlighted."""
    page.locator("#chat [data-testid='bot']").last.locator(f".cite:text-is('[{n}]')").click()
    page.wait_for_selector("#sources mark#focus-mark")
    return page.inner_text("#sources")


def upload(page, path: Path) -> str:
    """Upload one file in the knowledge-base tab; return the status message."""
    page.get_by_role("tab", name="知识库").click()
    # The tab renders lazily and the page's load event refreshes it: pick the file once it is settled.
    page.wait_for_function("() => (document.querySelector('#doc-table') || {innerText: ''}).innerText.includes('.txt')")
    page.locator("#upload input[type=file]").wait_for(state="attached")
    # A file picked while Gradio is still wiring the freshly rendered tab is sometimes dropped
    # (about one run in three, always the page's first upload); pick it again, as a person would.
    for attempt in range(3):
        page.set_input_files("#upload input[type=file]", str(path))
        try:
            page.wait_for_function("(name) => document.querySelector('#upload').innerText.includes(name)",
                                   arg=path.name, timeout=15_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    page.click("#upload-button")
    page.wait_for_function("() => /[✓✗]/.test(document.querySelector('#kb-status').innerText)")
    return page.inner_text("#kb-status")


def test_a_seed_question_is_answered_with_a_citation(page):
    answer = ask(page, "重庆人工智能产业基金规模有多大")
    assert "200亿元" in answer and "[1]" in answer
    assert page.locator("#chat [data-testid='bot'] .cite.cite-key-0-1").count() == 1
    assert "湾区启航·智创未来" in page.inner_text("#sources")  # the answer's sources are listed


def test_clicking_a_citation_highlights_the_passage_and_the_article(page):
    ask(page, "重庆人工智能产业基金规模有多大")
    panel = open_citation(page, 1)
    assert "湾区启航·智创未来" in panel and "2026-01-10" in panel and "000_c28048898250d032.txt" in panel
    assert "200亿元" in page.inner_text("#sources mark#focus-mark")
    # The reader's short answer leads the message in bold and is marked inside the highlighted sentence.
    assert "200亿" in page.locator("#chat [data-testid='bot'] strong.short-answer").last.inner_text()
    assert "200亿" in page.inner_text("#sources mark#focus-mark strong.answer-span")
    page.click("#view-article")
    mark = page.locator("#article mark#article-mark")
    mark.wait_for()
    assert "200亿元" in mark.inner_text()
    assert "200亿" in page.inner_text("#article mark#article-mark strong.answer-span")
    # The whole file is shown and scrolled so the highlighted span is inside the visible box.
    page.wait_for_function(
        """() => { const box = document.querySelector('#article .article').getBoundingClientRect();
                   const m = document.querySelector('#article-mark').getBoundingClientRect();
                   return m.top >= box.top - 1 && m.bottom <= box.bottom + 1 && m.top >= 0
                          && m.bottom <= window.innerHeight; }"""
    )
    assert "重庆人工智能湾区启动大会" in page.inner_text("#article .article")


def test_an_uploaded_document_is_indexed_and_cited(page, tmp_path):
    path = tmp_path / "ferry.txt"
    path.write_text(FERRY, encoding="utf-8")
    status = upload(page, path)
    # The system file picker offers only the kinds the knowledge base takes (it offered every file).
    page.wait_for_function("() => (document.querySelector('#upload input[type=file]') || {}).accept")
    accept = page.get_attribute("#upload input[type=file]", "accept").split(",")
    assert {".txt", ".md", ".pdf", ".docx", ".xlsx", ".png"} <= set(accept) and ".exe" not in accept
    assert "✓ ferry.txt 已加入知识库" in status
    assert "ferry.txt" in page.inner_text("#doc-table")
    answer = ask(page, "渝智一号渡轮可以搭载多少乘客？")
    assert "120人" in answer
    assert "ferry.txt" in open_citation(page, 1)


def test_a_new_page_lists_documents_added_by_other_sessions(page):
    # Runs after the upload test (tests run in file order on the module's one server).
    page.get_by_role("tab", name="知识库").click()
    page.wait_for_function("() => document.querySelector('#doc-table').innerText.includes('ferry.txt')")
    assert "6 篇文档" in page.inner_text(".app-sub")


def test_a_refused_upload_shows_why(page, tmp_path):
    path = tmp_path / "binary.txt"
    path.write_bytes(bytes(range(256)) * 20)
    assert "✗ binary.txt 不是可识别的文本" in upload(page, path)
    assert "binary.txt" not in page.inner_text("#doc-table")


def test_a_hostile_document_shows_as_text_and_runs_nothing(page, tmp_path):
    path = tmp_path / "tea.md"
    path.write_text(HOSTILE, encoding="utf-8")
    assert "✓ tea.md" in upload(page, path)
    answer = ask(page, "南山云雾茶的采摘期从什么时候开始？")
    assert PAYLOAD_IMG in answer  # the markup is shown as the text it is
    open_citation(page, 1)
    assert PAYLOAD_IMG in page.inner_text("#sources mark#focus-mark")
    page.click("#view-article")
    page.wait_for_selector("#article mark#article-mark")
    article = page.inner_text("#article .article")
    assert PAYLOAD_SCRIPT in article and "{{constructor.constructor" in article and "${window.__pwned=1}" in article
    question = ask(page, f"{PAYLOAD_IMG}**这是什么**？")
    assert page.locator("#chat [data-testid='user']").last.inner_text().startswith(PAYLOAD_IMG)
    assert question  # answered or abstained, either way as text
    page.wait_for_timeout(500)  # let any injected handler have fired
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img[src='x']").count() == 0
    # The question's own **…** stays text (the reader's short answers are bold by design).
    assert page.locator("#chat strong:has-text('这是什么'), #chat b:has-text('这是什么')").count() == 0
    assert "**这是什么**" in page.locator("#chat [data-testid='user']").last.inner_text()


# --- issue 14: one language, evaluation tab, related passages, accessibility, history ---------------

SCREENS = Path("/work/screens")


def shot(page, name: str) -> None:
    """Save a screenshot for the reviewer when /work/screens exists (it does on the dev machine)."""
    if SCREENS.is_dir():
        page.screenshot(path=str(SCREENS / f"page-{name}.png"), full_page=True)


def test_the_page_is_chinese_even_in_an_english_browser(browser, app_url, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(app_url)
        page.wait_for_selector("#question textarea")
        # An over-long question: the reason is Chinese (it was "the question is 2100 characters long…").
        ask(page, "重庆" * 1050)
        last = page.locator("#chat [data-testid='bot']").last.inner_text()
        assert "问题有 2100 个字符，上限是 2000" in last and "characters" not in last
        # An empty question: a toast titled in Chinese.
        page.fill("#question textarea", "")
        page.click("#send")
        page.wait_for_selector(".toast-body")
        toast = page.inner_text(".toast-body")
        assert "请先输入问题" in toast and toast.startswith("提示") and "Warning" not in toast
        page.get_by_role("tab", name="知识库").click()
        page.wait_for_function("() => /拖放|点击上传/.test((document.querySelector('#upload') || {innerText: ''}).innerText)")
        assert "Drop File" not in page.inner_text("#upload") and "Click to Upload" not in page.inner_text("#upload")
        shot(page, "upload-zh")
        bad = tmp_path / "bad.exe"
        bad.write_bytes(b"MZ\x90\x00")
        page.set_input_files("#upload input[type=file]", str(bad))
        page.wait_for_function("() => document.querySelector('#upload').innerText.includes('bad.exe')")
        page.click("#upload-button")
        page.wait_for_function("() => /[✓✗]/.test(document.querySelector('#kb-status').innerText)")
        assert "✗ 不支持的文件类型“.exe”" in page.inner_text("#kb-status")  # the knowledge base's own check, in Chinese
        assert "Invalid file type" not in page.inner_text("body")
    finally:
        context.close()


def test_evaluation_plots_show_whole_and_configs_stay_on_one_line(page):
    page.get_by_role("tab", name="评测").click()
    page.wait_for_selector("#eval-run")
    assert "几分钟" not in page.inner_text("body") and "完成后显示实测用时" in page.inner_text("body")
    page.locator("input[aria-label='只评前 N 题（0 = 全部）'], #component-0 input[type=number]").first.wait_for()
    number = page.get_by_label("只评前 N 题（0 = 全部）")
    number.fill("3")
    number.press("Tab")
    page.click("#eval-run")
    page.wait_for_function("() => document.querySelector('#eval-status').innerText.includes('完成')", timeout=300_000)
    assert "用时" in page.inner_text("#eval-status")  # the measured time, not a guess
    page.wait_for_function("() => document.querySelectorAll('#eval-plots img').length >= 2")
    page.wait_for_function("() => [...document.querySelectorAll('#eval-plots img')].every((i) => i.complete && i.naturalWidth)")
    whole = page.evaluate(
        """() => [...document.querySelectorAll('#eval-plots img')].map((img) => {
               const box = img.getBoundingClientRect(), gallery = document.querySelector('#eval-plots').getBoundingClientRect();
               // the drawn picture: object-fit contain keeps its aspect inside the element's box
               const fits = getComputedStyle(img).objectFit === 'contain';
               return fits && box.bottom <= gallery.bottom + 1 && box.height > 50; })"""
    )
    assert whole and all(whole), whole
    page.wait_for_function("() => document.querySelector('#eval-questions').innerText.includes('hybrid/reader')")
    lines = page.evaluate(
        """() => { const walk = document.createTreeWalker(document.querySelector('#eval-questions'), NodeFilter.SHOW_TEXT);
                   let cell = null;
                   while (walk.nextNode()) if (walk.currentNode.data.trim() === 'hybrid/reader') { cell = walk.currentNode; break; }
                   const range = document.createRange(); range.selectNodeContents(cell);
                   return new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top))).size; }"""
    )
    assert lines == 1
    shot(page, "eval")


def test_related_passages_stay_reachable_and_open_whole(page):
    answer = ask(page, "明天重庆的天气怎么样？")
    assert "可能相关" in answer
    cards = page.locator("#sources .card.clickable")
    assert cards.count() == 3
    shot(page, "related")
    first_snippet = cards.first.inner_text()
    cards.first.click()
    page.wait_for_selector("#sources mark#focus-mark")
    assert "…" not in page.inner_text("#sources mark#focus-mark")  # the whole passage
    assert len(page.inner_text("#sources mark#focus-mark")) >= len(first_snippet.split("\n")[-1].rstrip("…（点击查看完整段落）"))
    others = page.locator("#sources .card.clickable")
    assert others.count() == 2  # the other two are still listed
    others.first.click()
    page.wait_for_function("() => document.querySelector('#sources .sources-head').innerText.includes('2')")
    assert page.locator("#sources .card.clickable").count() == 2  # and passage 1 can be reopened
    assert page.locator("#sources .card.clickable.cite-key-0-p1").count() == 1
    shot(page, "related-open")


def test_citations_are_labelled_and_reachable_by_keyboard(page):
    ask(page, "重庆人工智能产业基金规模有多大")
    message = page.locator("#chat [data-testid='bot'] [aria-label], #chat [data-testid='bot'][aria-label]").last
    page.wait_for_function("""() => [...document.querySelectorAll("#chat [aria-label]")]
                                      .some((el) => el.getAttribute('aria-label').startsWith('回答：'))""")
    labels = page.evaluate("() => [...document.querySelectorAll('#chat [aria-label]')].map((el) => el.getAttribute('aria-label'))")
    assert labels and not any("<" in label or "class=" in label for label in labels), labels
    assert any(label.startswith("回答：") and "引用 1：湾区启航·智创未来" in label for label in labels), labels
    assert message.count() >= 1
    cite = page.locator("#chat [data-testid='bot'] .cite").first
    assert cite.get_attribute("aria-label") == "引用 1：湾区启航·智创未来"
    page.focus("#question textarea")
    for _ in range(80):  # Tab through the page until the citation has the focus
        page.keyboard.press("Shift+Tab")
        if page.evaluate("() => document.activeElement.classList.contains('cite')"):
            break
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == "引用 1：湾区启航·智创未来"
    page.keyboard.press("Enter")
    page.wait_for_selector("#sources mark#focus-mark")
    assert "200亿元" in page.inner_text("#sources mark#focus-mark")


def test_conversations_survive_a_reload_until_the_history_is_cleared(page):
    ask(page, "重庆人工智能产业基金规模有多大")
    page.wait_for_timeout(500)  # let the browser store the conversation
    page.reload()
    page.wait_for_selector("#question textarea")
    assert page.locator("#chat [data-testid='bot']").count() == 0  # a fresh page
    page.click("#history button, #history .label-wrap")
    page.click("#history-choice input")
    option = page.get_by_role("option").filter(has_text="重庆人工智能产业基金规模有多大")
    option.first.click()
    page.click("#history-restore")
    page.wait_for_function("() => document.querySelectorAll(\"#chat [data-testid='bot']\").length === 1")
    assert "200亿元" in page.locator("#chat [data-testid='bot']").last.inner_text()
    assert "重庆人工智能产业基金规模有多大" in page.locator("#chat [data-testid='user']").last.inner_text()
    # Its sources came back with it: the citation opens the passage, as before the reload.
    page.locator("#chat [data-testid='bot'] .cite").first.click()
    page.wait_for_selector("#sources mark#focus-mark")
    assert "200亿元" in page.inner_text("#sources mark#focus-mark")
    shot(page, "history")
    page.click("#history-clear")
    page.wait_for_function("() => document.querySelector('#history-status').innerText.includes('已清除')")
    page.reload()
    page.wait_for_selector("#question textarea")
    page.click("#history button, #history .label-wrap")
    page.click("#history-choice input")
    page.wait_for_timeout(300)
    assert page.get_by_role("option").filter(has_text="重庆人工智能产业基金规模有多大").count() == 0
