"""The trained reader: tokens with offsets, training data, a short training run, save/load, and its answers."""

from dataclasses import replace
import json

import numpy as np
import pytest

from rag.reader.data import make_examples, read_items
from rag.reader.score import exact_match, f1_score, segment
from rag.reader.windows import MAX_ANSWER_TOKENS, Window, best_span, encode, question_ids, token_targets
from rag.evaluation.squad import split_of

torch = pytest.importorskip("torch")

CONTEXT_A = ("重庆人工智能产业基金由市政府设立。该基金总规模为200亿元，首期规模50亿元。"
             "基金重点投向智能网联新能源汽车、人工智能芯片和工业软件等领域。基金管理人是重庆产业投资母基金公司。")
CONTEXT_B = ("赛力斯超级工厂位于两江新区。工厂里有3000台机器人在5G网络下互联互通。"
             "关键工序自动化率达到100%。工厂总经理曹楠介绍了生产线的情况。")


def _squad(titles_contexts_qas):
    return {"version": "test", "data": [
        {"title": title, "paragraphs": [{"context": context, "qas": [
            {"id": f"{title}-{i}", "question": q, "answers": [{"text": a, "answer_start": context.find(a)}]}
            for i, (q, a) in enumerate(qas)]}]}
        for title, context, qas in titles_contexts_qas]}


ANSWERS = {"基金总规模是多少？": "200亿元", "基金首期规模是多少？": "50亿元", "工厂里有多少台机器人？": "3000台",
           "工厂总经理是谁？": "曹楠"}


