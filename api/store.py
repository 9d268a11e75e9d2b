"""Persistent job store: jobs, state transitions, progress, events and output owners in SQL (SQLite WAL by
default).

A database URL (e.g. postgresql+psycopg://...) lets several API replicas share state. States:
queued -> running -> succeeded | failed | cancelled. A running attempt holds a lease that its worker renews; a
replica re-queues a job only when its lease expired (or its worker is known dead on that replica's host), and every
write of an attempt is fenced on its attempt number, so a stale worker can never overwrite a newer attempt. A
re-queued job resumes from its finished units (every run function is idempotent).

On PostgreSQL every write that changes what GET /v1/jobs/{id} shows (state, progress, result, error, attempts,
cancel flag) also sends `NOTIFY k2forge_jobs, '<job id>'` in its transaction (delivered on commit), so each
replica's read cache (api.reads) drops exactly the rows that changed.
"""
from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import (JSON, DateTime, Float, ForeignKey, Integer, String, Text, create_engine, delete, event,
                        func, inspect, or_, select, text, update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from corpus.events import Event, Log, State

TERMINAL = ("succeeded", "failed", "cancelled")
#: the PostgreSQL channel that carries the id of every job whose API row changed (api.reads listens)
CHANGED_CHANNEL = "k2forge_jobs"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    state: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    spec: Mapped[dict] = mapped_column(JSON)              # redacted: no secrets are ever stored
    owner: Mapped[str] = mapped_column(String(64), default="", index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    worker_host: Mapped[str | None] = mapped_column(String(128), nullable=True)   # host id: pids compare there
    replica: Mapped[str | None] = mapped_column(String(64), nullable=True)       # the replica that launched it
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)      # epoch s; the worker renews it
    lost_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True, default=0)  # workers that died
    cancel_requested: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now, onupdate=_now)

    def to_dict(self) -> dict[str, Any]:
        return job_dict(self)


def job_dict(j: Any) -> dict[str, Any]:
    """The API shape of a job, from an ORM Job or a Core row (both expose the columns as attributes)."""
    return {"id": j.id, "kind": j.kind, "owner": j.owner, "state": j.state, "spec": j.spec,
            "progress": j.progress or {},
            "result": j.result, "error": j.error, "attempts": j.attempts,
            "cancel_requested": bool(j.cancel_requested), "created_at": j.created_at.isoformat(),
            "updated_at": j.updated_at.isoformat()}


class JobEvent(Base):
    __tablename__ = "job_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id"), index=True)
    ts: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict] = mapped_column(JSON)


class JobOutput(Base):
    """An output path (absolute, resolved) and the job that owns it: no other job may write there."""
    __tablename__ = "job_outputs"
    path: Mapped[str] = mapped_column(String(4096), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(32), ForeignKey("jobs.id"), index=True)
    owner: Mapped[str] = mapped_column(String(64))


class OutputConflict(Exception):
    """An output path of a new job is (inside, or holds) another job's output."""

    def __init__(self, path: str, job_id: str, owner: str, state: str):
        super().__init__(f"{path} is the output of job {job_id} (user {owner!r}, {state})")
        self.path, self.job_id, self.owner, self.state = path, job_id, owner, state


