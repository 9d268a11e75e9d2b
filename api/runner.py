"""The dispatcher: runs queued jobs outside the request, each in a worker process, safely beside other replicas.

- Up to `max_workers` jobs run at once per replica, each as `python -m api.worker` in its own session (process
  group). Claiming a queued job is one conditional UPDATE, so two replicas never both start it.
- Leases: a running attempt carries `lease_until`; its worker renews it (and so does the replica that launched it,
  which covers the worker's start-up). A replica re-queues a running job only when its lease expired, or when its
  worker ran on this host and is gone; it never kills a worker it did not start. A lost attempt is retried up to
  `max_attempts` times (resuming from finished units), then the job fails.
- Cancel: a queued job is cancelled at once; a running job's worker stops itself when its heartbeat sees the
  request (any replica), and the launching replica also sends its process group SIGTERM, then SIGKILL after a
  grace period.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from api.store import Job, JobStore

log = logging.getLogger(__name__)


def host_id() -> str:
    """Where worker pids mean something: the host name plus its pid namespace (containers on one host differ)."""
    if os.environ.get("K2FORGE_HOST_ID"):
        return os.environ["K2FORGE_HOST_ID"]
    try:
        ns = os.readlink("/proc/self/ns/pid")
    except OSError:
        ns = "?"
    return f"{socket.gethostname()}:{ns}"[:128]


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
                 poll_s: float = 0.2, grace_s: float = 5.0, env: Callable[[Job], dict[str, str]] | None = None,
                 lease_s: float = 30.0, max_attempts: int = 3, data_root: Path | None = None):
        self.store, self.max_workers, self.poll_s, self.grace_s = store, max_workers, poll_s, grace_s
        self.env = env or (lambda job: dict(os.environ))    # a job's worker environment, from its spec
        self.lease_s, self.max_attempts, self.data_root = lease_s, max_attempts, data_root
        self.host = host_id()
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"[:64]
        self.log_dir = log_dir
        if log_dir:
            log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, tuple[subprocess.Popen, int]] = {}    # job id -> (worker, its attempt)
        self.secrets: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_renew = self._last_recover = 0.0

    # lifecycle -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="k2forge-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Service shutdown: stop dispatching; this replica's workers are stopped and their jobs re-queued."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        for job_id, (p, attempt) in list(self.procs.items()):
            self._stop_worker(p)
            self.store.transition(job_id, "queued", expect=("running",), attempt=attempt, worker_pid=None,
                                  lease_until=None)

    def recover(self) -> None:
        """Release running jobs whose attempt is lost: lease expired, or their worker ran here and is gone.

        A live worker is never touched, whichever replica started it: it renews its own lease, so a job keeps
        running when the replica that launched it dies."""
        now = time.time()
        for job in self.store.running():
            if job.id in self.procs:
                continue
            gone_here = (job.worker_host == self.host and job.worker_pid is not None
                         and not _pid_is_worker(job.worker_pid, job.id))
            expired = job.lease_until is None or job.lease_until < now
            if gone_here or expired:
                why = "its worker is gone" if gone_here else "its lease expired"
                state = self.store.release_lost(job, self.max_attempts, why)
                if state:
                    log.warning("job %s attempt %d: %s -> %s", job.id, job.attempts, why, state)

    # cancel ------------------------------------------------------------------------------------------------------
    def cancel(self, job_id: str) -> str:
        """Request cancellation; return the resulting state."""
        self.store.set_fields(job_id, cancel_requested=1)
        if self.store.transition(job_id, "cancelled", expect=("queued",)):
            return "cancelled"
        if job_id in self.procs:
            _kill_group(self.procs[job_id][0].pid, signal.SIGTERM)
        job = self.store.get(job_id)
        return job.state if job else "unknown"

    # loop --------------------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                self._renew()
                if time.monotonic() - self._last_recover > min(1.0, self.lease_s / 3):
                    self._last_recover = time.monotonic()
                    self.recover()
                while len(self.procs) < self.max_workers and self._launch_next():
                    pass
            except Exception:  # keep dispatching; the error is logged
                log.exception("dispatcher iteration failed")
            self._stop.wait(self.poll_s)

    def _renew(self) -> None:
        """Renew the leases of this replica's live workers (their own heartbeat starts only after imports)."""
        if time.monotonic() - self._last_renew < self.lease_s / 3:
            return
        self._last_renew = time.monotonic()
        for job_id, (p, attempt) in list(self.procs.items()):
            if p.poll() is None:
                self.store.renew(job_id, attempt, time.time() + self.lease_s)

    def _launch_next(self) -> bool:
        job = self.store.next_queued()
        if job is None:
            return False
        if not self.store.claim(job, self.replica, self.host, time.time() + self.lease_s):
            return True  # another replica took it
        attempt = job.attempts + 1
        env = self.env(job)
        if self.data_root:
            env["K2FORGE_DATA_ROOT"] = str(self.data_root)          # the worker confines the spec again
        if self.log_dir:
            env["K2FORGE_LOCK_DIR"] = str(self.log_dir / "locks")   # shared by every replica on this data root
        env["K2FORGE_WORKER_DB"] = self.store.url    # not on the command line, where `ps` shows it to every user
        env["K2FORGE_JOB_SECRETS"] = json.dumps(self.secrets.get(job.id, {}))
        env["K2FORGE_QUIET"] = "1"
        env["K2FORGE_LEASE_S"] = str(self.lease_s)
        try:
            out = open(self.log_dir / f"{job.id}.log", "ab") if self.log_dir else subprocess.DEVNULL
            p = subprocess.Popen([sys.executable, "-m", "api.worker", "--job", job.id, "--attempt", str(attempt)],
                                 env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as e:   # never leave a job marked running with no process behind it
            log.error("job %s: could not start its worker: %s", job.id, e)
            self.store.transition(job.id, "failed", expect=("running",), attempt=attempt,
                                  error=f"could not start the worker: {e}")
            return True
        self.procs[job.id] = (p, attempt)
        self.store.set_fields(job.id, worker_pid=p.pid)
        log.info("job %s (%s) attempt %d started in worker pid %d", job.id, job.kind, attempt, p.pid)
        return True

    def _reap(self) -> None:
        for job_id, (p, attempt) in list(self.procs.items()):
            job = self.store.get(job_id)
            if job and job.cancel_requested and p.poll() is None:
                self._stop_worker(p)
            if p.poll() is None:
                continue
            del self.procs[job_id]
            job = self.store.get(job_id)  # re-read: the worker wrote its final state before exiting
            if job and job.state == "running" and job.attempts == attempt:
                why = f"worker exited with code {p.returncode} without a result"
                state = self.store.release_lost(job, self.max_attempts, why)
                log.warning("job %s attempt %d: %s -> %s", job_id, attempt, why, state)
            if job is None or job.state != "queued":    # a re-queued job keeps its secrets for the next attempt
                self.secrets.pop(job_id, None)

    def _stop_worker(self, p: subprocess.Popen) -> None:
        _kill_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if p.poll() is None:
            _kill_group(p.pid, signal.SIGKILL)
            p.wait()
