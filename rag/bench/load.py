"""`rag bench --load`: many users at once against a real `rag chat` server while its documents change.

N clients ask `/ask` back to back (the gold questions in turn), each through its own gradio_client,
for T seconds or until M answers in all. One more client meanwhile adds a small document through
`/add_document`, offers the same text again under another name (refused as a duplicate), and removes
it through `/delete_document`, over and over. Reported: requests, errors, latency p50/p95/max, the uploads,
refusals and deletes, the document count before and after (it must equal before + accepted uploads
- deletes), and the uploads left in Gradio's upload folder (there must be none).

The server is `rag chat` started on 127.0.0.1 over a temporary data folder (a copy of `seeds/`) and
killed at the end, or one already running named by `url`, which must be a loopback address: a load
test is never pointed at another machine.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rag.bench.common import DEFAULT_GOLD, machine, markdown_table, note_load, out_folder, read_questions
from rag.paths import SEEDS
from rag.types import jsonable

# The started server's passage vectors are kept here (its index folder links it, as `rag eval --squad`
# does), so only the first run embeds the seeds: ~15 s on two idle cores, minutes on a busy machine.
DEFAULT_CACHE = Path.home() / ".cache" / "wenyu" / "load-cache"
MAX_CLIENTS = 64
MAX_SECONDS = 3600
_LOOPBACK_NAMES = ("localhost",)
_NAME = "load-test-"  # the uploaded documents' names start so, which is how their leftovers are found


@dataclass(frozen=True)
class LoadConfig:
    """How hard and how long to load the server; every run is bounded in time and in requests."""

    clients: int = 8
    seconds: float = 30.0
    max_requests: int = 10_000  # answers over all clients; the run stops at whichever bound comes first
    url: str | None = None  # a running server on this machine; None starts one
    docs_dir: Path = SEEDS  # copied into the started server's data folder
    cache_dir: Path | None = DEFAULT_CACHE  # embedding cache the server's index links to; None: none
    gold: Path = DEFAULT_GOLD
    out_dir: Path | None = None  # None: $RAG_HOME/reports/bench
    churn: bool = True  # the extra client that uploads and deletes
    pause: float = 1.0  # seconds between its rounds, so the index is not rebuilt without a break
    request_timeout: float = 120.0
    startup_timeout: float = 900.0  # a first build on a loaded two-core machine can take minutes
    quick: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise ValueError(f"clients must be from 1 to {MAX_CLIENTS}, got {self.clients}")
        if not 0 < self.seconds <= MAX_SECONDS:
            raise ValueError(f"seconds must be above 0 and at most {MAX_SECONDS}, got {self.seconds}")
        if self.max_requests < 1:
            raise ValueError(f"max_requests must be at least 1, got {self.max_requests}")
        if min(self.request_timeout, self.startup_timeout) <= 0 or self.pause < 0:
            raise ValueError("timeouts must be positive and the pause not negative")
        if self.url is not None:
            check_loopback(self.url)

    @classmethod
    def quick_run(cls, **overrides) -> LoadConfig:
        """Return the settings of a quick run: 2 clients for 5 s (what the test suite runs)."""
        return cls(**{"clients": 2, "seconds": 5.0, "quick": True, **overrides})


@dataclass(frozen=True)
class LoadReport:
    """The results of one run and where they were written."""

    results: dict
    json_path: Path
    latest_path: Path | None  # the markdown, written by full runs only
    markdown: str = field(repr=False, default="")

    @property
    def passed(self) -> bool:
        """True when no request failed, the documents add up, and no upload stayed in Gradio's folder."""
        r = self.results
        return (r["asks"]["errors"] == 0 and not r["churn"]["errors"] and not r["stuck"]
                and r["documents"]["consistent"] and not r.get("upload_leftovers"))


