"""Client-side pacing for remote engines: a token-bucket request limiter and jittered exponential backoff.

Both take an injectable clock/sleep so their arithmetic is testable without waiting, and both are asyncio-native
(a limiter shared by many coroutines hands out slots in FIFO order under one lock).
"""
from __future__ import annotations

import asyncio
import email.utils
import random
import time
from typing import Awaitable, Callable, Mapping


class TokenBucket:
    """At most `rate` acquisitions per second on average, with bursts of up to `burst` (default 1: smooth pacing).

    `acquire()` waits until a token is available. With burst 1, N acquisitions starting from a full bucket span
    at least (N - 1) / rate seconds, which is what a "requests per second" limit promises a server.
    """

    def __init__(self, rate: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"requests_per_second must be > 0, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate, self.burst = float(rate), burst
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock: asyncio.Lock | None = None

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self) -> None:
        if self._lock is None:  # created lazily so the bucket can be built outside a running loop
            self._lock = asyncio.Lock()
        async with self._lock:  # FIFO: waiters are served in arrival order
            self._refill()
            while self._tokens < 1:
                await self._sleep((1 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt)) for attempt 0, 1, 2, ...

    Full jitter (rather than equal or no jitter) spreads retries of many clients hit by the same outage, so they
    do not come back in lockstep (AWS Architecture Blog, "Exponential Backoff And Jitter").
    """
    r = rng or random
    return r.uniform(0.0, min(cap, base * (2 ** attempt)))


def retry_after_seconds(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date) or retry-after-ms; None if absent."""
    if not headers:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
