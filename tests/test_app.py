"""The chat page without a browser: escaping, rendering, the handlers, `rag chat`, and its API."""

from __future__ import annotations

import html
import re
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from rag.answer import Answerer
from rag.app.chat import EXAMPLE_QUESTIONS
from rag.app.eval_tab import filter_questions, question_rows, summary_rows
from rag.app.layout import ChatApp
from rag.app.render import (
    answer_message,
    article_view,
    chat_messages,
    copy_text,
    esc,
    focused_citation,
    md_text,
    sources_overview,
)
from rag.app.session import Turn
from rag.app.uploads import discard_upload
from rag.kb import KnowledgeBase
from rag.types import Answer, AnswerMode, Mode

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "重庆人工智能产业基金规模有多大"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(kb: KnowledgeBase, reports: Path, **options):
    """Serve the page over `kb` on a free loopback port (ChatApp `options` passed on); yield its URL."""
    from rag.app import serve

    port = free_port()
    demo = serve(kb, "127.0.0.1", port, block=False, gold_path=ROOT / "eval" / "gold.jsonl", eval_dir=reports,
                 **options)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def seed_kb(tmp_path_factory, seeds_dir, seed_index_dir, embedder) -> KnowledgeBase:
    """A knowledge base over private copies of the seeds and the seed index (tests may change it)."""
    root = tmp_path_factory.mktemp("app-kb")
    shutil.copytree(seeds_dir, root / "docs")
    shutil.copytree(seed_index_dir, root / "index")
    kb = KnowledgeBase(root / "docs", root / "index", embedder)
    assert kb.load() == []
    return kb


@pytest.fixture(scope="module")
def seed_answer(seed_index) -> tuple[Turn, Answer]:
    answer = Answerer(seed_index).run(QUESTION)
    documents = {c.doc_id: seed_index.documents[c.doc_id] for c in answer.citations}
    return Turn(QUESTION, answer, documents=documents), answer


def fake_answer(text: str, **changes) -> Answer:
    fields = dict(question="q", text=text, citations=(), passages=(), abstained=False, mode=AnswerMode.EXTRACTIVE,
                  retrieval_mode=Mode.HYBRID)
    fields.update(changes)
    return Answer(**fields)


# --- escaping ----------------------------------------------------------------------------------


def test_esc_makes_markup_and_template_syntax_inert():
    assert esc('<img src=x onerror="a()">${x}{{y}}') == (
        "&lt;img src=x onerror=&quot;a()&quot;&gt;&#36;&#123;x&#125;&#123;&#123;y&#125;&#125;"
    )


def test_md_text_leaves_no_markdown_or_html_syntax():
    raw = "<script>alert(1)</script> **粗体** [链接](http://x.y) `code` # 标题\n    缩进\n1. 列表 $x$"
    out = md_text(raw)
    assert not re.search(r"[<>*\[\]()`#$]", out.replace("&#", ""))
    assert html.unescape(out) == "<script>alert(1)</script> **粗体** [链接](http://x.y) `code` # 标题\n缩进\n1. 列表 $x$"


# --- rendering ---------------------------------------------------------------------------------


def test_answer_markers_become_clickable_only_for_real_citations(seed_answer):
    _, answer = seed_answer
    text = answer_message(answer, 3)
    assert '<span class="cite cite-key-3-1" role="button"' in text
    forged = answer_message(fake_answer("资料<b>说</b>了[7]"), 0)
    assert "cite-key" not in forged and "<b>" not in forged and "&#91;7&#93;" in forged


def test_abstained_answer_points_to_related_passages(seed_answer):
    _, answer = seed_answer
    abstained = fake_answer("资料中没有找到相关信息。", abstained=True, passages=answer.passages)
    assert "可能相关的段落" in answer_message(abstained, 0)
    panel = sources_overview(Turn("q", abstained), 0)
    assert "可能相关的段落" in panel and "cite-key-0-p1" in panel


def test_chat_messages_pair_questions_and_answers(seed_answer):
    turn, _ = seed_answer
    failed = Turn("<b>坏问题</b>", error="这个问题无法处理")
    messages = chat_messages([turn, failed], pending=("下一个问题", "部分回答[1]"))
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert messages[2]["content"] == md_text("<b>坏问题</b>")
    assert 'class="cite pending"' in messages[5]["content"]


def test_focused_citation_highlights_the_supporting_sentence(seed_answer):
    turn, answer = seed_answer
    panel, focus = focused_citation(turn, 0, 1)
    citation = answer.citations[0]
    mark = re.search(r'<mark id="focus-mark">(.*?)</mark>', panel).group(1)
    assert html.unescape(re.sub(r"<[^>]+>", "", mark)) == citation.sentence and "200亿元" in mark
    # The reader's short answer is marked inside the sentence.
    inner = re.search(r'<strong class="answer-span">(.*?)</strong>', mark).group(1)
    assert html.unescape(inner) == answer.short and "200亿" in inner
    assert focus.document.file == citation.file == "000_c28048898250d032.txt"
    for part in (citation.title, citation.date, citation.file):
        assert esc(part) in panel


