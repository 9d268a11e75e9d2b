"""A FAULT-INJECTING OpenAI-compatible HTTP server on 127.0.0.1, for testing engines' retry/limit behaviour.

It is a real server (http.server, one thread per connection) speaking the chat-completions JSON, but its answers
are scripted: each chat request takes the next action from `script` (then "ok" forever):

  "ok"      200, text "echo: <last user message>" cut to max_tokens words ("length" if cut, else "stop")
  "429"     429 with a Retry-After header (`retry_after`, seconds; None = no header)
  "500"/"503"/"400"/"401"   that status with an OpenAI-style error body
  "400:retry"/"503:noretry" that status plus the header `x-should-retry: true` / `false`
  "hang"    answers nothing for `hang_s` seconds (released at shutdown), so the client must time out
  "empty"   200 with empty content, finish_reason "stop"
  "length"  200 with finish_reason "length"

It records what it saw: arrival times and actions (`log`), the number of requests in flight and its maximum
(`max_in_flight`), every request body (`bodies`) and Authorization header (`auth`). `delay_s` holds every "ok" answer that long, so
concurrency is observable.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL_ID = "faulty-echo"


class FaultyServer:
    """Context manager: `with FaultyServer(script=["429", "ok"]) as srv: srv.base_url` -> "http://127.0.0.1:P/v1"."""

    def __init__(self, script: list[str] | None = None, *, delay_s: float = 0.0, retry_after: float | None = 0.05,
                 hang_s: float = 30.0) -> None:
        self.script = list(script or [])
        self.delay_s, self.retry_after, self.hang_s = delay_s, retry_after, hang_s
        self.log: list[tuple[float, str]] = []
        self.bodies: list[dict[str, Any]] = []
        self.auth: list[str | None] = []  # Authorization header of each chat request
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> "FaultyServer":
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="faulty-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()  # releases "hang" handlers
        assert self._httpd is not None
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "use FaultyServer as a context manager"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # -- bookkeeping -----------------------------------------------------------------------------------------
    def _next_action(self, body: dict[str, Any]) -> str:
        with self._lock:
            action = self.script.pop(0) if self.script else "ok"
            self.log.append((time.monotonic(), action))
            self.bodies.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return action

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def actions(self) -> list[str]:
        return [a for _, a in self.log]

    def answer(self, body: dict[str, Any], action: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        """(status, extra headers, JSON body) for one scripted action."""
        code, _, hint = action.partition(":")
        if code.isdigit():
            status = int(code)
            headers = {"Retry-After": f"{self.retry_after:g}"} if status == 429 and self.retry_after is not None \
                else {}
            if hint:
                headers["x-should-retry"] = {"retry": "true", "noretry": "false"}[hint]
            return status, headers, {"error": {"message": f"injected {status}", "type": "injected", "code": status}}
        if action == "hang":
            self._stop.wait(self.hang_s)
        if action == "ok" and self.delay_s:
            time.sleep(self.delay_s)
        user = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
        words = ("echo: " + user).split()
        limit = int(body.get("max_tokens") or 10 ** 6)
        text, reason = " ".join(words[:limit]), ("length" if len(words) > limit else "stop")
        if action == "empty":
            text, reason = "", "stop"
        elif action == "length":
            text, reason = " ".join(words[: max(1, min(limit, len(words)) // 2)]), "length"
        return 200, {}, _chat_json(body, text, reason, prompt_words=len(user.split()))


def _chat_json(body: dict[str, Any], text: str, reason: str, prompt_words: int) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model", MODEL_ID),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": reason}],
        "usage": {"prompt_tokens": prompt_words, "completion_tokens": len(text.split()),
                  "total_tokens": prompt_words + len(text.split())},
    }


def _make_handler(server: FaultyServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do; needs Content-Length on every reply

        def log_message(self, *args: Any) -> None:  # quiet: tests read `server.log` instead
            pass

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): nothing to tell it
                pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0,
                                                             "owned_by": "tests"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            server.auth.append(self.headers.get("Authorization"))
            action = server._next_action(body)
            try:
                status, headers, payload = server.answer(body, action)
                self._send(status, payload, headers)
            finally:
                server._done()

    return Handler
