"""Which answerer should read an English question: the sentence picker, or the reader fed one of three questions.

The reader was trained on Chinese questions only. For every English question of the dev sets
(eval/english_dev.jsonl and the English ones of eval/calibration.jsonl) this follows the default
path (hybrid retrieval, the sentence scorer's candidates, windows around the best of them) and
compares, on the answerable ones, whether the quoted sentence holds the answer: the picker's best
sentence against the reader asked the English question, the English question followed by its
CC-CEDICT translation, and a Chinese question put together from the translation and a question
word ("重庆人工智能产业基金" + "多大？"). It also prints how many answerable questions the reader's
calibrated abstention model would decline under each. Nothing here reads eval/gold.jsonl.

    rag index --docs seeds --index DIR && python scripts/english_readers.py DIR
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from rag.answer import Answerer, searched_profile
from rag.index.live import load_index
from rag.reading import reading_windows
from rag.retrieve import Retriever
from rag.text import is_english, squash

DEV_SETS = ("eval/english_dev.jsonl", "eval/calibration.jsonl")
_QUESTION_WORDS = [
    (r"\bhow (large|big)\b", "多大"),
    (r"\bhow (many|much)\b", "多少"),
    (r"\bwhen\b|\bwhat (date|day|year|time)\b|\bwhich (date|day|year)\b", "什么时候"),
    (r"\bwho\b", "谁"),
    (r"\bwhere\b", "哪里"),
    (r"\bwhich\b", "哪个"),
    (r"\bwhat\b", "什么"),
]


def chinese_question(question: str, translation) -> str:
    """Return the translation's words run together, then the Chinese word for what is asked."""
    asked = next((word for pattern, word in _QUESTION_WORDS if re.search(pattern, question.lower())), "什么")
    return translation.chinese + asked + "？"


def main(index_dir: Path) -> None:
    index = load_index(index_dir)
    answerer = Answerer(index)
    cut = answerer.settings.answer.reader_threshold
    items = [json.loads(line) for path in DEV_SETS for line in open(path, encoding="utf-8")]
    items = [item for item in items if is_english(item["question"]) and item.get("answers")]
    found = {"picker": 0, "reader, English": 0, "reader, English + translation": 0, "reader, Chinese": 0}
    declined = dict.fromkeys(list(found)[1:], 0)
    for item in items:
        question = item["question"]
        retriever = Retriever(index, answerer.retrieval)
        hits = retriever.run(question)
        profile = searched_profile(question, retriever)
        ranked = answerer.extractive.candidates(profile, retriever.query_vector(question), hits)
        windows = reading_windows(index, ranked, answerer.settings.answer.read_sentences)
        translation = retriever.translation(question)
        unseen = answerer.extractive.unseen(profile)
        quotes = {"picker": ranked[0].text if ranked else ""}
        asked = {"reader, English": question, "reader, English + translation": f"{question} {translation.chinese}",
                 "reader, Chinese": chinese_question(question, translation)}
        for name, text in asked.items():
            reading = answerer.reading.read(text, windows, unseen)
            quotes[name] = reading.hit.chunk.text[slice(*reading.quote)] if reading else ""
            declined[name] += not reading or answerer.reading.confidence(reading.features) < cut
        for name, quote in quotes.items():
            found[name] += any(squash(answer) in squash(quote) for answer in item["answers"])
    print(f"{len(items)} answerable English dev questions; quoted sentence holds the answer:")
    for name, count in found.items():
        extra = f", declined by the reader's abstention model {declined[name]}" if name in declined else ""
        print(f"  {name}: {count / len(items):.3f}{extra}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