def test_the_short_answer_leads_the_message_in_bold(seed_answer):
    _, answer = seed_answer
    message = answer_message(answer, 0)
    assert message.startswith(f'<strong class="short-answer">{answer.short}</strong><br>')
    assert "cite-key-0-1" in message


def test_article_view_highlights_the_span_in_the_original_file(seed_answer):
    turn, answer = seed_answer
    _, focus = focused_citation(turn, 0, 1)
    view = article_view(focus)
    mark = re.search(r'<mark id="article-mark">(.*?)</mark>', view, re.S).group(1)
    citation = answer.citations[0]
    assert html.unescape(re.sub(r"<[^>]+>", "", mark)) == focus.document.original[citation.orig_start:citation.orig_end]
    inner = re.search(r'<strong class="answer-span">(.*?)</strong>', mark, re.S).group(1)
    assert html.unescape(inner) == focus.document.original[citation.answer_orig_start:citation.answer_orig_end]
    before = view.split('<mark id="article-mark">')[0].split('<div class="article">')[1]
    assert html.unescape(before) == focus.document.original[: citation.orig_start]


def test_copy_text_lists_the_sources(seed_answer):
    turn, answer = seed_answer
    text = copy_text(turn)
    assert text.startswith(answer.text) and "[1] 湾区启航·智创未来（000_c28048898250d032.txt）：" in text


# --- handlers ----------------------------------------------------------------------------------


def test_respond_streams_then_stores_the_turn(seed_kb):
    app = ChatApp(seed_kb)
    updates = list(app.chat.respond(QUESTION, [], "hybrid", 5, "extractive"))
    # The question shown, then the whole answer: an offline answer is complete before its first
    # piece, so the page gets it in one update (as the README says), never a half-shown sentence.
    assert len(updates) == 2 and "…" == updates[0][1][-1]["content"]
    _, chat, turns, sources, copied = updates[-1]
    assert len(turns) == 1 and "200亿元" in turns[0].answer.text
    assert "cite-key-0-1" in chat[-1]["content"] and "本回答的出处" in sources and "200亿元" in copied
    follow = list(app.chat.respond("那它鼓励哪些资本参与？", turns, "hybrid", 5, "extractive"))[-1][2]
    assert len(follow) == 2 and follow[1].answer.resolved_question != follow[1].question


def test_warm_loads_what_a_first_question_waited_seconds_for(seed_kb):
    # Warmed with the query encoder alone, the page's first Chinese question waited ~3 s for the
    # reader's weights, its first English one ~1.4 s for the glossary, its first "who" one ~1.5 s
    # for jieba's tagger.
    from rag import gloss
    from rag import text as textmod

    textmod.names.cache_clear()
    textmod._tagger.cache_clear()
    gloss._glossaries.pop(seed_kb.index.keywords, None)
    app = ChatApp(seed_kb)
    app.state.warm()
    assert app.state.reader.loaded
    assert textmod._tagger.cache_info().currsize == 1
    assert gloss.cached_glossary(seed_kb.index.keywords) is not None


def test_respond_reports_bad_questions_in_the_chat(seed_kb):
    app = ChatApp(seed_kb)
    turns = list(app.chat.respond("长" * 2001, [], "hybrid", 5, "extractive"))[-1][2]
    assert turns[0].answer is None and "无法处理" in turns[0].error


def test_open_source_parses_keys_and_ignores_junk(seed_kb, seed_answer):
    app = ChatApp(seed_kb)
    turn, _ = seed_answer
    panel, focus, button, _ = app.chat.open_source("cite-key-0-1", [turn])
    assert "<mark" in panel and focus is not None and button["visible"] is True
    for junk in ("cite-key-5-1", "cite-key-0-9", "<script>", ""):
        _, focus, _, _ = app.chat.open_source(junk, [turn])
        assert focus is None


def test_example_questions_are_all_answered_on_the_seeds(seed_kb):
    assert ChatApp(seed_kb).chat.examples() == list(EXAMPLE_QUESTIONS)


def test_evaluation_tables(seed_index):
    from rag.evaluation import run_eval

    report = run_eval(seed_index, ROOT / "eval" / "gold.jsonl", modes=["hybrid", "bm25"], k=5, limit=6)
    summary = summary_rows(report)
    assert [r[0] for r in summary] == ["hybrid/reader", "bm25/reader"]
    assert all(isinstance(v, float) or v == "–" for r in summary for v in r[1:])
    rows = question_rows(report)
    assert len(rows) == 12 and {r[1] for r in rows} == {"hybrid/reader", "bm25/reader"}
    misses = filter_questions(rows, True, "bm25/reader")
    assert all(r[5].startswith("✗") and r[1] == "bm25/reader" for r in misses)
    assert len(filter_questions(rows, False, "全部配置")) == 12


