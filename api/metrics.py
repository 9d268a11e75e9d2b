"""Prometheus metrics of the service: request counts and latency per route, jobs per state."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE

from corpus.events import STATES

REGISTRY = CollectorRegistry()
REQUESTS = Counter("k2forge_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram("k2forge_http_request_seconds", "HTTP request latency", ["method", "route"], registry=REGISTRY,
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
JOBS = Gauge("k2forge_jobs", "jobs by state", ["state"], registry=REGISTRY)


def observe(method: str, route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def render(job_counts: dict[str, int]) -> bytes:
    for st in STATES:
        JOBS.labels(st).set(job_counts.get(st, 0))
    return generate_latest(REGISTRY)


__all__ = ["CONTENT_TYPE", "observe", "render"]
