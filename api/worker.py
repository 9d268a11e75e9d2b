"""One job, run in its own process: `python -m api.worker --db URL --job ID`.

The service starts one of these per running job (in a new session, so cancel can stop its whole process group).
The worker validates the stored spec with the job kind's spec class, runs the kind's run function (the same one
the CLI calls) and records its events (corpus.events), the result and the final state. Secrets the service kept
out of the database arrive in the K2FORGE_JOB_SECRETS environment variable.

While it runs, a heartbeat renews the attempt's lease (and stops the worker when the lease was taken over or a
cancel was requested); the worker holds an flock on each of its outputs and confines the spec's paths again
right before the run, and then at every open (corpus.confine), so a symlink made after the submit is refused
too. Its final write is fenced on its attempt number.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from api.limits import FsBudget
from api.outputs import OutputLocked, output_locks, output_paths
from api.security import STATE_DIR, check_confined, merge_secrets, missing_secrets
from api.store import JobStore
from corpus import confine
from corpus.events import Event, Log, Progress
from corpus.spec import job_kind, parse_spec

log = logging.getLogger("k2forge.worker")


class EventSink:
    """on_event callback: every event is stored; progress is also folded into the job row's `progress` (the
    newest value of each key). Progress events closer together than `min_interval` s are not stored one by
    one: the newest waits for the next one due, or for flush() when the run ends."""

    def __init__(self, store: JobStore, job_id: str, min_interval: float = 0.25):
        self.store, self.job_id, self.min_interval = store, job_id, min_interval
        self.progress: dict = {}
        self._last = float("-inf")      # the first progress event is always due
        self._pending: Progress | None = None

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Event):
            raise TypeError(f"on_event takes a corpus.events event (Progress, Log, ...), got {type(event).__name__}")
        if not isinstance(event, Progress):
            self.store.add_event(self.job_id, event)
            return
        self.progress.update({k: v for k, v in event.to_dict().items() if k != "type"})
        if time.monotonic() - self._last < self.min_interval:
            self._pending = event
        else:
            self._store_progress(event)

    def flush(self) -> None:
        """Store the newest progress event if it is still waiting (the run has ended)."""
        if self._pending is not None:
            self._store_progress(self._pending)

    def _store_progress(self, event: Progress) -> None:
        self._last, self._pending = time.monotonic(), None
        self.store.add_event(self.job_id, event, progress=dict(self.progress))


class _LogToEvents(logging.Handler):
    def __init__(self, sink: EventSink):
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink(Log.from_record(record))
        except Exception:  # never let logging kill the job
            pass


#: exit status of a worker that found its outputs locked by another worker (EX_TEMPFAIL): retry later
LOCKED = 75
#: exit status of a worker that lost its lease (the job moved on to another attempt) or was cancelled
LOST = 76


def _lock_dir() -> Path:
    return Path(os.environ.get("K2FORGE_LOCK_DIR") or Path(tempfile.gettempdir()) / "k2forge-locks")


def _lock_timeout() -> float:
    return float(os.environ.get("K2FORGE_LOCK_TIMEOUT_S", 60))


class Heartbeat(threading.Thread):
    """Renews this attempt's lease every lease/3 seconds. When the lease is no longer ours (a replica re-queued
    the job after it expired) or a cancel was requested (on any replica), the worker stops at once: its whole
    process group, so executor processes stop writing too."""

    def __init__(self, store: JobStore, job_id: str, attempt: int, lease_s: float):
        super().__init__(name="k2forge-heartbeat", daemon=True)
        self.store, self.job_id, self.attempt, self.lease_s = store, job_id, attempt, lease_s
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                ours, cancel = self.store.renew(self.job_id, self.attempt, time.time() + self.lease_s)
            except Exception:   # the database is away for a moment: the lease covers it, or someone takes over
                log.exception("lease renewal failed")
            else:
                if not ours and not self.done.is_set():
                    log.error("job %s attempt %d lost its lease to another attempt; stopping", self.job_id,
                              self.attempt)
                    _stop_self()
                if cancel:
                    self.store.transition(self.job_id, "cancelled", expect=("running",), attempt=self.attempt,
                                          worker_pid=None, lease_until=None)
                    _stop_self()
            self.done.wait(self.lease_s / 3)


def _stop_self() -> None:
    sys.stderr.flush()
    if os.getpgid(0) == os.getpid():     # our own session (as the service starts us): take the executor along
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(LOST)


def run_job(store: JobStore, job_id: str, attempt: int | None = None) -> int:
    """Run one attempt of a job, renewing its lease meanwhile; the exit status of the worker."""
    job = store.get(job_id)
    if job is None:
        print(f"job {job_id} not found", file=sys.stderr)
        return 2
    attempt = job.attempts if attempt is None else attempt
    beat = Heartbeat(store, job_id, attempt, float(os.environ.get("K2FORGE_LEASE_S", 30)))
    beat.start()
    try:
        return _run(store, job, attempt)
    finally:
        beat.done.set()


def _run(store: JobStore, job, attempt: int) -> int:
    job_id = job.id
    sink = EventSink(store, job_id)
    logging.getLogger().addHandler(_LogToEvents(sink))
    try:
        spec_cls, run = job_kind(job.kind)
        spec = merge_secrets(parse_spec(spec_cls, job.spec, f"job {job_id} spec"),
                             json.loads(os.environ.get("K2FORGE_JOB_SECRETS", "{}")))
        missing = missing_secrets(spec)
        if missing:   # the service kept them in memory only, and it restarted since the submit
            raise RuntimeError(f"the job's secret field(s) {', '.join(missing)} are no longer available (the "
                               f"service restarted after the submit and never stores secrets); submit it again")
        with output_locks(output_paths(job.kind, job.spec), _lock_dir(), _lock_timeout()):
            if os.environ.get("K2FORGE_DATA_ROOT"):     # again now: a symlink may have appeared since the submit
                root = Path(os.environ["K2FORGE_DATA_ROOT"])
                # job time, not request time: no request bound
                check_confined(spec, root, budget=FsBudget(max_patterns=10**6, max_entries=10**12))
                # and from now on at every open, here and in executor processes
                confine.install(root, [STATE_DIR], children=True)
            result = run(spec, on_event=sink)
    except OutputLocked as e:   # another worker (a stale attempt) still writes there: not this job's failure
        sink(Log(f"{e}; this attempt stops without running", "warning"))
        return LOCKED
    except Exception as e:  # the job fails with a clear message; the traceback goes to the job's log events
        sink.flush()
        sink(Log(traceback.format_exc(limit=8), "error"))
        store.transition(job_id, "failed", expect=("running",), attempt=attempt, lease_until=None,
                         error=f"{type(e).__name__}: {e}")
        return 1
    sink.flush()
    store.transition(job_id, "succeeded", expect=("running",), attempt=attempt, lease_until=None,
                     result=json.loads(json.dumps(result, default=str)))
    return 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default=os.environ.get("K2FORGE_WORKER_DB"), help="job database URL "
                    "[env K2FORGE_WORKER_DB, which the service sets: a URL may hold a password]")
    ap.add_argument("--job", required=True)
    ap.add_argument("--attempt", type=int, help="the attempt this worker runs (its writes are fenced on it) "
                    "[default: the job's current attempt]")
    args = ap.parse_args(argv)
    if not args.db:
        ap.error("--db or K2FORGE_WORKER_DB is required")
    os.environ.setdefault("K2FORGE_QUIET", "1")  # no progress bars in a service worker; events carry progress
    # Batch work yields the CPU to the API process, so polling clients stay fast while a job runs.
    os.nice(int(os.environ.get("K2FORGE_WORKER_NICE", "10")))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run_job(JobStore(args.db), args.job, args.attempt))


if __name__ == "__main__":
    main()