def test_run_evaluation_from_the_page_writes_a_report_with_plots_under_rag_home(seed_kb, tmp_path, monkeypatch):
    """The 评测 tab finds the gold set beside the package from any folder and reports into RAG_HOME/reports."""
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)  # not the checkout: eval/gold.jsonl is not under the working directory
    in_checkout = set((ROOT / "eval").rglob("*"))
    app = ChatApp(seed_kb)
    assert app.evaluation.evaluation_available()
    status, summary, images, rows, _ = app.evaluation.run_evaluation(["hybrid"], ["extractive"], 5, 4,
                                                                     progress=lambda *a, **k: None)
    assert "4 题" in html.unescape(status) and len(summary) == 1 and len(rows) == 4
    assert len(images) == 2 and images[0][0].size[0] > 100
    reports = list((tmp_path / "home" / "reports" / "eval").glob("*/report.md"))
    assert len(reports) == 1 and f"{reports[0].parent}/report.md" in html.unescape(status)
    assert set((ROOT / "eval").rglob("*")) == in_checkout and not (tmp_path / "eval").exists()


def test_knowledge_base_handlers_report_each_file(docs_copy, index_copy, embedder, tmp_path):
    kb = KnowledgeBase(docs_copy, index_copy, embedder)
    kb.load()
    app = ChatApp(kb)
    good, bad = tmp_path / "ferry.txt", tmp_path / "virus.exe"
    good.write_text("嘉陵江智能渡轮试运行\n\n渝智一号渡轮可搭载乘客120人。\n", encoding="utf-8")
    bad.write_bytes(b"MZ")
    quiet = lambda *args, **kwargs: None  # noqa: E731 - stands in for gr.Progress
    table, choice, status, header, files = app.knowledge.upload([str(good), str(bad)], progress=quiet)
    status = html.unescape(status)
    assert "✓ ferry.txt 已加入知识库" in status and "✗ 不支持的文件类型“.exe”" in status
    assert "ferry.txt" in [row[1] for row in table] and "ferry.txt" in choice["choices"]
    assert "6 篇文档" in header and files is None
    assert "未删除任何文档" in html.unescape(app.knowledge.delete(None, progress=quiet)[2])
    assert "✓ 已删除 ferry.txt" in html.unescape(app.knowledge.delete("ferry.txt", progress=quiet)[2])
    assert "✓ 索引已重建：5 篇文档" in html.unescape(app.knowledge.rebuild(progress=quiet)[2])


def _saved_upload(upload_dir: Path, name: str, data: bytes) -> Path:
    """Place a file where Gradio saves an upload: <upload folder>/<hash>/<name>."""
    import hashlib

    path = upload_dir / hashlib.sha256(data).hexdigest() / name
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


def test_uploads_leave_nothing_in_gradios_upload_folder(docs_copy, index_copy, embedder, tmp_path, monkeypatch):
    upload_dir = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(upload_dir))
    kb = KnowledgeBase(docs_copy, index_copy, embedder)
    kb.load()
    app = ChatApp(kb)
    ferry = "嘉陵江智能渡轮试运行\n\n渝智一号渡轮可搭载乘客120人。\n".encode("utf-8")
    accepted = _saved_upload(upload_dir, "ferry.txt", ferry)
    refused = [_saved_upload(upload_dir, "virus.exe", b"MZ"),  # wrong type
               _saved_upload(upload_dir, "big.txt", b"a" * (5 * 1024 * 1024 + 1)),  # too large
               _saved_upload(upload_dir, "binary.txt", bytes(range(256)) * 20),  # not text
               _saved_upload(upload_dir, "copy.txt", (docs_copy / "000_c28048898250d032.txt").read_bytes())]  # duplicate
    elsewhere = tmp_path / "mine.exe"  # not Gradio's: never removed
    elsewhere.write_bytes(b"MZ")
    quiet = lambda *args, **kwargs: None  # noqa: E731 - stands in for gr.Progress
    status = html.unescape(app.knowledge.upload([str(p) for p in [accepted, *refused, elsewhere]], progress=quiet)[2])
    assert "✓ ferry.txt 已加入知识库" in status and status.count("✗") == 5
    assert (docs_copy / "ferry.txt").read_bytes() == ferry  # stored in the documents folder first
    assert [p for p in upload_dir.rglob("*") if p.is_file()] == []  # refused or stored: all removed
    assert elsewhere.exists()


def test_discard_upload_touches_only_files_inside_the_upload_folder(tmp_path):
    upload_dir, outside = tmp_path / "gradio", tmp_path / "docs"
    outside.mkdir()
    keep = outside / "a.txt"
    keep.write_text("留下", encoding="utf-8")
    kept_twin = _saved_upload(upload_dir, "b.txt", b"same")  # Gradio names folders by content
    twin = kept_twin.with_name("c.txt")
    twin.write_bytes(b"same")
    sneaky = upload_dir / "x" / "link.txt"
    sneaky.parent.mkdir()
    sneaky.symlink_to(keep)
    assert not discard_upload(keep, upload_dir) and keep.exists()
    assert not discard_upload(upload_dir / "x" / ".." / ".." / "docs" / "a.txt", upload_dir) and keep.exists()
    assert not discard_upload(sneaky, upload_dir) and keep.exists()  # its target is outside
    assert not discard_upload(upload_dir, upload_dir) and upload_dir.is_dir()
    assert discard_upload(twin, upload_dir) and not twin.exists()
    assert kept_twin.exists()  # the folder stays while another file is in it
    assert discard_upload(kept_twin, upload_dir) and not kept_twin.parent.exists()


