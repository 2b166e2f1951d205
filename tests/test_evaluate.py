"""The evaluation harness: metric functions, gold parsing, SQuAD input, reports, and the CI quality gate."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from rag.evaluation.evidence import Target, covers, find_spans, locate, squash_map
from rag.evaluation.gold import GoldError, load_gold
from rag.evaluation.metrics import char_f1, contains_answer, ideal_gains, ndcg, p95, prf, reciprocal_rank
from rag.evaluation.report import write_latest
from rag.evaluation.runner import run_eval, run_squad_eval
from rag.evaluation.squad import load_squad
from rag.types import Chunk, Document

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "eval" / "gold.jsonl"
THRESHOLDS = ROOT / "eval" / "thresholds.json"


# --- metric functions -------------------------------------------------------------------------


def test_reciprocal_rank_uses_the_first_relevant_chunk_within_k() -> None:
    coverage = [set(), {0}, set(), {0}]
    assert reciprocal_rank(coverage, 10) == 0.5
    assert reciprocal_rank(coverage, 1) == 0.0
    assert reciprocal_rank([set()] * 5, 10) == 0.0


def test_ndcg_single_evidence() -> None:
    assert ndcg([{0}], [1], 10) == 1.0
    assert ndcg([set(), {0}], [1], 10) == pytest.approx(1 / math.log2(3))
    assert ndcg([set(), {0}], [1], 1) == 0.0
    # A second chunk holding the same evidence (chunks overlap by a sentence) adds no gain.
    assert ndcg([{0}, {0}], [1], 10) == 1.0


def test_ndcg_two_pieces_of_evidence() -> None:
    ideal = ideal_gains([{0}, {1}])
    assert ideal == [1, 1]
    assert ndcg([{1}, {0}], ideal, 10) == 1.0
    assert ndcg([{0}, set(), {1}], ideal, 10) == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3)))
    # When one chunk holds both pieces, the ideal puts it first and finding it there is perfect.
    assert ideal_gains([{0}, {0, 1}, {1}]) == [2]
    assert ndcg([{0, 1}], [2], 10) == 1.0
    assert ndcg([{0}, {1}], [2], 10) == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_char_f1_takes_the_best_gold_answer_on_squashed_characters() -> None:
    # "200亿元" vs "200亿": 4 shared characters, precision 4/5, recall 1.
    assert char_f1("200亿元[1]", ["200亿"]) == pytest.approx(2 * 0.8 * 1 / 1.8)
    assert char_f1("200亿元", ["200亿", "200亿元"]) == 1.0
    assert char_f1("研發人才１．６１萬 人", ["1.61万人"]) == pytest.approx(2 * (6 / 10) / (6 / 10 + 1))
    assert char_f1("完全无关", ["200亿"]) == 0.0


def test_contains_answer_normalizes_both_sides() -> None:
    assert contains_answer("聚集研發人才１．６１萬 人。[1]", ["1.61万人"])
    assert contains_answer("The fund is 200 亿元", ["200亿"])
    assert not contains_answer("设立20亿元基金[1]", ["200亿"])


def test_abstention_prf_and_p95() -> None:
    assert prf(8, 2, 2) == pytest.approx((0.8, 0.8, 0.8))
    assert prf(0, 0, 5) == (0.0, 0.0, 0.0)
    assert p95([float(i) for i in range(1, 101)]) == 95.0
    assert p95([3.0]) == 3.0


def _chunk(doc_id: str, start: int, end: int, text: str = "无关的内容") -> Chunk:
    return Chunk(f"{doc_id}-{start}", doc_id, 0, text, start, end, start, end, "")


def test_relevance_by_span_overlap_and_by_text() -> None:
    target = Target("d1", "设立200亿元规模的产业基金", ((190, 210),))
    assert covers(_chunk("d1", 100, 200), target)  # shares characters 190..199
    assert not covers(_chunk("d1", 210, 300), target)  # spans are half-open
    assert not covers(_chunk("d2", 100, 200), target)  # same offsets, other document
    # Text containment counts in any document (a repeated sentence is still the evidence).
    assert covers(_chunk("d2", 0, 40, "我们 設立200億元規模的產業基金，用于……"), target)


def test_squash_map_matches_squash_and_maps_back(seed_docs) -> None:
    from rag.text import squash

    doc = seed_docs["000"]
    squashed, offsets = squash_map(doc.text)
    assert squashed == squash(doc.text)
    assert len(offsets) == len(squashed)
    # NFKC turns one character into several (㈱ → (株)); every piece still maps to it.
    squashed, offsets = squash_map("A ㈱ b")
    assert squashed == "a(株)b" and offsets == [0, 2, 2, 2, 4]


def test_find_spans_maps_squashed_evidence_to_document_offsets() -> None:
    text = "前文。设立 200 亿元 规模的基金。后文"
    (span,) = find_spans(text, "设立200亿元规模")
    assert text[span[0] : span[1]] == "设立 200 亿元 规模"
    assert find_spans(text, "不存在的句子") == []


def test_locate_falls_back_to_the_original_text() -> None:
    # Cleaning collapsed a doubled run; the evidence quotes the original.
    original, text = "重复重复内容", "重复内容"
    doc = Document("d", "d.txt", "", None, "", "utf-8", original, text, (2, 3, 4, 5))
    assert locate(doc, "复内") == [(1, 3)]
    assert locate(doc, "重复重复") == [(0, 2)]


def test_seed_evidence_is_located_in_the_cleaned_documents(seed_docs) -> None:
    by_file = {d.file: d for d in seed_docs.values()}
    missing = [(item.id, e.doc) for item in load_gold(GOLD) for e in item.evidence
               if not locate(by_file[e.doc], e.text)]
    assert not missing


# --- gold file parsing ------------------------------------------------------------------------

_GOOD = {"id": "g001", "question": "基金规模多大？", "answers": ["200亿"], "doc": "a.txt",
         "evidence": "设立200亿元规模的基金", "type": "number"}


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "g002", "question": "半截', r"gold\.jsonl line 2: not valid JSON"),
        ("[1, 2]", r"line 2: expected a JSON object"),
        (json.dumps({k: v for k, v in _GOOD.items() if k != "evidence"} | {"id": "g002"}),
         r"line 2 \(g002\): missing key 'evidence'"),
        (json.dumps(_GOOD | {"id": "g002", "type": "numeric"}), r"line 2 \(g002\): type 'numeric' is not one of"),
        (json.dumps(_GOOD | {"id": "g002", "answers": "200亿"}), r"line 2 \(g002\): answers must be a list"),
        (json.dumps(_GOOD | {"id": "g002", "type": "unanswerable"}), r"line 2 \(g002\): an unanswerable question"),
        (json.dumps(_GOOD | {"id": "g002", "type": "multi"}), r"line 2 \(g002\): missing key 'doc2', 'evidence2'"),
        (json.dumps(_GOOD | {"id": "g002", "extra": 1}), r"line 2 \(g002\): unexpected key 'extra'"),
        (json.dumps(_GOOD), r"line 2 \(g001\): id 'g001' already used on line 1"),
    ],
    ids=["json", "not-object", "missing-key", "bad-type", "answers-not-list", "unanswerable-with-answers",
         "multi-without-doc2", "unknown-key", "duplicate-id"],
)
def test_malformed_gold_line_names_the_line(tmp_path, line, message) -> None:
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps(_GOOD, ensure_ascii=False) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(GoldError, match=message):
        load_gold(path)


def test_gold_file_parses() -> None:
    items = load_gold(GOLD)
    assert len(items) >= 100
    multi = [i for i in items if i.type == "multi"]
    assert multi and all(len(i.evidence) == 2 for i in multi)
    assert all(not i.answerable and not i.evidence for i in items if i.type == "unanswerable")


def test_cli_reports_a_malformed_gold_line(tmp_path, capsys) -> None:
    from rag.cli import main

    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(_GOOD) + "\n" + '{"id": "g002",\n', encoding="utf-8")
    assert main(["eval", "--gold", str(path), "--index", str(tmp_path / "none")]) == 2
    assert "broken.jsonl line 2: not valid JSON" in capsys.readouterr().err


# --- the gold set through the real system, and the CI gate ------------------------------------


@pytest.fixture(scope="module")
def thresholds() -> dict:
    return json.loads(THRESHOLDS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def gold_report(seed_index, thresholds, tmp_path_factory):
    config = thresholds["config"]
    return run_eval(seed_index, GOLD, modes=[config["mode"]], answer_modes=[config["answer"]], k=config["k"],
                    out_dir=tmp_path_factory.mktemp("reports"))


def test_gold_meets_the_thresholds(gold_report, thresholds) -> None:
    """The regression gate: the default configuration must stay at or above eval/thresholds.json."""
    assert thresholds["config"] == {"mode": "hybrid", "answer": "reader", "k": 10}, "gate the default configuration"
    metrics = gold_report.row("hybrid", "reader").metrics
    failures = [f"{name} = {metrics[name]} < {floor}" for name, floor in thresholds["min"].items()
                if metrics[name] is None or metrics[name] < floor]
    failures += [f"{name} = {metrics[name]} > {ceiling}" for name, ceiling in thresholds["max"].items()
                 if metrics[name] is None or metrics[name] > ceiling]
    assert not failures, "quality regressed on eval/gold.jsonl: " + "; ".join(failures) + f" (all: {metrics})"


def test_gold_report_files(gold_report) -> None:
    folder = gold_report.report_dir
    assert {p.name for p in folder.iterdir()} == {"report.md", "results.json", "recall_at_k.png",
                                                   "containment_by_type.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in gold_report.plots)
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    assert [r["mode"] for r in results["summary"]] == ["hybrid"]
    rows = results["questions"]
    assert len(rows) == len(load_gold(GOLD))
    first = rows[0]
    assert first["id"] == "g001" and len(first["retrieved"]) == 10
    assert {"recall@1", "recall@5", "recall@10", "rr@10", "ndcg@10", "contains", "f1", "citation_hit"} <= set(
        first["scores"])
    assert all(isinstance(c["chunk_id"], str) for r in rows for c in r["citations"])
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "| hybrid/reader |" in report and "## By question type" in report


def test_latest_summary_names_the_run_folder_without_linking_into_it(gold_report, tmp_path) -> None:
    latest = write_latest(gold_report, tmp_path / "latest.md")
    text = latest.read_text(encoding="utf-8")
    assert "| hybrid/reader |" in text and f"`{gold_report.report_dir.name}/`" in text
    assert ".png" not in text  # the committed summary must not point into git-ignored folders


def test_llm_rows_are_skipped_with_a_note_when_no_llm_is_configured(seed_index) -> None:
    from rag.config import LLMConfig, load_settings

    settings = dataclasses.replace(load_settings(environ={}), llm=LLMConfig())
    items = load_gold(GOLD)[:2]
    report = run_eval(seed_index, items, modes=["bm25"], answer_modes=["extractive", "llm"], k=5,
                      settings=settings)
    assert [r.label for r in report.rows] == ["bm25/extractive"]
    assert any("llm rows skipped" in n for n in report.notes)
    assert report.settings["k"] == 5 and "recall@5" in report.rows[0].metrics
    assert "recall@10" not in report.rows[0].metrics


# --- SQuAD-format input -----------------------------------------------------------------------

_PARAGRAPHS = [
    ("嘉陵江是长江上游的支流。它发源于秦岭，全长1120公里。嘉陵江在重庆朝天门汇入长江。",
     [("嘉陵江全长多少公里？", "1120公里"), ("嘉陵江在哪里汇入长江？", "朝天门")]),
    ("洪崖洞位于重庆渝中区。它是一处吊脚楼风格的建筑群，依山而建，共有十一层。夜晚灯光亮起后游客很多。",
     [("洪崖洞一共有几层？", "十一层"), ("", "")]),
    ("重庆火锅起源于江边的船工。牛油和辣椒是锅底的主要材料。毛肚是最受欢迎的菜品之一。",
     [("重庆火锅锅底的主要材料是什么？", "牛油和辣椒")]),
    ("長江索道於一九八七年建成。它連接渝中區和南岸區，全長一千一百六十六米。",
     [("長江索道哪一年建成？", "一九八七年")]),
]


def _write_squad(path: Path) -> Path:
    data = []
    for n, (context, qas) in enumerate(_PARAGRAPHS):
        items = []
        for m, (question, answer) in enumerate(qas):
            start = context.find(answer) if answer else 0
            if m == 0 and n == 0:
                start += 3  # a wrong offset, as in a few CMRC items: the nearest occurrence is used
            items.append({"id": f"T{n}-{m}", "question": question, "answers": [{"text": answer, "answer_start": start}]})
        data.append({"title": f"t{n}", "paragraphs": [{"id": f"P{n}", "context": context, "qas": items}]})
    path.write_text(json.dumps({"version": "test", "data": data}, ensure_ascii=False), encoding="utf-8")
    return path


def test_load_squad_takes_the_answer_sentence_and_counts_empty_questions(tmp_path) -> None:
    squad = load_squad(_write_squad(tmp_path / "tiny.json"))
    assert len(squad.paragraphs) == 4 and squad.empty_questions == 1 and squad.unlocated == 0
    by_id = {q.id: q for q in squad.questions}
    assert by_id["T0-0"].evidence == "它发源于秦岭，全长1120公里。"
    assert by_id["T3-0"].evidence == "長江索道於一九八七年建成。"
    limited = load_squad(tmp_path / "tiny.json", limit=2)
    assert [p.file for p in limited.paragraphs] == ["p00001.txt", "p00002.txt"]
    assert len(limited.questions) == 3 and limited.total_paragraphs == 4


def test_a_repeated_squad_paragraph_is_one_document_its_questions_share(tmp_path) -> None:
    # Two copies would be two documents of one text, which the folder loader keeps only once.
    context, qas = _PARAGRAPHS[0]
    data = {"version": "test", "data": [
        {"title": f"t{n}", "paragraphs": [{"context": context, "qas": [
            {"id": f"R{n}", "question": qas[0][0], "answers": [{"text": qas[0][1], "answer_start": context.find(qas[0][1])}]}]}]}
        for n in range(2)]}
    path = tmp_path / "repeated.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    squad = load_squad(path)
    assert [p.file for p in squad.paragraphs] == ["p00001.txt"]
    assert [q.file for q in squad.questions] == ["p00001.txt", "p00001.txt"]


def test_load_squad_can_ask_another_files_questions_by_id(tmp_path) -> None:
    # XQuAD: the English questions (same ids) over the Chinese paragraphs and answers.
    path = _write_squad(tmp_path / "tiny.json")
    english = {"T0-0": "How long is the Jialing River?", "T2-0": "What is the hotpot base made of?"}
    other = {"data": [{"title": "x", "paragraphs": [{"context": "...", "qas": [
        {"id": i, "question": q, "answers": [{"text": "...", "answer_start": 0}]} for i, q in english.items()]}]}]}
    (tmp_path / "en.json").write_text(json.dumps(other), encoding="utf-8")
    squad = load_squad(path, questions=tmp_path / "en.json")
    assert {q.id: q.question for q in squad.questions} == english
    assert {q.id: q.answers for q in squad.questions} == {"T0-0": ("1120公里",), "T2-0": ("牛油和辣椒",)}
    assert squad.empty_questions == 4  # the ids the other file does not ask (and the empty one)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_squad(path, questions=tmp_path / "missing.json")


def test_load_squad_rejects_other_json(tmp_path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="not SQuAD format"):
        load_squad(path)


def test_squad_eval_end_to_end(tmp_path, embedder) -> None:
    report = run_squad_eval(_write_squad(tmp_path / "tiny.json"), modes=["bm25", "hybrid"], k=3,
                            answer_modes=["extractive"], out_dir=tmp_path / "reports",
                            cache_dir=tmp_path / "cache", embedder=embedder)
    assert "skipped 1 empty question(s)" in report.notes
    assert report.settings["paragraphs"] == 4 and report.settings["questions"] == 5
    assert report.settings["questions_from"] is None  # was the asked questions' list, printed whole
    assert [r.label for r in report.rows] == ["bm25/extractive", "hybrid/extractive"]
    hybrid = report.row("hybrid", "extractive")
    assert hybrid.metrics["recall@1"] == 1.0  # four short paragraphs: each question finds its own
    assert hybrid.metrics["abstention_f1"] is None  # no unanswerable questions in SQuAD files
    assert hybrid.metrics["containment"] >= 0.6
    assert (report.report_dir / "results.json").exists() and len(report.plots) == 2
    assert any((tmp_path / "cache").iterdir())  # embeddings kept for the next run


def test_squad_eval_scores_short_answers_and_asks_one_split(tmp_path, embedder) -> None:
    from rag.evaluation.squad import split_of

    path = _write_squad(tmp_path / "tiny.json")
    heldout = [n for n in range(4) if split_of(f"t{n}") == "heldout"]
    report = run_squad_eval(path, modes=["hybrid"], answer_modes=["reader", "extractive"], k=3,
                            cache_dir=tmp_path / "cache", embedder=embedder, split="train")
    asked = {q.id.split("-")[0] for q in report.questions}
    assert asked and not asked & {f"T{n}" for n in heldout}  # held-out articles' questions are not asked
    assert report.settings["split"] == "train"
    reader, extractive = report.row("hybrid", "reader"), report.row("hybrid", "extractive")
    # The reader's short answers are scored by EM/F1 the CMRC way; whole sentences score low by design.
    assert reader.metrics["short_f1"] > extractive.metrics["short_f1"]
    assert 0.0 <= reader.metrics["em"] <= 1.0
    with pytest.raises(ValueError, match="split must be"):
        run_squad_eval(path, split="test", embedder=embedder, cache_dir=tmp_path / "cache")


def test_another_gold_file_does_not_overwrite_the_gold_sets_summary(tmp_path, seeds_dir, seed_index_dir, capsys):
    # `rag eval --gold eval/gold_documents.jsonl` rewrote eval/reports/latest.md, the committed summary of
    # eval/gold.jsonl, with the other file's figures.
    from rag.cli import main

    mini = tmp_path / "mini.jsonl"
    lines = (ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()[:3]
    mini.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "reports"
    assert main(["eval", "--gold", str(mini), "--docs", str(seeds_dir), "--index", str(seed_index_dir),
                 "--mode", "hybrid", "--answer", "reader", "--out", str(out)]) == 0
    assert not (out / "latest.md").exists()
    assert "mini.jsonl" in (out / "latest-mini.md").read_text(encoding="utf-8")
    assert "latest-mini.md" in capsys.readouterr().out


def test_rag_eval_writes_its_reports_into_the_data_folder_not_the_checkout(tmp_path, seeds_dir, seed_index_dir,
                                                                          monkeypatch, capsys):
    from rag.cli import main

    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    tracked = ROOT / "eval" / "reports"
    before = sorted(p.name for p in tracked.iterdir())
    mini = tmp_path / "one.jsonl"
    mini.write_text((ROOT / "eval" / "gold.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    assert main(["eval", "--gold", str(mini), "--docs", str(seeds_dir), "--index", str(seed_index_dir),
                 "--mode", "bm25", "--answer", "extractive"]) == 0
    reports = tmp_path / "home" / "reports" / "eval"
    [run_folder] = [p for p in reports.iterdir() if p.is_dir()]
    assert (run_folder / "report.md").is_file() and (run_folder / "results.json").is_file()
    assert f"report: {run_folder / 'report.md'}" in capsys.readouterr().out
    assert sorted(p.name for p in tracked.iterdir()) == before  # nothing new in the checkout