@pytest.fixture(scope="module")
def tiny_squad(tmp_path_factory):
    """A SQuAD-format file of our own, with articles on both sides of the held-out split."""
    articles = []
    for n in range(12):
        context = CONTEXT_A if n % 2 == 0 else CONTEXT_B
        qas = [(f"文章{n}：{q}", a) for q, a in ANSWERS.items() if a in context]
        articles.append((f"文章{n}", context, qas))
    path = tmp_path_factory.mktemp("squad") / "tiny.json"
    path.write_text(json.dumps(_squad(articles), ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    from rag.embed.torch_e5 import TorchE5

    return TorchE5().tokenizer


def test_pieces_carry_the_characters_they_cover(tokenizer):
    text = "重庆ＡＩ 学院  于2025年 成立，規模200亿元。"
    pieces = tokenizer.pieces(text)
    assert [p[0] for p in pieces] == tokenizer.content_ids(text)
    ends = [e for _, _, e in pieces]
    assert ends == sorted(ends) and ends[-1] == len(text)
    covered = "".join(text[s:e] for _, s, e in pieces)
    assert covered.replace(" ", "") == text.replace(" ", "")


def test_an_answer_maps_to_tokens_and_back(tokenizer):
    window = encode(tokenizer, question_ids(tokenizer, "基金总规模是多少？"), CONTEXT_A)
    start = CONTEXT_A.index("200亿元")
    first, last = token_targets(window, start, start + len("200亿元"))
    spans = window.spans[first - window.first : last - window.first + 1]
    assert CONTEXT_A[spans[0][0] : spans[-1][1]] == "200亿元"
    # Logits peaked on those tokens come back as exactly that span.
    n = len(window.ids)
    start_logits, end_logits = np.zeros(n), np.zeros(n)
    start_logits[first], end_logits[last] = 9.0, 9.0
    span = best_span(window, start_logits, end_logits, 1.5)
    assert CONTEXT_A[span.start : span.end] == "200亿元"
    assert span.answerable == 1.5


def test_best_span_never_ends_before_it_starts_or_runs_too_long():
    spans = tuple((i, i + 1) for i in range(100))
    window = Window(ids=tuple(range(103)), first=2, spans=spans, passage="字" * 100)
    start_logits, end_logits = np.zeros(103), np.zeros(103)
    start_logits[2 + 80], end_logits[2 + 10] = 10.0, 10.0  # the end before the start
    span = best_span(window, start_logits, end_logits, 0.0)
    assert span.start <= span.end - 1
    assert span.end - span.start <= MAX_ANSWER_TOKENS


def test_a_clause_long_answer_comes_back_whole(tokenizer):
    # One CMRC training answer in six is longer than 40 tokens; a cap below that cut them all short.
    answer = ("首批开设智能科学与技术、数据科学与大数据技术、机器人工程三个本科专业，"
              "计划每年招收新生1200人，并与十余家本地企业共建实训基地和联合实验室，面向西部地区培养应用型人才")
    passage = f"重庆人工智能学院设在两江新区。{answer}。"
    window = encode(tokenizer, question_ids(tokenizer, "学院有哪些专业和计划？"), passage)
    start = passage.index(answer)
    first, last = token_targets(window, start, start + len(answer))
    assert last - first + 1 > 40
    start_logits, end_logits = np.zeros(len(window.ids)), np.zeros(len(window.ids))
    start_logits[first], end_logits[last] = 9.0, 9.0
    span = best_span(window, start_logits, end_logits, 0.0)
    assert passage[span.start : span.end] == answer


def test_scores_follow_cmrc_2018():
    assert segment("Model X售价30万元。") == ["model", "x", "售", "价", "30", "万", "元"]
    assert exact_match("200亿元。", ["200亿元"]) == 1.0
    assert exact_match("200亿", ["200亿元"]) == 0.0
    assert f1_score("200亿", ["200亿元"]) == pytest.approx(0.8)  # tokens 200|亿 of 200|亿|元
    assert f1_score("基金规模200亿元", ["200亿元"]) == pytest.approx(0.6)  # 3 of 7 tokens, all 3 of gold
    assert f1_score("", ["200亿元"]) == 0.0


def test_training_examples_hold_their_answers_and_make_hard_negatives(tiny_squad):
    examples = make_examples([tiny_squad], "train", seed=0)
    sides = {n: split_of(f"文章{n}") for n in range(12)}
    assert set(sides.values()) == {"train", "heldout"}  # the tiny file straddles the split
    positives = [e for e in examples if e.answer]
    questions = [i.question for i in read_items(tiny_squad, "train")]
    assert len(questions) == 2 * list(sides.values()).count("train")
    # Each question is read in both window shapes (a chunk, sentences around it) when they differ.
    assert sorted({e.question for e in positives}) == sorted(questions) and len(positives) <= 2 * len(questions)
    for e in positives:
        assert e.passage[e.answer[0] : e.answer[1]] == ANSWERS[e.question.split("：", 1)[1]]
    negatives = [e for e in examples if e.answer is None]
    assert "deleted" in {e.kind for e in negatives}  # same passage, the answer sentence cut out
    for e in negatives:
        assert ANSWERS[e.question.split("：", 1)[1]] not in e.passage
    # No question of a held-out article reaches training.
    trained_on = {int(e.question[2 : e.question.index("：")]) for e in examples}
    assert trained_on == {n for n, side in sides.items() if side == "train"}


def test_read_negatives_are_the_windows_the_answerer_reads_without_the_answer(tiny_squad, embedder):
    from rag.reader.mining import read_negatives

    read = read_negatives(tiny_squad, embedder=embedder)
    assert read and set(read) <= {i.question for i in read_items(tiny_squad, "train")}
    for question, windows in read.items():
        answer = ANSWERS[question.split("：", 1)[1]]
        assert windows and all(answer not in w and (w in CONTEXT_A or w in CONTEXT_B) for w in windows)
    examples = make_examples([tiny_squad], "train", seed=0, read={tiny_squad.stem: read})
    made = [e for e in examples if e.kind == "read"]
    assert len(made) == sum(map(len, read.values()))
    assert all(e.answer is None and e.shape == "sentences" and e.passage in read[e.question] for e in made)


def test_training_with_read_negatives_counts_them(tiny_squad, tmp_path):
    from rag.cli import main

    out = tmp_path / "reader"
    assert main(["train-reader", "--data", str(tiny_squad), "--out", str(out), "--max-steps", "1", "--read-negatives"]) == 0
    record = json.loads((out / "reader.json").read_text(encoding="utf-8"))["training"]
    assert record["train"]["read_negatives"] is True and record["examples"]["read"] > 0


def test_nearby_negatives_are_the_windows_an_answer_competes_with_and_leave_the_rest_alone(tiny_squad):
    plain = make_examples([tiny_squad], "train", seed=0)
    listwise = make_examples([tiny_squad], "train", seed=0, nearby=True)
    nearby = [e for e in listwise if e.kind == "nearby"]
    assert nearby and all(e.answer is None and e.shape == "sentences" for e in nearby)
    for e in nearby:
        # Sentences of the question's own paragraph, without its answer.
        assert ANSWERS[e.question.split("：", 1)[1]] not in e.passage
        assert e.passage in (CONTEXT_A if e.passage in CONTEXT_A else CONTEXT_B)
    # Every window knows its question; the other examples are the same with or without nearby ones.
    by_group = {}
    for e in listwise:
        by_group.setdefault(e.group, set()).add(e.question)
    assert all(len(questions) == 1 for questions in by_group.values())
    key = lambda e: (e.question, e.passage, e.kind, e.answer)  # noqa: E731
    assert sorted(map(key, plain)) == sorted(key(e) for e in listwise if e.kind != "nearby")


def test_listwise_batches_keep_a_questions_sentence_windows_together(tiny_squad):
    import random

    from rag.embed.torch_e5 import TorchE5
    from rag.reader.train import Encoded, question_batches
    from rag.reader.windows import encode, question_ids

    tok = TorchE5().tokenizer
    examples = make_examples([tiny_squad], "train", seed=0, nearby=True)
    encoded = [Encoded(encode(tok, question_ids(tok, e.question), e.passage), 0, 0, e.answer is not None, e.kind,
                       e.group, e.shape) for e in examples]
    made = question_batches(encoded, 1024, random.Random(0))
    assert sorted(i for b in made for i in b) == list(range(len(encoded)))  # each window once
    home = {}
    for n, batch in enumerate(made):
        for i in batch:
            if encoded[i].shape == "sentences":
                assert home.setdefault(encoded[i].group, n) == n


def test_listwise_loss_ranks_a_questions_answer_window_above_its_negatives():
    from rag.reader.train import Encoded, _listwise_loss

    window = Window(ids=(0, 1), first=1, spans=((0, 1),), passage="字")
    items = [Encoded(window, 1, 1, True, "answer", 7), Encoded(window, 0, 0, False, "nearby", 7),
             Encoded(window, 0, 0, False, "nearby", 7), Encoded(window, 1, 1, True, "answer", 8)]
    right = _listwise_loss(torch, items, torch.tensor([4.0, -2.0, -3.0, 0.0]))
    wrong = _listwise_loss(torch, items, torch.tensor([-2.0, 4.0, -3.0, 0.0]))
    assert float(right) < 0.01 < 5.0 < float(wrong)  # question 8 has no negatives: it adds nothing


def test_a_listwise_training_step_runs_and_saves(tiny_squad, tmp_path):
    from rag.reader.train import TrainConfig, train

    from rag.reader.model import ReaderModel
    from rag.reader.train import validate

    record = train([tiny_squad], tmp_path / "reader", TrainConfig(max_steps=2, tokens_per_batch=1024, listwise=True),
                   progress=None)
    assert record["steps"] == 2 and record["examples"].get("nearby", 0) > 0
    assert record["train"]["listwise"] is True
    # Held-out scoring, with and without the windows a question's answer competes with at run time.
    model = ReaderModel.load(tmp_path / "reader")
    plain, nearby = validate(model, [tiny_squad]), validate(model, [tiny_squad], nearby=True)
    assert nearby["windows"] > plain["windows"] > 0
    assert nearby["span_f1"] == plain["span_f1"]  # the same answer windows
    assert 0.0 <= nearby["question_pick"] <= 1.0 and 0.0 <= plain["question_pick"] <= 1.0


def test_listwise_training_ranks_with_its_own_head_and_leaves_answerability_pointwise(tiny_squad, tmp_path):
    from rag.reader.model import CONFIG_FILE, ReaderModel
    from rag.reader.read import read_windows
    from rag.reader.train import Encoded, TrainConfig, _listwise_loss, train

    plain = tmp_path / "plain"
    train([tiny_squad], plain, TrainConfig(max_steps=2, tokens_per_batch=1024), progress=None)
    model = ReaderModel.load(plain, for_training=True)
    assert model.net.rank is None
    ids = [list(encode(model.tokenizer, question_ids(model.tokenizer, "工厂总经理是谁？"), CONTEXT_B).ids),
           list(encode(model.tokenizer, question_ids(model.tokenizer, "工厂总经理是谁？"), CONTEXT_A).ids)]
    model.add_rank_head()  # starts as a copy: the first ranking is the answerability ranking
    model.net.eval()
    with torch.no_grad():
        _, _, answerable, rank = model.forward(ids)
    assert torch.allclose(answerable, rank)
    # The listwise loss reaches the ranking head only: answerability keeps one meaning across questions.
    model.net.train()
    _, _, answerable, rank = model.forward(ids)
    window = Window(ids=(0, 1), first=1, spans=((0, 1),), passage="字")
    _listwise_loss(torch, [Encoded(window, 1, 1, True, "answer", 3), Encoded(window, 0, 0, False, "nearby", 3)],
                   rank).backward()
    assert all(p.grad is None for p in model.net.answerable.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.rank.parameters())

    ranked = tmp_path / "ranked"
    train([tiny_squad], ranked, TrainConfig(max_steps=2, tokens_per_batch=1024, listwise=True, init=str(plain)),
          progress=None)
    assert json.loads((ranked / CONFIG_FILE).read_text(encoding="utf-8"))["rank_head"] is True
    loaded = ReaderModel.load(ranked, bf16=False)
    assert loaded.net.rank is not None
    windows = [encode(loaded.tokenizer, question_ids(loaded.tokenizer, "工厂总经理是谁？"), c) for c in (CONTEXT_A, CONTEXT_B)]
    spans = read_windows(loaded, windows)
    assert all(s.rank is not None and s.order == s.rank for s in spans)
    assert any(s.rank != s.answerable for s in spans)  # trained apart


def test_a_few_training_steps_save_and_load_the_same_reader(tiny_squad, tmp_path):
    from rag.reader.model import ADAPTER_FILE, ReaderModel
    from rag.reader.train import TrainConfig, train

    out = tmp_path / "reader"
    record = train([tiny_squad], out, TrainConfig(max_steps=3, tokens_per_batch=1024), progress=None)
    assert record["steps"] == 3 and record["tokens"] > 0
    assert (out / ADAPTER_FILE).stat().st_size < 5 * 1024 * 1024
    trained = ReaderModel.load(out, for_training=True)
    merged = ReaderModel.load(out, bf16=False)
    ids = [list(encode(trained.tokenizer, question_ids(trained.tokenizer, "工厂总经理是谁？"), CONTEXT_B).ids)]
    with torch.no_grad():
        trained.net.eval()
        a = trained.forward(ids)
        b = merged.forward(ids)
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=2e-3), (x - y).abs().max()
    # The adapter moved away from its initialisation: the heads learned something.
    fresh = ReaderModel.create()
    assert not torch.allclose(fresh.net.span.weight, trained.net.span.weight.float())


def test_training_autocasts_to_bf16_only_where_the_cpu_computes_it(tiny_squad, tmp_path, monkeypatch):
    # Emulated bf16 made a training step ~16x slower than fp32 on an AVX2-only CPU (82 s against 5.2 s).
    import rag.reader.train as train_module

    autocast = torch.autocast
    used = []

    def spy(*args, **kwargs):
        used.append(kwargs.get("enabled", True))
        return autocast(*args, **kwargs)

    monkeypatch.setattr(torch, "autocast", spy)
    monkeypatch.setattr(train_module, "has_bf16", lambda: False)
    config = train_module.TrainConfig(max_steps=1, tokens_per_batch=1024)
    record = train_module.train([tiny_squad], tmp_path / "reader", config, progress=None)
    assert used == [False] and record["train"]["bf16"] is False
    saved = json.loads((tmp_path / "reader" / "reader.json").read_text(encoding="utf-8"))
    assert saved["training"]["train"]["bf16"] is False  # the model card's command can say how it was trained


def test_training_can_continue_from_an_adapter_and_keeps_its_history(tiny_squad, tmp_path, capsys):
    from rag.cli import main
    from rag.reader.model import ReaderModel

    first = tmp_path / "first"
    assert main(["train-reader", "--data", str(tiny_squad), "--out", str(first), "--max-steps", "2"]) == 0
    again = tmp_path / "again"
    assert main(["train-reader", "--data", str(tiny_squad), "--out", str(again), "--max-steps", "1",
                 "--init", str(first), "--lr", "1e-4"]) == 0
    record = json.loads((again / "reader.json").read_text(encoding="utf-8"))["training"]
    assert record["train"]["init"] == str(first) and record["continued_from"]["steps"] == 2
    # It started from the first adapter's weights, not a fresh initialisation: one small step away from them.
    before = ReaderModel.load(first, for_training=True).net.span.weight
    after = ReaderModel.load(again, for_training=True).net.span.weight
    fresh = ReaderModel.create().net.span.weight
    assert (after - before).abs().max() < (after - fresh).abs().max()
    capsys.readouterr()
    assert main(["train-reader", "--data", str(tiny_squad), "--init", str(tmp_path / "nothing")]) == 2
    assert "no reader adapter there" in capsys.readouterr().err


def test_a_damaged_adapter_is_refused_with_a_clear_message(tmp_path):
    from rag.reader.model import ReaderModel, ReaderUnavailable

    (tmp_path / "reader.json").write_text('{"format": "wenyu-reader/1"}', encoding="utf-8")
    (tmp_path / "adapter.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ReaderUnavailable, match="no usable reader adapter"):
        ReaderModel.load(tmp_path)


def test_train_reader_command_runs_a_few_steps(tiny_squad, tmp_path, capsys):
    from rag.cli import main

    out = tmp_path / "cli-reader"
    assert main(["train-reader", "--data", str(tiny_squad), "--out", str(out), "--max-steps", "2",
                 "--precision", "fp32"]) == 0
    printed = capsys.readouterr()
    assert "trained 2 steps" in printed.out
    assert json.loads((out / "reader.json").read_text(encoding="utf-8"))["training"]["train"]["bf16"] is False
    # The progress bar redraws with a real carriage return, not the escaped text the CLI shows for documents.
    assert "train reader" in printed.err and "\\u000d" not in printed.err
    assert (out / "reader.json").exists()
    assert main(["train-reader", "--data", str(tmp_path / "missing.json")]) == 2
    assert "training data not found" in capsys.readouterr().err


TRADITIONAL = ("賽力斯超級工廠位於兩江新區。工廠裡有3000台機器人在5G網絡下互聯互通。"
               "關鍵工序自動化率達到100%。工廠總經理曹楠介紹了生產線的情況。")


def test_traditional_training_text_is_read_in_simplified_with_its_offsets(tmp_path):
    path = tmp_path / "drcd-like.json"
    qas = [("工廠總經理是誰？", "曹楠"), ("工廠裡有多少台機器人？", "3000台")]
    path.write_text(json.dumps(_squad([(f"文章{n}", TRADITIONAL, qas) for n in range(6)]), ensure_ascii=False),
                    encoding="utf-8")
    items = read_items(path, "all")
    assert items and all(i.context == CONTEXT_B for i in items)  # the same article in Simplified
    assert {i.question for i in items} == {"工厂总经理是谁？", "工厂里有多少台机器人？"}
    for item in items:
        assert item.context[item.start : item.end] == item.answers[0]


def test_rag_reader_names_the_adapter_and_its_abstention_model(tmp_path, monkeypatch):
    from rag.config import load_settings
    from rag.paths import SHIPPED_READER, reader_dir
    from rag.reader.reader import Reader, read_abstention, write_abstention

    assert reader_dir({}) == SHIPPED_READER
    assert read_abstention(SHIPPED_READER)["threshold"] > 0  # the shipped adapter comes calibrated
    own = tmp_path / "my-reader"
    own.mkdir()
    write_abstention(own, {"weights": {"answerable": 2.0}, "bias": -1.0, "threshold": 0.42})
    monkeypatch.setenv("RAG_READER", str(own))
    assert Reader().folder == own
    answer = load_settings(tmp_path / "none.toml").answer
    assert (answer.reader_weights, answer.reader_bias, answer.reader_threshold) == ({"answerable": 2.0}, -1.0, 0.42)
    (own / "abstention.json").write_text("[]", encoding="utf-8")  # damaged: no model rather than a traceback
    assert read_abstention(own) == {}


def test_retraining_drops_the_abstention_model_of_the_old_adapter(tiny_squad, tmp_path):
    from rag.reader.reader import ABSTENTION_FILE, write_abstention
    from rag.reader.train import TrainConfig, train

    out = tmp_path / "reader"
    train([tiny_squad], out, TrainConfig(max_steps=1, tokens_per_batch=1024), progress=None)
    write_abstention(out, {"weights": {}, "bias": 0.0, "threshold": 0.3})
    (out / "MODEL_CARD.md").write_text("card", encoding="utf-8")
    train([tiny_squad], out, TrainConfig(max_steps=1, tokens_per_batch=1024), progress=None)
    assert (out / "MODEL_CARD.md").read_text(encoding="utf-8") == "card"
    assert not (out / ABSTENTION_FILE).exists()  # fitted on the old adapter's scores


def test_the_shipped_reader_answers_traditional_text_with_spans_of_the_original():
    from rag.reader.reader import Reader

    span, = Reader().read("工廠總經理是誰？", [TRADITIONAL])
    assert TRADITIONAL[span.start : span.end] == "曹楠"


def test_a_stopped_run_resumed_ends_with_the_weights_of_an_unbroken_one(tiny_squad, tmp_path):
    from safetensors.torch import load_file

    from rag.reader.train import TrainConfig, checkpoint_folder, train

    # Two epochs, so the resumed run also crosses an epoch boundary and redraws the batch order.
    config = TrainConfig(epochs=2, tokens_per_batch=1024, bf16=False, seed=3)
    whole = train([tiny_squad], tmp_path / "whole", config, progress=None)
    assert whole["steps"] >= 4
    stopped = train([tiny_squad], tmp_path / "broken", config, progress=None, stop_after=whole["steps"] // 2 + 1)
    assert stopped["stopped"] and not (tmp_path / "broken").exists()
    assert (checkpoint_folder(tmp_path / "broken") / "checkpoint.pt").is_file()
    resumed = train([tiny_squad], tmp_path / "broken", config, progress=None, resume=True)
    assert resumed["steps"] == whole["steps"] and resumed["resumed"]
    assert resumed["tokens"] == whole["tokens"]
    a, b = load_file(str(tmp_path / "whole" / "adapter.safetensors")), load_file(str(tmp_path / "broken" / "adapter.safetensors"))
    assert set(a) == set(b) and all(a[k].equal(b[k]) for k in a)
    assert not checkpoint_folder(tmp_path / "broken").exists()  # a finished run leaves no checkpoint


def test_resuming_with_other_settings_or_no_checkpoint_is_refused(tiny_squad, tmp_path):
    from rag.reader.train import ResumeError, TrainConfig, train

    with pytest.raises(ResumeError, match="nothing to resume"):
        train([tiny_squad], tmp_path / "r", TrainConfig(tokens_per_batch=1024, bf16=False), progress=None, resume=True)
    train([tiny_squad], tmp_path / "r", TrainConfig(tokens_per_batch=1024, bf16=False), progress=None, stop_after=1)
    with pytest.raises(ResumeError, match="differs in: lr"):
        train([tiny_squad], tmp_path / "r", TrainConfig(tokens_per_batch=1024, bf16=False, lr=1e-4), progress=None,
              resume=True)


def test_swapped_negatives_ask_an_attribute_or_year_the_window_does_not_hold(tmp_path):
    from rag.reader.data import make_examples

    context = "该校成立于2005年，校长是王明。学校位于重庆。学校有学生三千人。"
    path = tmp_path / "swap.json"
    path.write_text(json.dumps(_squad([(f"t{n}", context, [("学校的校长是谁？", "王明"), ("2005年成立的是哪所学校？", "该校")])
                                       for n in range(20)]), ensure_ascii=False), encoding="utf-8")
    swapped = [e for e in make_examples([path], "all", seed=0, swaps=True) if e.kind == "swapped"]
    assert swapped and all(e.answer is None for e in swapped)
    asked = {e.question for e in swapped}
    assert "学校的副校长是谁？" in asked
    assert any(q.endswith("年成立的是哪所学校？") and "2005" not in q for q in asked)
    for e in swapped:
        assert "副校长" not in e.passage
    def key(e):
        return e.group, e.kind, e.question, e.passage

    plain = sorted(make_examples([path], "all", seed=0), key=key)
    assert sorted((e for e in make_examples([path], "all", seed=0, swaps=True) if e.kind != "swapped"), key=key) == plain


def test_sources_pick_their_articles_and_can_take_questions_from_another_file(tmp_path):
    from rag.reader.data import Source, read_items

    zh = tmp_path / "zh.json"
    en = tmp_path / "en.json"
    titles = [f"文章{n}" for n in range(10)]
    zh.write_text(json.dumps(_squad([(t, CONTEXT_A, [("基金总规模是多少？", "200亿元")]) for t in titles]),
                  ensure_ascii=False), encoding="utf-8")
    en.write_text(json.dumps(_squad([(t, "The fund is large.", [("How large is the fund?", "large")]) for t in titles])),
                  encoding="utf-8")
    assert len(read_items(Source(zh, "train"), "train")) == 10 and not read_items(Source(zh, "train"), "heldout")
    assert len(read_items(Source(zh, "dev"), "heldout")) == 10 and not read_items(Source(zh, "dev"), "train")
    split = read_items(Source(zh), "train"), read_items(Source(zh), "heldout")
    assert len(split[0]) + len(split[1]) == 10 and split[1]
    paired = read_items(Source.parse(f"{en}@{zh}:train"), "train")
    assert {i.question for i in paired} == {"How large is the fund?"}
    assert {i.answers for i in paired} == {("200亿元",)}
    assert Source.parse(f"{en}@{zh}:dev") == Source(zh, "dev", en)


def test_an_adapter_records_the_languages_of_its_questions(tmp_path):
    from rag.reader.data import Source
    from rag.reader.reader import Reader
    from rag.reader.train import TrainConfig, train

    zh, en = tmp_path / "zh.json", tmp_path / "en.json"
    titles = [f"文章{n}" for n in range(6)]
    zh.write_text(json.dumps(_squad([(t, CONTEXT_A, [("基金总规模是多少？", "200亿元")]) for t in titles]),
                  ensure_ascii=False), encoding="utf-8")
    en.write_text(json.dumps(_squad([(t, "x", [("How large is the fund in all?", "x")]) for t in titles])),
                  encoding="utf-8")
    chinese = train([Source(zh, "train")], tmp_path / "zh-reader", TrainConfig(max_steps=1, tokens_per_batch=1024,
                                                                              bf16=False), progress=None)
    assert chinese["languages"] == ["zh"] and not Reader(tmp_path / "zh-reader").reads_english
    both = train([Source(zh, "train"), Source(zh, "train", en)], tmp_path / "en-reader",
                 TrainConfig(max_steps=1, tokens_per_batch=1024, bf16=False), progress=None)
    assert both["languages"] == ["en", "zh"] and Reader(tmp_path / "en-reader").reads_english


def test_a_stopped_run_can_resume_on_a_shorter_schedule_and_says_so(tiny_squad, tmp_path):
    from rag.reader.train import ResumeError, TrainConfig, train

    long = TrainConfig(epochs=2, tokens_per_batch=1024, bf16=False)
    train([tiny_squad], tmp_path / "r", long, progress=None, stop_after=2)
    short = replace(long, max_steps=3)
    with pytest.raises(ResumeError, match="differs in: max_steps"):
        train([tiny_squad], tmp_path / "r", short, progress=None, resume=True)
    record = train([tiny_squad], tmp_path / "r", short, progress=None, resume=True, reschedule=True)
    assert record["steps"] == 3 and record["rescheduled"] == {"at_step": 2, "from": {"epochs": 2, "max_steps": None}}
    assert (tmp_path / "r" / "adapter.safetensors").is_file()


def test_a_reader_on_the_first_layers_only_trains_saves_and_loads_shallower(tiny_squad, tmp_path):
    from rag.reader.model import ReaderConfig, ReaderModel
    from rag.reader.train import TrainConfig, train

    out = tmp_path / "six"
    train([tiny_squad], out, TrainConfig(max_steps=1, tokens_per_batch=1024, bf16=False), ReaderConfig(layers=6),
          progress=None)
    model = ReaderModel.load(out, bf16=False)
    assert model.config.layers == 6 and len(model.net.encoder.qkv) == 6
    assert json.loads((out / "reader.json").read_text(encoding="utf-8"))["layers"] == 6
    with pytest.raises(ValueError, match="layers must be within 1..12"):
        ReaderModel.create(ReaderConfig(layers=13))
