"""Test fakes that stand in for outside services, named as such: a recording fake of an OpenAI-compatible server.

RecordingFakeOpenAI answers /v1/models and /v1/chat/completions on loopback and records the path and headers of
every request it receives, so a test can check what a job's worker really sent (e.g. which API key). It can hold
completions (all of them, or all after the first `hold_after`) until the test releases them, to keep a job
running while the test inspects or kills its worker.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RecordingFakeOpenAI:
    def __init__(self, hold_first: bool = False, hold_after: int | None = None):
        self.requests: list[dict] = []
        self.received = threading.Event()     # set once the first request arrived
        self.held = threading.Event()         # set once a completion is being held
        self.release = threading.Event()      # a held request answers once this is set
        self.hold_after = 0 if hold_first else hold_after
        self._posts = 0
        self._lock = threading.Lock()
        if self.hold_after is None:
            self.release.set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "RecordingFakeOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):   # quiet
                pass

            def _headers(self) -> dict[str, str]:
                return {k.lower(): v for k, v in self.headers.items()}

            def _answer(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.requests.append({"path": self.path, "headers": self._headers()})
                fake.received.set()
                self._answer({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fake.requests.append({"path": self.path, "headers": self._headers(), "body": body})
                fake.received.set()
                with fake._lock:
                    fake._posts += 1
                    hold = fake.hold_after is not None and fake._posts > fake.hold_after
                if hold and not fake.release.is_set():
                    fake.held.set()
                    fake.release.wait(120)
                text = body.get("messages", [{}])[-1].get("content", "")[:200]
                self._answer({"id": "c1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                              "choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": text}}],
                              "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}})

        return Handler