def check_loopback(url: str) -> str:
    """Return `url` if it is http(s) on this machine (127.0.0.0/8, ::1, localhost); raise ValueError otherwise."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host.lower() in _LOOPBACK_NAMES
    if parts.scheme not in ("http", "https") or not loopback:
        raise ValueError(f"the load test runs against this machine only (127.0.0.1, ::1, localhost), got {url!r}")
    return url.rstrip("/")


def run(config: LoadConfig, progress: Callable[[str], None] | None = None) -> LoadReport:
    """Start (or reach) the server, load it as `config` says, stop what was started, write and return the results."""
    say = progress or (lambda message: None)
    questions = read_questions(config.gold, None)
    results: dict = {"config": jsonable(dataclasses.asdict(config)),
                     "machine": machine(libraries=("gradio", "gradio_client")), "notes": []}
    workdir = Path(tempfile.mkdtemp(prefix="rag-load-"))
    try:
        server = Server(config, workdir) if config.url is None else None
        try:
            if server is not None:
                say(f"starting `rag chat` on 127.0.0.1 over a copy of {config.docs_dir}")
                url = server.start(config.startup_timeout)
                results["server"] = {"url": url, "started": True, "startup_s": server.startup_s,
                                     "pid": server.process.pid}
            else:
                url = check_loopback(config.url)
                results["server"] = {"url": url, "started": False, "startup_s": None}
            say(f"{config.clients} clients asking for {config.seconds:g} s"
                + (", one more uploading and deleting" if config.churn else ""))
            results.update(load(url, questions, config, workdir))
            if server is not None:
                # Only the server we started has an upload folder we know; no upload may stay in it.
                results["upload_leftovers"] = sorted(str(p.relative_to(server.upload_dir))
                                                     for p in server.upload_dir.rglob(f"{_NAME}*"))
                results["documents"]["on_disk"] = len(server.document_files())
        finally:
            if server is not None:
                server.stop()
                say("server stopped")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    note_load(results, "latencies are inflated")
    return write(results, config)


# --- the server --------------------------------------------------------------------------------


class Server:
    """`rag chat` in a child process on a free loopback port, over a private data folder under `workdir`."""

    def __init__(self, config: LoadConfig, workdir: Path) -> None:
        self.config = config
        self.home = workdir / "home"
        self.docs_dir = self.home / "documents"
        self.index_dir = self.home / "index"
        self.upload_dir = workdir / "gradio"  # GRADIO_TEMP_DIR of the server
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen | None = None
        self.startup_s: float | None = None

    def start(self, timeout: float) -> str:
        """Copy the documents (and index), start the server, wait until it answers; return its URL."""
        shutil.copytree(self.config.docs_dir, self.docs_dir)
        if self.config.cache_dir is not None:
            cache = Path(self.config.cache_dir).expanduser()
            cache.mkdir(parents=True, exist_ok=True)
            self.index_dir.mkdir(parents=True)
            (self.index_dir / "cache").symlink_to(cache.resolve(), target_is_directory=True)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k not in ("RAG_DOCS", "RAG_INDEX")}
        env.update(RAG_HOME=str(self.home), GRADIO_TEMP_DIR=str(self.upload_dir), TQDM_DISABLE="1",
                   GRADIO_ANALYTICS_ENABLED="False")
        # `rag chat` itself, through rag.lifetime, which first ties the server's life to this process.
        command = [sys.executable, "-m", "rag.lifetime", str(os.getpid()), "rag.cli", "chat", "--host", "127.0.0.1",
                   "--port", str(port), "--docs", str(self.docs_dir), "--index", str(self.index_dir)]
        began = time.monotonic()
        with open(self.log_path, "wb") as log:
            # A session of its own, so stop() ends the server and its helpers, and nothing else.
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never via a proxy
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"`rag chat` exited with code {self.process.returncode}:\n{self._log_tail()}")
            try:
                with opener.open(f"{url}/gradio_api/info", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - began > timeout:
                self.stop()
                raise RuntimeError(f"`rag chat` did not answer within {timeout:g} s:\n{self._log_tail()}")
            time.sleep(0.5)
        self.startup_s = round(time.monotonic() - began, 1)
        return url

    def stop(self) -> None:
        """End the server's process group: SIGTERM, then SIGKILL after 15 s."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 15), (getattr(signal, "SIGKILL", signal.SIGTERM), 15)):
            try:
                if hasattr(os, "killpg"):
                    os.killpg(process.pid, sig)  # the group started for it: the server and its children
                else:
                    process.kill()
            except ProcessLookupError:
                return
            try:
                process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def document_files(self) -> list[Path]:
        """Return the document files in the server's documents folder (and its subfolders), of any type it converts."""
        from rag.convert import SUPPORTED_SUFFIXES
        from rag.load import document_files

        return [p for p in document_files(self.docs_dir).values() if p.suffix.lower() in SUPPORTED_SUFFIXES]

    def _log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the clients -------------------------------------------------------------------------------


def _client(url: str):
    from gradio_client import Client

    # Loopback only and offline: no proxy from the environment, no telemetry.
    return Client(url, verbose=False, analytics_enabled=False, httpx_kwargs={"trust_env": False})


def _call(client, *args, api_name: str, timeout: float):
    """Return the endpoint's reply, waiting at most `timeout` seconds (gradio_client's predict waits forever)."""
    return client.submit(*args, api_name=api_name).result(timeout=timeout)