#: a user's new job may take over the output of their own job in these states (to resume or redo it); never a
#: queued/running job's (they would race) nor a succeeded one's (its outputs would change under it)
TAKEOVER_STATES = ("failed", "cancelled")


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobStore:
    """Thin, explicit data access; every method is one short transaction."""

    def __init__(self, url: str):
        self.url = url
        kw: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kw["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = create_engine(url, **kw)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        _add_missing_columns(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        self._notify = self.engine.dialect.name == "postgresql"

    def session(self) -> Session:
        return self._session()

    def create(self, kind: str, spec: dict, owner: str, idempotency_key: str | None,
               job_id: str | None = None, outputs: list[str] = ()) -> tuple[Job, bool]:
        """Insert a queued job owning `outputs`; with an idempotency key already used, return that job instead
        (created=False). OutputConflict if an output is (inside, or holds) another job's output.

        Two concurrent submits with one key: the unique index lets one insert win; the other returns its job.
        Two with one output path: its primary key lets one win; the other gets OutputConflict."""
        with self.session() as s:
            if idempotency_key:
                found = s.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
                if found:
                    return found, False
            job = Job(id=job_id or new_job_id(), kind=kind, spec=spec, owner=owner,
                      idempotency_key=idempotency_key, progress={}, state="queued")
            try:
                s.add(job)
                s.add(_event_row(job.id, State("queued")))
                s.flush()
                for path in outputs:
                    self._claim_output(s, path, job.id, owner)
                s.commit()
            except IntegrityError:
                s.rollback()
                found = s.scalar(select(Job).where(Job.idempotency_key == idempotency_key)) \
                    if idempotency_key else None
                if found is None:
                    conflict = next(filter(None, (self._conflict(s, p, owner) for p in outputs)), None)
                    if conflict:
                        raise conflict from None
                    raise
                return found, False
            return job, True

    def _conflict(self, s: Session, path: str, owner: str) -> OutputConflict | None:
        """The first owned output that is `path`, lies inside it or holds it, unless `owner` may take it over."""
        prefix = path.rstrip("/") + "/"
        ancestors = [str(p) for p in Path(path).parents]
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = s.execute(select(JobOutput.path, JobOutput.job_id, JobOutput.owner, Job.state)
                         .join(Job, Job.id == JobOutput.job_id)
                         .where(or_(JobOutput.path == path, JobOutput.path.in_(ancestors),
                                    JobOutput.path.like(like, escape="\\")))).all()
        for p, job_id, who, state in rows:
            if not (p == path and who == owner and state in TAKEOVER_STATES):
                return OutputConflict(p, job_id, who, state)
        return None

    def _claim_output(self, s: Session, path: str, job_id: str, owner: str) -> None:
        conflict = self._conflict(s, path, owner)
        if conflict:
            raise conflict
        s.execute(delete(JobOutput).where(JobOutput.path == path))     # a takeover (checked just above)
        s.add(JobOutput(path=path, job_id=job_id, owner=owner))
        s.flush()

    def backfill_outputs(self, paths_of: Callable[[str, dict], list[str]]) -> int:
        """Register the outputs of jobs made before outputs had owners (a database from an older version), newest
        job first, so their folders are protected too; a path two old jobs shared goes to the newer one."""
        with self.session() as s:
            if s.scalar(select(func.count()).select_from(JobOutput)) or not s.scalar(select(func.count(Job.id))):
                return 0
            claimed: set[str] = set()
            for job in s.scalars(select(Job).order_by(Job.created_at.desc())):
                for path in paths_of(job.kind, job.spec or {}):
                    if path not in claimed:
                        claimed.add(path)
                        s.add(JobOutput(path=path, job_id=job.id, owner=job.owner))
            s.commit()
            return len(claimed)

    def output_conflict(self, path: str, owner: str) -> OutputConflict | None:
        with self.session() as s:
            return self._conflict(s, path, owner)

    def owns_output(self, path: str) -> bool:
        with self.session() as s:
            return s.get(JobOutput, path) is not None

    def by_idempotency_key(self, key: str) -> Job | None:
        with self.session() as s:
            return s.scalar(select(Job).where(Job.idempotency_key == key))

    def get(self, job_id: str) -> Job | None:
        with self.session() as s:
            return s.get(Job, job_id)

    def get_dict(self, job_id: str) -> dict[str, Any] | None:
        """The job as its API dict, via one Core query (no ORM session): the polling fast path."""
        with self.engine.connect() as conn:
            row = conn.execute(select(Job.__table__).where(Job.id == job_id)).first()
        return job_dict(row) if row is not None else None

    def list(self, state: str | None, kind: str | None, limit: int, offset: int,
             owner: str | None = None) -> tuple[list[Job], int]:
        """A page of jobs, newest first; `owner` None means every owner's (admins)."""
        with self.session() as s:
            q = select(Job)
            if owner is not None:
                q = q.where(Job.owner == owner)
            if state:
                q = q.where(Job.state == state)
            if kind:
                q = q.where(Job.kind == kind)
            total = s.scalar(select(func.count()).select_from(q.subquery()))
            rows = s.scalars(q.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)).all()
            return list(rows), int(total or 0)

    def transition(self, job_id: str, state: str, *, expect: tuple[str, ...] | None = None,
                   attempt: int | None = None, **fields: Any) -> bool:
        """Set state (and fields) if the current state is in `expect` (and, given `attempt`, the job is still on
        that attempt: a stale worker or replica can never overwrite a newer attempt); record a state event."""
        with self.session() as s:
            q = update(Job).where(Job.id == job_id)
            if expect:
                q = q.where(Job.state.in_(expect))
            if attempt is not None:
                q = q.where(Job.attempts == attempt)
            n = s.execute(q.values(state=state, updated_at=_now(), **fields)).rowcount
            if n:
                s.add(_event_row(job_id, State(state, fields.get("error") or None)))
                self._changed(s, job_id)
            s.commit()
            return bool(n)

    def set_fields(self, job_id: str, **fields: Any) -> None:
        with self.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(updated_at=_now(), **fields))
            self._changed(s, job_id)
            s.commit()

    def add_event(self, job_id: str, event: Event, progress: dict | None = None) -> None:
        """Store `event` (corpus.events) as the job's next event; given `progress`, set the job row's too."""
        with self.session() as s:
            s.add(_event_row(job_id, event))
            if progress is not None:
                s.execute(update(Job).where(Job.id == job_id).values(progress=progress, updated_at=_now()))
                self._changed(s, job_id)
            s.commit()

    def _changed(self, s: Session, job_id: str) -> None:
        """Tell every replica's read cache that this job's row changed (PostgreSQL; sent when `s` commits)."""
        if self._notify:
            s.execute(text("SELECT pg_notify(:channel, :job_id)"), {"channel": CHANGED_CHANNEL, "job_id": job_id})

    def events(self, job_id: str, after: int = 0, limit: int = 500) -> list[JobEvent]:
        with self.session() as s:
            return list(s.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after)
                                  .order_by(JobEvent.seq).limit(limit)).all())

    def latest_seqs(self, job_ids: list[str]) -> dict[str, int]:
        """The newest event seq of each job (one query for every open event stream of a replica)."""
        with self.session() as s:
            return dict(s.execute(select(JobEvent.job_id, func.max(JobEvent.seq))
                                  .where(JobEvent.job_id.in_(job_ids)).group_by(JobEvent.job_id)).all())

    def next_queued(self) -> Job | None:
        with self.session() as s:
            return s.scalar(select(Job).where(Job.state == "queued", Job.cancel_requested == 0)
                            .order_by(Job.created_at, Job.id).limit(1))

    def running(self) -> list[Job]:
        with self.session() as s:
            return list(s.scalars(select(Job).where(Job.state == "running")).all())

    # leases --------------------------------------------------------------------------------------------------
    def claim(self, job: Job, replica: str, host: str, lease_until: float) -> bool:
        """queued -> running as the next attempt, for this replica; False if another replica claimed it first."""
        return self.transition(job.id, "running", expect=("queued",), attempt=job.attempts,
                               attempts=job.attempts + 1, replica=replica, worker_host=host, worker_pid=None,
                               lease_until=lease_until)

    def renew(self, job_id: str, attempt: int, lease_until: float) -> tuple[bool, bool]:
        """Extend a running attempt's lease: (still ours, cancel requested). Not ours: another attempt took over."""
        with self.session() as s:
            n = s.execute(update(Job).where(Job.id == job_id, Job.state == "running", Job.attempts == attempt)
                          .values(lease_until=lease_until)).rowcount
            cancel = s.scalar(select(Job.cancel_requested).where(Job.id == job_id))
            s.commit()
        return bool(n), bool(cancel)

    def release_lost(self, job: Job, max_attempts: int, why: str) -> str | None:
        """A running attempt whose worker is gone: cancelled (if asked), failed after `max_attempts` lost
        attempts, else queued again to resume. Fenced on the attempt, so two replicas never both act."""
        lost = (job.lost_attempts or 0) + 1
        if job.cancel_requested:
            state, fields = "cancelled", {}
        elif lost >= max_attempts:
            state, fields = "failed", {"error": f"the worker was lost {lost} times (last: {why})"}
        else:
            state, fields = "queued", {}
        ok = self.transition(job.id, state, expect=("running",), attempt=job.attempts, worker_pid=None,
                             lease_until=None, lost_attempts=lost, **fields)
        if ok and state == "queued":
            self.add_event(job.id, Log(f"attempt {job.attempts} lost ({why}); re-queued to resume", "warning"))
        return state if ok else None

    def counts(self) -> dict[str, int]:
        with self.session() as s:
            return {st: n for st, n in s.execute(select(Job.state, func.count()).group_by(Job.state)).all()}


def _event_row(job_id: str, event: Event) -> "JobEvent":
    """The row of an event: its type, and its JSON (values JSON cannot hold become strings)."""
    return JobEvent(job_id=job_id, type=event.type, data=json.loads(json.dumps(event.to_dict(), default=str)))


def _add_missing_columns(engine) -> None:
    """Databases made by an older version lack newer nullable columns: add them (create_all only adds tables)."""
    have = {c["name"] for c in inspect(engine).get_columns("jobs")}
    with engine.begin() as conn:
        for col in Job.__table__.columns:
            if col.name not in have and col.nullable:
                conn.execute(text(f"ALTER TABLE jobs ADD COLUMN {col.name} {col.type.compile(engine.dialect)}"))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
