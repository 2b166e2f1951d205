"""A real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol (streaming)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeChatServer:
    """Serves /v1/chat/completions; `reply(request) -> (status, text, delay_seconds)` decides each answer.

    Keep-alive mode: with `ping_every`, the server fills the delay before the text, and `hang` seconds
    after it (before `[DONE]`), with SSE comments (`: ping`), as proxies and some servers do; each one
    resets a per-read socket timeout, so only a wall-clock deadline ends such a call.
    """

    def __init__(self, reply: Callable[[dict], tuple[int, str, float]], ping_every: float | None = None,
                 hang: float = 0.0) -> None:
        self.reply = reply
        self.requests: list[dict] = []
        self.pings = 0
        server = self

        def wait(handler, seconds: float) -> None:
            if not ping_every:
                time.sleep(seconds)
                return
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                handler.wfile.write(b": ping\n\n")
                handler.wfile.flush()
                server.pings += 1
                time.sleep(min(ping_every, max(0.0, end - time.monotonic())))

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                status, text, delay = server.reply(body)
                if status != 200:
                    payload = json.dumps({"error": {"message": "boom", "type": "server_error"}}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                try:
                    wait(self, delay)
                    for i in range(0, len(text), 4):  # stream a few characters per event
                        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "delta": {"content": text[i : i + 4]}, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                        self.wfile.flush()
                    wait(self, hang)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def passages_of(request: dict) -> dict[int, str]:
    """Return the numbered passages of a request's user message."""
    import re

    user = request["messages"][-1]["content"]
    data = user.split("<资料>", 1)[1].split("</资料>", 1)[0]
    parts = re.split(r"^\[(\d+)\] ", data, flags=re.M)
    return {int(n): body for n, body in zip(parts[1::2], parts[2::2])}
