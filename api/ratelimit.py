"""A per-principal rate limit shared by every replica, kept in Redis (when K2FORGE_REDIS_URL is set).

One token bucket per principal, updated atomically by a small Lua script (one round trip per request, ~0.1 ms on
a local network). The client speaks RESP over one socket itself, so Redis needs no Python package. If Redis is
unreachable the limit falls back to this replica's in-process bucket (logged) rather than refusing every
request, and tries Redis again after 5 s.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from urllib.parse import urlparse

from api.security import RateLimiter

log = logging.getLogger(__name__)

_BUCKET = b"""
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens, ts = tonumber(v[1]) or burst, tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return ok
"""


class RedisError(RuntimeError):
    pass


def _command(*args: bytes | str) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts += [b"$%d\r\n" % len(b), b, b"\r\n"]
    return b"".join(parts)


class RedisRateLimiter:
    """Same interface as security.RateLimiter (`allow(key) -> bool`), with the buckets in Redis."""

    def __init__(self, url: str, rate: float, burst: int, prefix: str = "k2forge:rate:", timeout_s: float = 0.5):
        u = urlparse(url)
        self.addr, self.db = (u.hostname or "127.0.0.1", u.port or 6379), (u.path or "/0").strip("/") or "0"
        self.password = u.password
        self.rate, self.burst, self.prefix, self.timeout_s = rate, burst, prefix, timeout_s
        self.local = RateLimiter(rate, burst)
        self._sock: socket.socket | None = None
        self._buf = b""
        self._lock = threading.Lock()
        self._retry_at = 0.0

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        if time.monotonic() < self._retry_at:     # Redis failed a moment ago: don't pay a timeout per request
            return self.local.allow(key)
        try:
            with self._lock:
                reply = self._call(b"EVAL", _BUCKET, b"1", self.prefix + key, repr(self.rate),
                                   str(self.burst), repr(time.time()))
            return reply == 1
        except (OSError, RedisError) as e:
            log.warning("rate limit: Redis at %s:%d unusable (%s); this replica's own limit applies", *self.addr, e)
            self._close()
            self._retry_at = time.monotonic() + 5
            return self.local.allow(key)

    # RESP plumbing ---------------------------------------------------------------------------------------------
    def _call(self, *args):
        if self._sock is None:
            self._connect()
        self._sock.sendall(_command(*args))
        return self._reply()

    def _connect(self) -> None:
        self._sock = socket.create_connection(self.addr, timeout=self.timeout_s)
        self._buf = b""
        if self.password:
            self._sock.sendall(_command(b"AUTH", self.password))
            self._reply()
        if self.db != "0":
            self._sock.sendall(_command(b"SELECT", self.db))
            self._reply()

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock = None

    def _line(self) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise RedisError("connection closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"+":
            return rest.decode()
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self._buf) < n + 2:
                chunk = self._sock.recv(4096)
                if not chunk:
                    raise RedisError("connection closed")
                self._buf += chunk
            value, self._buf = self._buf[:n], self._buf[n + 2:]
            return value
        raise RedisError(f"unexpected reply {line[:40]!r}")
