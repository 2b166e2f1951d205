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

    Faults (`fault`): "bad_json" sends an event that is not JSON halfway through the text; "truncated"
    ends the body after half the text (no finish_reason, no `[DONE]`); "closed" drops the connection
    inside a chunk of a chunked body, as a crashing server or a cut network does.
    """

    def __init__(self, reply: Callable[[dict], tuple[int, str, float]], ping_every: float | None = None,
                 hang: float = 0.0, fault: str | None = None) -> None:
        if fault not in (None, "bad_json", "truncated", "closed"):
            raise ValueError(f"unknown fault {fault!r}")
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
                if fault == "closed":
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def send(data: bytes) -> None:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if fault == "closed" else data)
                    self.wfile.flush()

                def event(delta: dict, finish: str | None) -> bytes:
                    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()

                try:
                    wait(self, delay)
                    for i in range(0, len(text), 4):  # stream a few characters per event
                        if fault and i >= len(text) // 2:
                            if fault == "bad_json":
                                send(b"data: {'choices': [oops\n\n")
                                continue
                            if fault == "closed":  # a chunk announced longer than what follows
                                self.wfile.write(b"400\r\ndata: {\"id\"")
                                self.wfile.flush()
                            self.close_connection = True
                            return
                        send(event({"content": text[i : i + 4]}, None))
                    wait(self, hang)
                    send(event({}, "stop"))
                    send(b"data: [DONE]\n\n")
                    if fault == "closed":
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        if fault == "closed":
            Handler.protocol_version = "HTTP/1.1"  # chunked bodies need HTTP/1.1
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
