"""A real `k2forge serve` process on loopback, driven over HTTP with httpx."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

TOKEN = "test-token-123"
#: every service under test knows three users: alice (TOKEN), bob, and root, who is an admin
TOKENS = {"alice": TOKEN, "bob": "bob-token-456", "root": "root-token-789"}
#: the machine's PostgreSQL (trust auth), for multi-replica tests
PG_ADMIN = os.environ.get("K2FORGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """Start/kill/restart a real service; `client` talks to it with a valid bearer token."""

    def __init__(self, root: Path, max_workers: int = 1, extra_env: dict | None = None, db_url: str | None = None):
        self.root, self.max_workers = root, max_workers
        self.args = ["--db-url", db_url] if db_url else []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "K2FORGE_API_TOKENS": ",".join(f"{u}:{t}" for u, t in TOKENS.items()),
                    "K2FORGE_ADMINS": "root", "K2FORGE_MODEL_ALLOWLIST": "", **(extra_env or {})}
        self.proc: subprocess.Popen | None = None
        self.client = self.client_for("alice")

    def client_for(self, user: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKENS[user]}"}, timeout=30)

    def start(self) -> "Service":
        log = open(self.root / f"service-{time.time_ns()}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "--quiet", "serve", "--port", str(self.port), "--data-root",
             str(self.root), "--max-workers", str(self.max_workers), *self.args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}: see {log.name}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("service did not become healthy in 60 s")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill9()

    def wait_state(self, job_id: str, states: tuple[str, ...], timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in states:
                return job
            time.sleep(0.1)
        raise TimeoutError(f"job {job_id} not in {states} after {timeout} s: {job}")


@pytest.fixture
def pg_url():
    """A fresh database on the machine's PostgreSQL, dropped afterwards (tests never share one)."""
    import psycopg     # the PostgreSQL driver (psycopg[binary]); SQLite needs none
    name = f"k2forge_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_ADMIN}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://{PG_ADMIN.split('://', 1)[1]}/{name}"
    with psycopg.connect(f"{PG_ADMIN}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def service(tmp_path):
    svc = Service(tmp_path).start()
    yield svc
    svc.stop()