def test_the_add_document_api_reads_only_files_uploaded_to_the_server(docs_copy, index_copy, embedder, tmp_path,
                                                                        monkeypatch):
    import gradio as gr

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    kb = KnowledgeBase(docs_copy, index_copy, embedder)
    kb.load()
    app = ChatApp(kb)
    secret = tmp_path / "secret.txt"  # any file of the machine a client might name
    secret.write_text("内部资料：服务器口令是 hunter2。\n", encoding="utf-8")
    sneaky = _saved_upload(tmp_path / "gradio", "link.txt", b"")
    sneaky.unlink()
    sneaky.symlink_to(secret)
    for path in (secret, tmp_path / "gradio" / ".." / "secret.txt", sneaky):
        with pytest.raises(gr.Error, match="只接受先上传到本服务的文件"):
            app.api.add_document({"path": str(path), "orig_name": "secret.txt"})
    assert not any("hunter2" in p.read_text(encoding="utf-8", errors="replace") for p in docs_copy.iterdir())
    assert secret.exists()


# --- rag chat ----------------------------------------------------------------------------------


@pytest.fixture()
def served(monkeypatch):
    calls = []
    monkeypatch.setattr("rag.app.serve", lambda kb, host, port, **_: calls.append((kb, host, port)))
    return calls


def test_rag_chat_builds_a_missing_index_then_serves(docs_copy, index_copy, served, capsys):
    from rag.cli import main

    (index_copy / "CURRENT").unlink()  # no live build; the embedding cache stays, so the build is quick
    assert main(["chat", "--docs", str(docs_copy), "--index", str(index_copy), "--port", "7999"]) == 0
    kb, host, port = served[0]
    assert (host, port) == ("127.0.0.1", 7999) and len(kb.index.documents) == 5
    assert "building it" in capsys.readouterr().err


