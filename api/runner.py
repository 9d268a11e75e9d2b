"""The dispatcher: runs queued jobs outside the request, each in a worker process, and recovers after a crash.

- Up to `max_workers` jobs run at once, each as `python -m api.worker` in its own session (process group).
- Cancel: a queued job is cancelled at once; a running job's process group gets SIGTERM, then SIGKILL after a
  grace period, and the job is marked cancelled.
- Recovery: on start, every job still marked running belonged to a dead service; its leftover worker (if any) is
  killed and the job is re-queued. Rerunning is safe because every run function skips finished shards, so the
  final outputs equal an uninterrupted run's.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from api.store import JobStore

log = logging.getLogger(__name__)


def _pid_is_worker(pid: int, job_id: str) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"api.worker" in cmd and job_id.encode() in cmd


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Dispatcher:
    def __init__(self, store: JobStore, max_workers: int = 2, log_dir: Path | None = None,
                 poll_s: float = 0.2, grace_s: float = 5.0, env: Callable[[dict], dict[str, str]] | None = None):
        self.store, self.max_workers, self.poll_s, self.grace_s = store, max_workers, poll_s, grace_s
        self.env = env or (lambda spec: dict(os.environ))   # a job's worker environment, from its spec
        self.log_dir = log_dir
        if log_dir:
            log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.secrets: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="k2forge-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Service shutdown: stop dispatching; running workers are stopped and their jobs re-queued."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        for job_id, p in list(self.procs.items()):
            _kill_group(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=self.grace_s)
            except subprocess.TimeoutExpired:
                _kill_group(p.pid, signal.SIGKILL)
            self.store.transition(job_id, "queued", expect=("running",), worker_pid=None)

    def recover(self) -> None:
        for job in self.store.running():
            if job.worker_pid and _pid_is_worker(job.worker_pid, job.id):
                _kill_group(job.worker_pid, signal.SIGKILL)
            if job.cancel_requested:
                self.store.transition(job.id, "cancelled", expect=("running",), worker_pid=None)
            else:
                log.warning("job %s was running when the service stopped; re-queued to resume", job.id)
                self.store.transition(job.id, "queued", expect=("running",), worker_pid=None)

    # cancel ------------------------------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> str:
        """Request cancellation; return the resulting state."""
        self.store.set_fields(job_id, cancel_requested=1)
        if self.store.transition(job_id, "cancelled", expect=("queued",)):
            return "cancelled"
        p = self.procs.get(job_id)
        if p is not None:
            _kill_group(p.pid, signal.SIGTERM)
        job = self.store.get(job_id)
        return job.state if job else "unknown"

    # loop --------------------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                while len(self.procs) < self.max_workers and self._launch_next():
                    pass
            except Exception:  # keep dispatching; the error is logged
                log.exception("dispatcher iteration failed")
            self._stop.wait(self.poll_s)

    def _launch_next(self) -> bool:
        job = self.store.next_queued()
        if job is None:
            return False
        if not self.store.transition(job.id, "running", expect=("queued",), attempts=job.attempts + 1):
            return True  # another replica took it
        env = self.env(job.spec)
        if self.log_dir:
            env["K2FORGE_LOCK_DIR"] = str(self.log_dir / "locks")   # shared by every replica on this data root
        env["K2FORGE_WORKER_DB"] = self.store.url    # not on the command line, where `ps` shows it to every user
        env["K2FORGE_JOB_SECRETS"] = json.dumps(self.secrets.get(job.id, {}))
        env["K2FORGE_QUIET"] = "1"
        try:
            out = open(self.log_dir / f"{job.id}.log", "ab") if self.log_dir else subprocess.DEVNULL
            p = subprocess.Popen([sys.executable, "-m", "api.worker", "--job", job.id],
                                 env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:   # never leave a job marked running with no process behind it
            log.error("job %s: could not start its worker: %s", job.id, e)
            self.store.transition(job.id, "failed", expect=("running",), error=f"could not start the worker: {e}")
            return True
        self.procs[job.id] = p
        self.store.set_fields(job.id, worker_pid=p.pid)
        log.info("job %s (%s) started in worker pid %d", job.id, job.kind, p.pid)
        return True

    def _reap(self) -> None:
        for job_id, p in list(self.procs.items()):
            job = self.store.get(job_id)
            if job and job.cancel_requested and p.poll() is None:
                self._stop_worker(p)
            if p.poll() is None:
                continue
            del self.procs[job_id]
            job = self.store.get(job_id)  # re-read: the worker wrote its final state before exiting
            if job and job.state == "running":
                if job.cancel_requested:
                    self.store.transition(job_id, "cancelled", expect=("running",), worker_pid=None)
                else:
                    self.store.transition(job_id, "failed", expect=("running",), worker_pid=None,
                                          error=f"worker exited with code {p.returncode} without a result")
            self.secrets.pop(job_id, None)

    def _stop_worker(self, p: subprocess.Popen) -> None:
        _kill_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if p.poll() is None:
            _kill_group(p.pid, signal.SIGKILL)
            p.wait()
