"""One job, run in its own process: `python -m api.worker --db URL --job ID`.

The service starts one of these per running job (in a new session, so cancel can stop its whole process group).
The worker validates the stored spec with the job kind's spec class, runs the kind's run function (the same one
the CLI calls) and records progress events, the result and the final state. Secrets the service kept out of the
database arrive in the K2FORGE_JOB_SECRETS environment variable.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from api.outputs import OutputLocked, output_locks, output_paths
from api.security import REDACTED, merge_secrets, split_secrets
from api.store import JobStore

log = logging.getLogger("k2forge.worker")


class EventSink:
    """on_event callback: every event is stored; progress is also folded into the job row (throttled)."""

    def __init__(self, store: JobStore, job_id: str, min_interval: float = 0.25):
        self.store, self.job_id, self.min_interval = store, job_id, min_interval
        self.progress: dict = {}
        self._last = 0.0

    def __call__(self, event: dict) -> None:
        etype = str(event.get("type", "log"))
        if etype == "progress":
            self.progress.update({k: v for k, v in event.items() if k != "type"})
            now = time.monotonic()
            if now - self._last < self.min_interval and not event.get("final"):
                return
            self._last = now
        self.store.add_event(self.job_id, etype, event, progress=dict(self.progress) if etype == "progress" else None)


class _LogToEvents(logging.Handler):
    def __init__(self, sink: EventSink):
        super().__init__(logging.INFO)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink({"type": "log", "level": record.levelname, "message": record.getMessage()})
        except Exception:  # never let logging kill the job
            pass


#: exit status of a worker that found its outputs locked by another worker (EX_TEMPFAIL): retry later
LOCKED = 75


def _lock_dir() -> Path:
    return Path(os.environ.get("K2FORGE_LOCK_DIR") or Path(tempfile.gettempdir()) / "k2forge-locks")


def _lock_timeout() -> float:
    return float(os.environ.get("K2FORGE_LOCK_TIMEOUT_S", 60))


def run_job(store: JobStore, job_id: str) -> int:
    from corpus.spec import job_kind, parse_spec

    job = store.get(job_id)
    if job is None:
        print(f"job {job_id} not found", file=sys.stderr)
        return 2
    sink = EventSink(store, job_id)
    logging.getLogger().addHandler(_LogToEvents(sink))
    spec_dict = merge_secrets(json.loads(json.dumps(job.spec)), json.loads(os.environ.get("K2FORGE_JOB_SECRETS", "{}")))
    try:
        missing = [k for k, v in split_secrets(spec_dict)[1].items() if v == REDACTED]
        if missing:   # the service kept them in memory only, and it restarted since the submit
            raise RuntimeError(f"the job's secret field(s) {', '.join(missing)} are no longer available (the "
                               f"service restarted after the submit and never stores secrets); submit it again")
        spec_cls, run = job_kind(job.kind)
        spec = parse_spec(spec_cls, spec_dict, f"job {job_id} spec")
        with output_locks(output_paths(job.kind, spec_dict), _lock_dir(), _lock_timeout()):
            result = run(spec, on_event=sink)
    except OutputLocked as e:   # another worker (a stale attempt) still writes there: not this job's failure
        sink({"type": "log", "level": "WARNING", "message": f"{e}; this attempt stops without running"})
        return LOCKED
    except Exception as e:  # the job fails with a clear message; the traceback goes to the job's log events
        sink({"type": "log", "level": "ERROR", "message": traceback.format_exc(limit=8)})
        store.transition(job_id, "failed", expect=("running",), error=f"{type(e).__name__}: {e}")
        return 1
    sink({"type": "progress", "final": True, "done": True})
    store.transition(job_id, "succeeded", expect=("running",), result=json.loads(json.dumps(result, default=str)))
    return 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--db", default=os.environ.get("K2FORGE_WORKER_DB"), help="job database URL "
                    "[env K2FORGE_WORKER_DB, which the service sets: a URL may hold a password]")
    ap.add_argument("--job", required=True)
    args = ap.parse_args(argv)
    if not args.db:
        ap.error("--db or K2FORGE_WORKER_DB is required")
    os.environ.setdefault("K2FORGE_QUIET", "1")  # no progress bars in a service worker; events carry progress
    # Batch work yields the CPU to the API process, so polling clients stay fast while a job runs.
    os.nice(int(os.environ.get("K2FORGE_WORKER_NICE", "10")))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run_job(JobStore(args.db), args.job))


if __name__ == "__main__":
    main()
