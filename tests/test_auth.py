"""Access control: passwords from settings, the exposed-page refusal, and constant-time checks (issue 37 item 4)."""

from __future__ import annotations

import pytest

from rag.auth import AuthConfig, exposure_problem, is_loopback
from rag.config import load_auth


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_addresses_are_recognised(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org", ""])
def test_other_addresses_are_not_loopback(host):
    assert not is_loopback(host)


def test_an_exposed_page_needs_an_editor_password_or_the_insecure_flag():
    assert exposure_problem("0.0.0.0", AuthConfig(), insecure=False)
    assert "RAG_EDITOR_PASSWORD" in exposure_problem("0.0.0.0", AuthConfig(), insecure=False)
    assert exposure_problem("0.0.0.0", AuthConfig(editor_password="correct horse"), insecure=False) is None
    assert exposure_problem("0.0.0.0", AuthConfig(), insecure=True) is None
    assert exposure_problem("127.0.0.1", AuthConfig(), insecure=False) is None


def test_editing_is_open_without_a_password_and_locked_with_one():
    assert AuthConfig().may_edit(None)
    locked = AuthConfig(editor_password="correct horse")
    assert locked.may_edit("correct horse")
    for wrong in (None, "", "correct hors", "correct horse ", 12345678, ["correct horse"], b"correct horse"):
        assert not locked.may_edit(wrong)


def test_reading_takes_the_reader_or_the_editor_password():
    both = AuthConfig(editor_password="editor-secret", reader_password="reader-secret")
    assert both.may_read("reader", "reader-secret") and both.may_read("anyone", "editor-secret")
    assert not both.may_read("reader", "wrong-secret") and not both.may_read("reader", None)
    assert AuthConfig().may_read("x", None)


def test_passwords_never_appear_in_repr():
    assert "s3cret-pass" not in repr(AuthConfig(editor_password="s3cret-pass", reader_password="s3cret-pass"))


def test_passwords_come_from_rag_toml_and_the_environment_wins(tmp_path):
    toml = tmp_path / "rag.toml"
    toml.write_text('[auth]\neditor_password = "from-the-file"\nreader_password = "reader-file"\n', encoding="utf-8")
    assert load_auth(toml, environ={}) == AuthConfig("from-the-file", "reader-file")
    assert load_auth(toml, environ={"RAG_EDITOR_PASSWORD": "from-the-env"}).editor_password == "from-the-env"


@pytest.mark.parametrize("text, expected", [
    ('[auth]\neditor_password = "short"\n', "at least 8 characters"),
    ('[auth]\neditor_password = 123456789\n', "at least 8 characters"),
    ('[auth]\nadmin = "whatever-long"\n', "unknown setting `admin`"),
])
def test_bad_passwords_are_refused_naming_where_they_came_from(tmp_path, text, expected):
    toml = tmp_path / "rag.toml"
    toml.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=expected) as info:
        load_auth(toml, environ={})
    assert "rag.toml" in str(info.value)


# --- rag chat ----------------------------------------------------------------------------------


@pytest.fixture()
def served(monkeypatch):
    calls = []
    monkeypatch.setattr("rag.app.serve", lambda kb, host, port, **kwargs: calls.append((host, kwargs)))
    return calls


def test_rag_chat_on_an_open_address_without_a_password_refuses_before_loading_anything(tmp_path, served, monkeypatch,
                                                                                         capsys):
    from rag.cli import main

    monkeypatch.delenv("RAG_EDITOR_PASSWORD", raising=False)
    monkeypatch.setenv("RAG_CONFIG", str(tmp_path / "none.toml"))
    docs = tmp_path / "docs"  # never created: the refusal comes before any folder is touched
    assert main(["chat", "--host", "0.0.0.0", "--docs", str(docs), "--index", str(tmp_path / "index")]) != 0
    err = capsys.readouterr().err
    assert "refusing to serve on 0.0.0.0" in err and "--insecure-no-auth" in err
    assert not served and not docs.exists() and not (tmp_path / "index").exists()


def test_rag_chat_with_a_bad_password_setting_says_so(tmp_path, served, monkeypatch, capsys):
    from rag.cli import main

    monkeypatch.setenv("RAG_EDITOR_PASSWORD", "short")
    assert main(["chat", "--docs", str(tmp_path / "d"), "--index", str(tmp_path / "i")]) != 0
    assert "RAG_EDITOR_PASSWORD must be a password of at least 8 characters" in capsys.readouterr().err
    assert not served


def test_rag_chat_exposed_with_an_editor_password_serves_and_hands_the_passwords_on(docs_copy, index_copy, served,
                                                                                    monkeypatch):
    from rag.cli import main

    monkeypatch.setenv("RAG_EDITOR_PASSWORD", "correct horse")
    assert main(["chat", "--host", "0.0.0.0", "--docs", str(docs_copy), "--index", str(index_copy)]) == 0
    host, kwargs = served[0]
    assert host == "0.0.0.0" and kwargs["auth"].may_edit("correct horse") and not kwargs["auth"].may_edit("x")