def test_rag_chat_without_folders_serves_a_copy_of_the_seeds_from_the_data_folder(tmp_path, seed_index_dir, served,
                                                                                  monkeypatch, capsys):
    import subprocess

    from rag.cli import main

    home = tmp_path / "home"
    monkeypatch.setenv("RAG_HOME", str(home))
    monkeypatch.delenv("RAG_DOCS", raising=False)
    monkeypatch.delenv("RAG_INDEX", raising=False)
    monkeypatch.chdir(ROOT)  # where the old defaults, seeds/ and index/, pointed
    shutil.copytree(seed_index_dir / "cache", home / "index" / "cache")  # only to skip embedding again
    seeds = {p.name: p.stat().st_mtime_ns for p in (ROOT / "seeds").iterdir()}
    status = subprocess.run(["git", "status", "--porcelain", "--ignored", "seeds", "index"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    assert main(["chat"]) == 0
    kb = served[0][0]
    assert (kb.docs_dir, kb.index_dir) == (home / "documents", home / "index") and len(kb.index.documents) == 5
    # Uploads and deletes go to the data folder: the checkout's seeds stay as they are.
    assert sorted(p.name for p in kb.docs_dir.iterdir()) == sorted(seeds)
    assert {p.name: p.stat().st_mtime_ns for p in (ROOT / "seeds").iterdir()} == seeds
    assert subprocess.run(["git", "status", "--porcelain", "--ignored", "seeds", "index"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout == status
    assert "新建知识库" in capsys.readouterr().err


def test_rag_chat_rebuilds_a_broken_index_without_a_terminal(docs_copy, index_copy, served, capsys):
    from rag.cli import main

    (index_copy / "CURRENT").write_text("no-such-build\n", encoding="utf-8")
    assert main(["chat", "--docs", str(docs_copy), "--index", str(index_copy)]) == 0
    err = capsys.readouterr().err
    assert "the index cannot be used" in err and "rebuilding it" in err
    assert len(served[0][0].index.documents) == 5


def test_rag_chat_serves_a_stale_index_at_once_and_updates_it_in_the_background(docs_copy, index_copy, monkeypatch,
                                                                                 capsys):
    import threading

    from rag.cli import main

    page_up, seen = threading.Event(), []

    def serve(kb, host, port, **_):
        seen.append((kb, "ferry" in kb.index.documents))
        page_up.set()

    rebuild = KnowledgeBase.rebuild

    def held_rebuild(self, progress=None):
        # The update may only finish once the page is up; an update run before serving waits here in vain.
        page_up.wait(30)
        return rebuild(self, progress)

    monkeypatch.setattr("rag.app.serve", serve)
    monkeypatch.setattr(KnowledgeBase, "rebuild", held_rebuild)
    (docs_copy / "ferry.txt").write_text("嘉陵江智能渡轮试运行\n\n渝智一号渡轮可搭载乘客120人。\n", encoding="utf-8")
    assert main(["chat", "--docs", str(docs_copy), "--index", str(index_copy)]) == 0
    kb, had_ferry = seen[0]
    assert not had_ferry  # the previous index was served at once
    kb.updater.join(600)
    assert "ferry" in kb.index.documents  # and swapped for the updated one when its build was done
    err = capsys.readouterr().err
    assert "stale" in err and "updated in the background" in err and "index updated: 6 documents" in err


# --- the /ask API --------------------------------------------------------------------------------


def test_ask_endpoint_answers_through_gradio_client(seed_kb, tmp_path):
    from gradio_client import Client

    with running_app(seed_kb, tmp_path / "reports") as url:
        client = Client(url, verbose=False)
        answer = client.predict(QUESTION, api_name="/ask")
        assert "200亿元" in answer["text"] and not answer["abstained"]
        assert answer["citations"][0]["file"] == "000_c28048898250d032.txt"
        assert answer["retrieval_mode"] == "hybrid" and answer["mode"] == "reader"
        assert "200亿" in answer["short"]
        cited = answer["citations"][0]
        assert cited["orig_start"] <= cited["answer_orig_start"] < cited["answer_orig_end"] <= cited["orig_end"]
        bm25 = client.predict(QUESTION, "bm25", 3, "extractive", api_name="/ask")
        assert bm25["retrieval_mode"] == "bm25" and len(bm25["passages"]) <= 3
        with pytest.raises(Exception, match="empty"):
            client.predict("   ", api_name="/ask")
        api = client.view_api(print_info=False, return_format="dict")
        # The page's own events are private; the knowledge base has its own endpoints.
        assert sorted(api["named_endpoints"]) == ["/add_document", "/ask", "/delete_document", "/documents"]


def test_knowledge_base_endpoints_upload_refuse_and_delete(docs_copy, index_copy, embedder, tmp_path, monkeypatch):
    from gradio_client import Client, handle_file

    upload_dir = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(upload_dir))
    kb = KnowledgeBase(docs_copy, index_copy, embedder)
    kb.load()
    ferry, copy, bad = tmp_path / "ferry.txt", tmp_path / "ferry-again.txt", tmp_path / "virus.exe"
    for path in (ferry, copy):
        path.write_text("嘉陵江智能渡轮试运行\n\n渝智一号渡轮可搭载乘客120人。\n", encoding="utf-8")
    bad.write_bytes(b"MZ")
    with running_app(kb, tmp_path / "reports") as url:
        client = Client(url, verbose=False, analytics_enabled=False)
        assert len(client.predict(api_name="/documents")) == 5
        added = client.predict(handle_file(str(ferry)), api_name="/add_document")
        assert added["file"] == "ferry.txt" and added["documents"] == 6 and added["embedded"] >= 1
        with pytest.raises(Exception, match="与已有文档 ferry.txt 内容相同"):
            client.predict(handle_file(str(copy)), api_name="/add_document")
        with pytest.raises(Exception, match="不支持的文件类型"):
            client.predict(handle_file(str(bad)), api_name="/add_document")
        rows = client.predict(api_name="/documents")
        assert {"title": "嘉陵江智能渡轮试运行", "file": "ferry.txt"}.items() <= next(
            r for r in rows if r["file"] == "ferry.txt").items()
        with pytest.raises(Exception, match="知识库中没有文件"):
            client.predict("no-such.txt", api_name="/delete_document")
        assert client.predict("ferry.txt", api_name="/delete_document")["documents"] == 5
        assert len(client.predict(api_name="/documents")) == 5 and not (docs_copy / "ferry.txt").exists()
    # Accepted or refused, Gradio's saved copies are gone (its folder also holds files of its own).
    assert [p.name for p in upload_dir.rglob("*") if p.name in {ferry.name, copy.name, bad.name}] == []


def test_the_server_serves_no_documents_or_index_files(seed_kb, tmp_path):
    import urllib.error
    import urllib.request

    document = next(seed_kb.docs_dir.glob("*.txt")).resolve()
    with running_app(seed_kb, tmp_path / "reports") as url:
        for path in (document, seed_kb.index_dir.resolve() / "CURRENT", ROOT / "README.md", Path("/etc/passwd")):
            with pytest.raises(urllib.error.HTTPError) as failure:
                urllib.request.urlopen(f"{url}/gradio_api/file={path}")
            assert failure.value.code == 403


def test_ask_refuses_a_k_or_mode_it_cannot_use_with_a_clear_message(seed_kb):
    import gradio as gr

    app = ChatApp(seed_kb)
    for bad in (None, 1.5, "3", 0, 51, True):
        with pytest.raises(gr.Error, match="k must be a whole number of passages from 1 to 50"):
            app.api.ask(QUESTION, "hybrid", bad)
    with pytest.raises(gr.Error, match="mode must be one of hybrid, dense, bm25, got None"):
        app.api.ask(QUESTION, None, 3)
    assert len(app.api.ask(QUESTION, "bm25", 3.0)["passages"]) <= 3


def test_refused_api_requests_log_one_line_not_a_traceback(seed_kb, tmp_path, capfd, caplog):
    from gradio_client import Client

    with running_app(seed_kb, tmp_path / "reports") as url:
        client = Client(url, verbose=False, analytics_enabled=False)
        capfd.readouterr()
        with pytest.raises(Exception, match="the question is empty"):
            client.predict("", api_name="/ask")
        with pytest.raises(Exception, match="k must be a whole number of passages from 1 to 50, got 99"):
            client.predict(QUESTION, "hybrid", 99, api_name="/ask")
        with pytest.raises(Exception, match="知识库中没有文件"):
            client.predict("no-such.txt", api_name="/delete_document")
    printed = capfd.readouterr()
    assert "Traceback" not in printed.err + printed.out
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused: ")]
    assert len(refused) == 3 and "got 99" in refused[1]


# --- slow or failing LLM servers -------------------------------------------------------------------


def _llm_settings(url: str, timeout: float):
    from rag.config import LLMConfig, Settings

    return Settings(llm=LLMConfig(base_url=url, model="fake-model", timeout=timeout))


def test_chat_drops_the_partial_llm_answer_when_it_falls_back(seed_kb):
    from tests.fake_llm import FakeChatServer

    # Half an answer, then keep-alive pings until the deadline: the extractive answer replaces it.
    with FakeChatServer(lambda r: (200, "大模型的半句回答", 0.0), ping_every=0.2, hang=30.0) as server:
        app = ChatApp(seed_kb, settings=_llm_settings(server.url, 1.5))
        updates = list(app.chat.respond(QUESTION, [], "hybrid", 5, "llm"))
    streamed = [u[1][-1]["content"] for u in updates[:-1] if isinstance(u[1], list)]
    assert any("半句回答" in m for m in streamed)  # it was shown while it streamed
    assert "200亿元" in streamed[-1] and "半句回答" not in streamed[-1]
    turn = updates[-1][2][0]
    assert turn.answer.mode.value != "llm" and "半句回答" not in updates[-1][1][-1]["content"]
    assert "extractive answer shown" in turn.answer.notes[-1]


def test_slow_llm_answers_do_not_hold_up_extractive_ones(seed_kb, tmp_path):
    from gradio_client import Client

    from tests.fake_llm import FakeChatServer

    timeout = 25.0  # long enough that an extractive answer queued behind the LLM calls would show it
    with FakeChatServer(lambda r: (200, "迟到的回答[1]。", 60.0), ping_every=0.5) as server:
        with running_app(seed_kb, tmp_path / "reports", settings=_llm_settings(server.url, timeout)) as url:
            client = Client(url, verbose=False)
            slow = [client.submit(QUESTION, "hybrid", 5, "llm", api_name="/ask") for _ in range(3)]
            began = time.monotonic()
            while len(server.requests) < 2 and time.monotonic() - began < 60:
                time.sleep(0.1)
            assert len(server.requests) == 2  # two LLM calls in flight; the third was not sent
            answer = client.predict(QUESTION, "hybrid", 5, "extractive", api_name="/ask")
            still_waiting = sum(not job.done() for job in slow)
            assert "200亿元" in answer["text"] and still_waiting >= 2
            results = [job.result(timeout=3 * timeout + 30) for job in slow]
    elapsed = time.monotonic() - began
    notes = [" ".join(r["notes"]) for r in results]
    assert sum(f"within {timeout:g} s" in n for n in notes) == 2 and sum("LLM is busy" in n for n in notes) == 1
    assert all(r["mode"] != "llm" and "200亿元" in r["text"] for r in results)
    assert elapsed < 3 * timeout + 30


def test_an_upload_reports_progress_in_chinese_with_the_true_total(docs_copy, index_copy, embedder, tmp_path):
    kb = KnowledgeBase(docs_copy, index_copy, embedder)
    kb.load()
    calls = []

    def progress(value, desc=None, unit="steps", **_):  # stands in for gr.Progress
        calls.append((value, desc, unit))

    good = tmp_path / "ferry.txt"
    good.write_text("嘉陵江智能渡轮试运行\n\n渝智一号渡轮可搭载乘客120人。最高航速每小时25公里。\n", encoding="utf-8")
    status = html.unescape(ChatApp(kb).knowledge.upload([str(good)], progress=progress)[2])
    embedded = int(re.search(r"新嵌入 (\d+) 段", status).group(1))
    steps = [value for value, desc, unit in calls if desc == "嵌入新内容（段落与句子）" and unit == "条"]
    assert steps and steps[-1] == (embedded, embedded)  # the texts embedded, not the corpus size
    stages = [desc for value, desc, _ in calls if value is None]
    assert stages[0] == "读取并切分文档" and stages[-1] == "载入新索引"


# --- issue 14: Chinese reasons and notes, related passages, citation labels, browser history ------


def test_the_page_gives_the_question_problem_and_pipeline_notes_in_chinese(seed_kb):
    from rag.app.render import page_note, question_problem

    app = ChatApp(seed_kb)
    *_, (_, chat, turns, _, _) = app.chat.respond("重" * 2100, [], "hybrid", 5, "extractive")
    assert "这个问题无法处理：问题有 2100 个字符，上限是 2000" in chat[-1]["content"]
    assert "characters" not in chat[-1]["content"]
    assert question_problem("  ") == "问题是空的，请输入关于文档的问题"
    assert page_note("the LLM is busy with 2 other questions; extractive answer shown") == "大模型正在回答另外 2 个问题，显示抽取式回答"
    assert page_note("limited to the first 3 of 171 questions") == "只评了 171 题中的前 3 题"


def test_an_opened_related_passage_keeps_the_others_listed(seed_answer):
    from rag.app.render import focused_passage

    _, answer = seed_answer
    abstained = fake_answer("资料中没有找到相关信息。", abstained=True, passages=answer.passages)
    panel, _ = focused_passage(Turn("q", abstained), 1, 0)
    assert html.unescape(re.sub("<[^>]+>", "", panel)).count(answer.passages[0].chunk.text) == 1  # whole
    assert "cite-key-0-p2" in panel and "cite-key-0-p3" in panel


def test_citation_markers_are_labelled_with_their_source(seed_answer):
    _, answer = seed_answer
    message = answer_message(answer, 0)
    assert 'aria-label="引用 1：湾区启航·智创未来"' in message and 'tabindex="0"' in message


def test_a_stored_conversation_is_plain_text_and_restores(seed_answer):
    from rag.app.history import history_choices, history_record, restored_turns

    turn, _ = seed_answer
    record = history_record("c1", [turn])
    assert "<" not in str(record["turns"])  # text only, never markup
    restored = restored_turns(record)
    assert restored[0].question == QUESTION and "200亿元" in restored[0].restored
    assert "200亿元" in chat_messages(restored)[-1]["content"]
    assert history_choices([record])[0][1] == "c1" and history_choices([{"junk": 1}, None]) == []


def test_a_restored_conversation_gets_its_sources_back(seed_kb, monkeypatch):
    # The browser keeps text only; restored answers came back without their sources.
    from rag.app.history import history_record

    # The wall-clock bound is not what is tested: on a loaded machine (load 7 on 2 cores) the
    # follow-up's re-answer started after 5 s and kept its text only.
    monkeypatch.setattr("rag.app.history.RESTORE_SECONDS", 600.0)
    app = ChatApp(seed_kb)
    answerer = app.state.answerer()
    first = answerer.run(QUESTION)
    follow = answerer.run("那它是什么时候签约的？", [QUESTION])
    turns = [Turn(QUESTION, first, documents=dict(seed_kb.index.documents)),
             Turn("那它是什么时候签约的？", follow, documents=dict(seed_kb.index.documents))]
    record = history_record("c1", turns)
    chat, restored, _, _, conversation = app.history.restore("c1", [record])
    assert conversation == "c1" and [t.question for t in restored] == [t.question for t in turns]
    for was, now in zip(turns, restored):
        assert now.answer is not None and now.answer.text == was.answer.text
        assert [(c.doc_id, c.orig_start, c.orig_end) for c in now.answer.citations] == \
               [(c.doc_id, c.orig_start, c.orig_end) for c in was.answer.citations]
    assert "cite-key-0-1" in chat[1]["content"]  # clickable again
    assert restored[1].answer.resolved_question == follow.resolved_question  # the follow-up as understood


def test_a_restored_answer_the_documents_no_longer_give_keeps_its_text_with_a_note(seed_kb):
    from rag.app.history import history_record

    app = ChatApp(seed_kb)
    turn = Turn(QUESTION, app.state.answerer().run(QUESTION), documents=dict(seed_kb.index.documents))
    record = history_record("c2", [turn])
    record["turns"][0]["answer"] = record["turns"][0]["answer"].replace("200", "300")  # documents since edited
    llm = history_record("c3", [Turn(QUESTION, fake_answer("大模型写的回答。", mode=AnswerMode.LLM))])
    old = {"id": "c4", "turns": [{"question": QUESTION, "answer": "旧版本保存的回答"}]}  # stored before this change
    changed = app.history.restore("c2", [record])[1][0]
    assert changed.answer is None and "300" in changed.restored and "文档已有变化" in changed.restored_note
    from_llm = app.history.restore("c3", [llm])[1][0]
    assert from_llm.answer is None and "大模型" in from_llm.restored_note  # an LLM is never called to restore
    assert app.history.restore("c4", [old])[1][0].restored == "旧版本保存的回答"


def test_the_browser_history_key_outlives_a_restart_and_cannot_be_lost(seed_kb, tmp_path, caplog):
    import gradio as gr

    # Gradio encrypts BrowserState with a random key per server run unless given one: a restart of
    # `rag chat` made every stored conversation unreadable. Then a key file was kept, and deleting or
    # damaging it silently made a new one: every history gone (issue 37 item 5). The key protects
    # nothing (Gradio sends it to every visitor), so it is now a constant and no file is written.
    from rag.app.history import HISTORY_SECRET_FILE, history_secret

    first = history_secret(tmp_path)
    assert first and history_secret(tmp_path) == first and history_secret(tmp_path / "elsewhere") == first
    assert not (tmp_path / HISTORY_SECRET_FILE).exists()
    old = "ab" * 32  # a key file an earlier version wrote: its conversations stay readable
    (tmp_path / HISTORY_SECRET_FILE).write_text(old, encoding="ascii")
    assert history_secret(tmp_path) == old
    (tmp_path / HISTORY_SECRET_FILE).write_text("damaged", encoding="ascii")
    assert history_secret(tmp_path) == first and "cannot be used" in caplog.text
    assert (tmp_path / HISTORY_SECRET_FILE).read_text(encoding="ascii") == "damaged"  # left for the user to restore
    keys = []
    for _ in range(2):  # two page builds over the same index folder, as two server runs
        blocks = ChatApp(seed_kb).build()
        keys.append([b.secret for b in blocks.blocks.values() if isinstance(b, gr.BrowserState)])
    assert keys[0] == keys[1] == [history_secret(seed_kb.index_dir)]


def _raw_call(url: str, api: str, data: list) -> tuple[str, str]:
    """Call an endpoint over plain HTTP as a non-Python client would; return (event, data) of its last message."""
    import httpx

    event_id = httpx.post(f"{url}/gradio_api/call/{api}", json={"data": data}, timeout=60).json()["event_id"]
    with httpx.stream("GET", f"{url}/gradio_api/call/{api}/{event_id}", timeout=300) as response:
        lines = [line for line in response.iter_lines() if line]
    events = [line.split(":", 1)[1].strip() for line in lines if line.startswith("event:")]
    payloads = [line.split(":", 1)[1].strip() for line in lines if line.startswith("data:")]
    import json

    return events[-1], json.dumps(json.loads(payloads[-1]), ensure_ascii=False)


def test_misused_endpoints_are_refused_with_a_message_and_no_traceback(seed_kb, tmp_path, capfd, caplog):
    # Issue 37 item 6: these ended in a server traceback and no message for the caller.
    from gradio_client import Client

    with running_app(seed_kb, tmp_path / "reports") as url:
        client = Client(url, verbose=False, analytics_enabled=False)
        for value in ("a string", None, 12345):
            with pytest.raises(Exception, match="没有收到文件"):
                client.predict(value, api_name="/add_document")
        for value in ([], {}, 7):
            with pytest.raises(Exception, match="需要文档的文件名"):
                client.predict(value, api_name="/delete_document")
        server_file = {"path": "/etc/passwd", "orig_name": "passwd.txt", "meta": {"_type": "gradio.FileData"}}
        event, data = _raw_call(url, "add_document", [server_file])
        assert event == "error" and "只接受先上传到本服务的文件" in data
        event, data = _raw_call(url, "ask", ["重庆人工智能产业基金规模有多大？"])  # the other three take defaults
        assert event == "complete" and "200亿" in data
        event, data = _raw_call(url, "ask", [])
        assert event == "error" and "参数不足" in data
        assert len(seed_kb.index.documents) == 5
    assert "Traceback" not in capfd.readouterr().err
    refused = [r for r in caplog.records if "refused:" in r.getMessage()]
    assert len(refused) == 8 and not any(r.exc_info for r in caplog.records)


def test_the_knowledge_base_tab_names_every_file_the_index_skipped_and_why(docs_copy, index_copy, embedder):
    kb = KnowledgeBase(docs_copy, index_copy, embedder)
    kb.load()
    app = ChatApp(kb)
    (docs_copy / "汇报.pptx").write_bytes(b"PK\x03\x04 not read")
    (docs_copy / "损坏.pdf").write_bytes(b"%PDF-1.4\n1 0 obj <<>> garbage")
    with open(docs_copy / "big.txt", "wb") as f:
        f.truncate(6 * 1024 * 1024)
    table, _, status, _ = app.knowledge.rebuild(progress=lambda *args, **kwargs: None)
    status = html.unescape(status)
    assert "未索引（不支持的文件类型）1 个：汇报.pptx" in status and "未索引（无法读取）1 个：损坏.pdf" in status
    assert "未索引（超出上限）1 个：big.txt" in status
    notes = {row[1]: row[5] for row in table}  # the document list's 备注 column
    assert notes["汇报.pptx"] == "未索引：不支持的文件类型（.pptx）"
    assert notes["big.txt"] == "未索引：超出上限（6.0 MB，超过了 5 MB 的上限）"
    assert notes["损坏.pdf"].startswith("未索引：无法读取 损坏.pdf：不是有效的 PDF")