class _Budget:
    """The requests left over all clients, taken one at a time."""

    def __init__(self, total: int) -> None:
        self._left, self._lock = total, threading.Lock()

    def take(self) -> bool:
        with self._lock:
            self._left -= 1
            return self._left >= 0


def load(url: str, questions: list[str], config: LoadConfig, workdir: Path) -> dict:
    """Run the askers (and the uploader) against `url`; return the asks', churn's and documents' results."""
    before = len(_call(_client(url), api_name="/documents", timeout=config.request_timeout))
    samples: list[tuple[int, float, float, str | None]] = []  # client, start s, latency s, error
    churn: dict = {"uploads": 0, "refused": 0, "deletes": 0, "upload_s": [], "delete_s": [], "errors": []}
    budget = _Budget(config.max_requests)
    began = time.monotonic()
    deadline = began + config.seconds

    def ask(n: int) -> None:
        try:
            client = _client(url)
        except Exception as exc:  # a client that cannot even connect is one failed request
            samples.append((n, 0.0, 0.0, f"connect: {type(exc).__name__}: {exc}"))
            return
        i = n * 7  # clients start at different questions
        while time.monotonic() < deadline and budget.take():
            question = questions[i % len(questions)]
            i += 1
            start = time.monotonic()
            try:
                answer = _call(client, question, api_name="/ask", timeout=config.request_timeout)
                ok = isinstance(answer, dict) and "text" in answer
                error = None if ok else f"reply without text: {answer!r}"[:200]
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            samples.append((n, start - began, time.monotonic() - start, error))

    threads = [threading.Thread(target=ask, args=(n,), name=f"asker-{n}", daemon=True) for n in range(config.clients)]
    if config.churn:
        threads.append(threading.Thread(target=_churn, args=(url, workdir, deadline, config, churn),
                                        name="uploader", daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:  # every request is bounded, so this is too; daemon threads never hold the exit
        thread.join(max(0.0, deadline + 4 * config.request_timeout - time.monotonic()))
    elapsed = time.monotonic() - began
    stuck = [t.name for t in threads if t.is_alive()]
    after = len(_call(_client(url), api_name="/documents", timeout=config.request_timeout))
    expected = before + churn["uploads"] - churn["deletes"]
    return {
        "asks": summarize(samples, elapsed, config.clients),
        "churn": {"uploads": churn["uploads"], "refused": churn["refused"], "deletes": churn["deletes"],
                  "errors": churn["errors"], "upload_s": _spread(churn["upload_s"]),
                  "delete_s": _spread(churn["delete_s"])},
        "documents": {"before": before, "after": after, "expected": expected, "consistent": after == expected},
        "seconds": round(elapsed, 1),
        "stuck": stuck,  # threads still waiting when the run gave up on them (their figures are missing)
    }


def _churn(url: str, workdir: Path, deadline: float, config: LoadConfig, out: dict) -> None:
    """Add a new document, offer its text again (must be refused), delete it; repeat until the deadline."""
    from gradio_client import handle_file

    tag = uuid.uuid4().hex[:6]  # documents of an earlier run on the same server never collide
    client = _client(url)
    folder = workdir / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    round_ = 0
    while time.monotonic() < deadline:
        name = f"{_NAME}{tag}-{round_}.txt"
        text = (f"负载测试临时文档 {tag}-{round_}\n\n这篇文档由负载测试在第 {round_} 轮上传，编号 {tag}-{round_}。"
                f"它在同一轮中被删除，不应留在知识库里。\n")
        (folder / name).write_text(text, encoding="utf-8")
        copy = folder / f"{_NAME}{tag}-{round_}-copy.txt"
        copy.write_text(text, encoding="utf-8")
        try:
            start = time.monotonic()
            added = _call(client, handle_file(str(folder / name)), api_name="/add_document",
                          timeout=config.request_timeout)
            out["upload_s"].append(time.monotonic() - start)
            out["uploads"] += 1
        except Exception as exc:
            out["errors"].append(f"upload {name}: {type(exc).__name__}: {exc}"[:300])
            break
        try:
            wrong = _call(client, handle_file(str(copy)), api_name="/add_document", timeout=config.request_timeout)
            out["uploads"] += 1
            out["errors"].append(f"{copy.name} was accepted, but its text equals {added['file']}")
            _call(client, wrong["file"], api_name="/delete_document", timeout=config.request_timeout)
            out["deletes"] += 1
        except Exception as exc:
            if "内容相同" in str(exc):
                out["refused"] += 1
            else:
                out["errors"].append(f"duplicate {copy.name}: {type(exc).__name__}: {exc}"[:300])
        try:
            start = time.monotonic()
            _call(client, added["file"], api_name="/delete_document", timeout=config.request_timeout)
            out["delete_s"].append(time.monotonic() - start)
            out["deletes"] += 1
        except Exception as exc:
            out["errors"].append(f"delete {added['file']}: {type(exc).__name__}: {exc}"[:300])
            break
        round_ += 1
        time.sleep(config.pause)


# --- results -----------------------------------------------------------------------------------


def summarize(samples: list[tuple[int, float, float, str | None]], elapsed: float, clients: int) -> dict:
    """Return requests, errors, answers per second and latency p50/p95/max (ms) of the askers' samples."""
    ok = [latency * 1000 for _, _, latency, error in samples if error is None]
    errors = [error for _, _, _, error in samples if error is not None]
    per_client = [sum(1 for n, *_ in samples if n == c) for c in range(clients)]
    stats = {"requests": len(samples), "ok": len(ok), "errors": len(errors), "error_samples": errors[:5],
             "answers_per_s": round(len(ok) / elapsed, 2) if elapsed > 0 else 0.0, "per_client": per_client}
    for name, value in (("p50_ms", 50), ("p95_ms", 95), ("max_ms", 100)):
        stats[name] = round(float(np.percentile(ok, value)), 1) if ok else None
    stats["mean_ms"] = round(float(np.mean(ok)), 1) if ok else None
    return stats


def _spread(seconds: list[float]) -> dict:
    if not seconds:
        return {"n": 0, "p50": None, "max": None}
    return {"n": len(seconds), "p50": round(float(np.percentile(seconds, 50)), 2), "max": round(max(seconds), 2)}


def write(results: dict, config: LoadConfig) -> LoadReport:
    """Write `load-<timestamp>.json` (and, for a full run, `load-latest.md`) under the out folder; return the report."""
    out = out_folder(config.out_dir)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    json_path = out / f"load-{stamp}.json"
    json_path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    markdown = format_markdown(results)
    latest = None
    if not config.quick:  # a quick run is too small to stand for the project's figures
        latest = out / "load-latest.md"
        latest.write_text(markdown, encoding="utf-8")
    return LoadReport(results, json_path, latest, markdown)


def format_markdown(results: dict) -> str:
    """Return the results as a table and a few lines, headed by the machine and the load it ran under."""
    m, c, a, d, ch = results["machine"], results["config"], results["asks"], results["documents"], results["churn"]
    server = results["server"]
    where = ("`rag chat` started on 127.0.0.1 over a copy of the seeds" if server["started"]
             else f"the running server at {server['url']}")
    lines = [
        f"Load test: {c['clients']} clients asking `/ask` for {c['seconds']:g} s against {where}"
        + (", one more client uploading and deleting a document meanwhile" if c["churn"] else "")
        + f". Machine: {m['cpu']}, {m['cores']} cores; load average {m['load_before']} before, "
          f"{m.get('load_after')} after; {m['when']}" + (" (quick run)" if c["quick"] else ""),
        "",
    ]
    lines += markdown_table(["clients", "seconds", "requests", "errors", "answers/s", "p50 ms", "p95 ms", "max ms"],
                    [[c["clients"], results["seconds"], a["requests"], a["errors"], a["answers_per_s"],
                      a["p50_ms"], a["p95_ms"], a["max_ms"]]])
    leftovers = results.get("upload_leftovers")
    verdict = "consistent" if d["consistent"] else "NOT consistent"
    lines += ["", f"- documents: {d['before']} before, {d['after']} after (expected {d['expected']} = {d['before']} "
                  f"+ {ch['uploads']} uploads - {ch['deletes']} deletes: {verdict})"
                  + (f"; {d['on_disk']} files in the documents folder" if "on_disk" in d else "")]
    if c["churn"]:
        lines.append(f"- {ch['refused']} duplicate uploads refused as they should be; uploads (each with its index "
                     f"update) p50 {ch['upload_s']['p50']} s, max {ch['upload_s']['max']} s; deletes p50 "
                     f"{ch['delete_s']['p50']} s, max {ch['delete_s']['max']} s")
    if leftovers is not None:
        lines.append(f"- uploads left in Gradio's upload folder: {len(leftovers)}")
    if server["startup_s"] is not None:
        lines.append(f"- server start (load, warm-up, page build): {server['startup_s']} s")
    if results.get("stuck"):
        lines.append(f"- still waiting when the run stopped: {', '.join(results['stuck'])}")
    for error in a["error_samples"] + ch["errors"]:
        lines.append(f"- error: {error}")
    lines += [f"- {note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"