def test_rag_chat_exposed_with_insecure_no_auth_serves_with_a_warning(docs_copy, index_copy, served, monkeypatch, capsys):
    from rag.cli import main

    monkeypatch.delenv("RAG_EDITOR_PASSWORD", raising=False)
    assert main(["chat", "--host", "0.0.0.0", "--insecure-no-auth", "--docs", str(docs_copy),
                 "--index", str(index_copy)]) == 0
    assert served and "anyone who can reach it can change the documents" in capsys.readouterr().err


# --- the page: real HTTP ---------------------------------------------------------------------------

PASSWORD = "correct horse battery"


def test_an_anonymous_client_of_a_locked_page_can_ask_but_changes_nothing(kb, docs_copy, tmp_path, monkeypatch):
    from gradio_client import Client, handle_file

    from tests.test_app import running_app

    upload_dir = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(upload_dir))
    before = sorted(p.name for p in docs_copy.iterdir())
    poisoned = tmp_path / "poison.txt"
    poisoned.write_text("渝北区人工智能产业基金\n\n渝北区人工智能产业基金规模是1元。\n", encoding="utf-8")
    with running_app(kb, tmp_path / "reports", auth=AuthConfig(editor_password=PASSWORD)) as url:
        anonymous = Client(url, verbose=False, analytics_enabled=False)
        assert anonymous.predict("重庆人工智能产业基金规模有多大？", api_name="/ask")["citations"]
        assert len(anonymous.predict(api_name="/documents")) == 5
        with pytest.raises(Exception, match="修改知识库需要编辑密码"):
            anonymous.predict(handle_file(str(poisoned)), api_name="/add_document")
        for file in before:
            with pytest.raises(Exception, match="修改知识库需要编辑密码"):
                anonymous.predict(file, api_name="/delete_document")
        wrong = Client(url, verbose=False, analytics_enabled=False, headers={"X-Editor-Password": "guess-guess"})
        with pytest.raises(Exception, match="编辑密码不正确"):
            wrong.predict(before[0], api_name="/delete_document")
        assert sorted(p.name for p in docs_copy.iterdir()) == before and len(kb.index.documents) == 5
        editor = Client(url, verbose=False, analytics_enabled=False, headers={"X-Editor-Password": PASSWORD})
        assert editor.predict(handle_file(str(poisoned)), api_name="/add_document")["documents"] == 6
        assert editor.predict("poison.txt", api_name="/delete_document")["documents"] == 5
    # Refused uploads leave no copy behind in Gradio's folder.
    assert [p.name for p in upload_dir.rglob("poison.txt")] == []


def test_a_reader_password_guards_the_whole_page_and_its_api(kb, tmp_path):
    import httpx
    from gradio_client import Client

    from tests.test_app import running_app

    auth = AuthConfig(editor_password=PASSWORD, reader_password="reader-password")
    with running_app(kb, tmp_path / "reports", auth=auth) as url:
        assert httpx.get(f"{url}/config", timeout=30).status_code in (401, 403)
        with pytest.raises(Exception):
            Client(url, verbose=False, analytics_enabled=False)
        reader = Client(url, verbose=False, analytics_enabled=False, auth=("reader", "reader-password"))
        assert len(reader.predict(api_name="/documents")) == 5


def test_the_knowledge_tab_refuses_changes_without_the_editor_password(kb, docs_copy, tmp_path, monkeypatch):
    from rag.app.layout import ChatApp

    upload_dir = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(upload_dir))
    app = ChatApp(kb, auth=AuthConfig(editor_password=PASSWORD))
    upload = app.state.upload_dir / "abc" / "ferry.txt"
    upload.parent.mkdir(parents=True)
    upload.write_text("嘉陵江智能渡轮\n\n渝智一号渡轮可搭载乘客120人。\n", encoding="utf-8")
    before = sorted(p.name for p in docs_copy.iterdir())
    for password in (None, "", "wrong-password"):
        status = app.knowledge.upload([str(upload)], password, progress=lambda *a, **k: None)[2]
        assert "需要编辑密码" in status
        assert "需要编辑密码" in app.knowledge.delete(before[0], password, progress=lambda *a, **k: None)[2]
        assert "需要编辑密码" in app.knowledge.rebuild(password, progress=lambda *a, **k: None)[2]
    assert sorted(p.name for p in docs_copy.iterdir()) == before and not upload.exists()
    status = app.knowledge.delete(before[0], PASSWORD, progress=lambda *a, **k: None)[2]
    assert "已删除" in status and before[0] not in {p.name for p in docs_copy.iterdir()}
