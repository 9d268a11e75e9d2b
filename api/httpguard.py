"""An HTTP/1.1 protocol for uvicorn that caps the request head (request line + headers) before the app runs.

uvicorn's httptools protocol has no such cap, and building one huge header value is quadratic: a 48 MB
Authorization header stalled the event loop for seconds. Past `max_head_bytes` the connection gets 431 and is
closed; nothing reaches the app. (uvicorn's h11 protocol has its own cap, h11_max_incomplete_event_size.)
"""
from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 31\r\nconnection: close\r\n\r\nrequest header fields too large")


def bounded_httptools(max_head_bytes: int) -> type[HttpToolsProtocol]:
    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _in_head, _head_bytes = True, 0

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._head_bytes = True, 0

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            # count only data that leaves the head unfinished: a chunk that completes it may carry body bytes
            was_in_head = self._in_head
            super().data_received(data)
            if was_in_head and self._in_head and not self.transport.is_closing():
                self._head_bytes += len(data)
                if self._head_bytes > max_head_bytes:
                    self.transport.write(_431)
                    self.transport.close()

    return BoundedHttpToolsProtocol
