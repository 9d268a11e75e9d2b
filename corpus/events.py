"""Job events: the one vocabulary that run functions, the executor, the trainer, the job service and its SSE
stream share.

A run function `run_x(spec, on_event=None)` calls `on_event(event)` with one of the typed events below (never a
bare dict). The service stores `event.to_dict()` (a JSON object with a "type" key) and streams it as
`event: <type>` / `data: <that JSON>`; a reader turns that JSON back into the typed event with
`Event.from_dict`.

| type         | class       | fields                                                                           |
|--------------|-------------|----------------------------------------------------------------------------------|
| `progress`   | `Progress`  | `done` of `total` (units of `stage`), `unit` (the unit that just finished), extra |
| `log`        | `Log`       | `message`, `level` (debug, info, warning, error or critical)                     |
| `stage_done` | `StageDone` | `stage`, `summary` (units, skipped)                                              |
| `metrics`    | `Metrics`   | `step`, `values` (e.g. the trainer's eval_loss, eval_tokens)                     |
| `state`      | `State`     | `state` (queued, running, succeeded, failed, cancelled), `error`                 |

- `Progress.done`/`total` count what `stage` works through: the executor's units (with `unit`, the id of the unit
  that has just finished and has its done-marker), a job's phases (dedup: signatures, clusters, write), the
  trainer's steps. A job kind's further counters travel as `extra` and are flattened into the JSON: rephrase and
  mathnotes add `docs_done`/`docs_total`, the trainer `loss`. The service folds a job's progress events into its
  row's `progress` (the newest value of each key), throttled, and stores the last one when the run ends.
- `StageDone` follows every executor run of a stage.
- `State` events are written by the job store on every transition (never by a run function); the SSE stream
  ends after a terminal one.
Fields that are None are left out of the JSON.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Mapping

#: log levels, lowest first
LEVELS = ("debug", "info", "warning", "error", "critical")
#: job states, as State events carry them
STATES = ("queued", "running", "succeeded", "failed", "cancelled")

_TYPES: dict[str, type["Event"]] = {}


def _check_count(event: str, name: str, value: Any, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{event} event: {name} must be a whole number >= 0, got {value!r}")


@dataclass(frozen=True)
class Event:
    """Base of every event: `to_dict()` for the wire and the job store, `from_dict()` back."""
    type: ClassVar[str] = ""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.type:
            _TYPES[cls.type] = cls

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON: its "type" and every field that is not None."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {"type": self.type, **{k: v for k, v in data.items() if v is not None}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Event":
        """The typed event of `data` (as to_dict made it); ValueError naming the type or field that is wrong.
        `Event.from_dict` takes any type; a subclass's only its own."""
        kind = data.get("type")
        target = _TYPES.get(kind) if isinstance(kind, str) else None
        if target is None:
            raise ValueError(f"event: unknown type {kind!r}, expected one of {', '.join(sorted(_TYPES))}")
        if not issubclass(target, cls):
            raise ValueError(f"event: expected a {cls.type} event, got a {kind} event")
        return target._from_payload({k: v for k, v in data.items() if k != "type"})

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> "Event":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(payload) - names)
        if unknown:
            raise ValueError(f"{cls.type} event: unknown field(s) {', '.join(unknown)}")
        try:
            return cls(**payload)
        except TypeError as e:      # a required field is missing
            raise ValueError(f"{cls.type} event: {e}") from None


@dataclass(frozen=True)
class Progress(Event):
    """`done` of `total` units of work of `stage`; `unit`: the unit that just finished (executor events)."""
    type: ClassVar[str] = "progress"
    done: int
    total: int | None = None
    stage: str | None = None
    unit: str | None = None
    #: further counters of the job kind (docs_done, docs_total, loss), flattened into the JSON
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_count("progress", "done", self.done)
        _check_count("progress", "total", self.total, optional=True)
        clash = sorted(set(self.extra) & {"type", *(f.name for f in fields(self))})
        if clash:
            raise ValueError(f"progress event: extra counter(s) {', '.join(clash)} would hide a field")

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        extra = data.pop("extra")
        return {**data, **extra}

    @classmethod
    def _from_payload(cls, payload: dict[str, Any]) -> "Progress":
        names = {f.name for f in fields(cls)} - {"extra"}
        if "done" not in payload:
            raise ValueError("progress event: field done is required")
        return cls(**{k: v for k, v in payload.items() if k in names},
                   extra={k: v for k, v in payload.items() if k not in names})


@dataclass(frozen=True)
class Log(Event):
    """A line for the job's log."""
    type: ClassVar[str] = "log"
    message: str
    level: str = "info"

    def __post_init__(self) -> None:
        if not isinstance(self.message, str):
            raise ValueError(f"log event: message must be a string, got {type(self.message).__name__}")
        if self.level not in LEVELS:
            raise ValueError(f"log event: level {self.level!r} is not one of {', '.join(LEVELS)}")

    @classmethod
    def from_record(cls, record: logging.LogRecord) -> "Log":
        """The event of a logging record (its level rounded down to a named one)."""
        named = [name for name in LEVELS if record.levelno >= getattr(logging, name.upper())]
        return cls(record.getMessage(), named[-1] if named else "debug")


@dataclass(frozen=True)
class StageDone(Event):
    """Every unit of `stage` is done; `summary` says how many there were and how many an earlier run did."""
    type: ClassVar[str] = "stage_done"
    stage: str
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Metrics(Event):
    """Measured values at a step (the trainer's evaluations)."""
    type: ClassVar[str] = "metrics"
    step: int
    values: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_count("metrics", "step", self.step)


@dataclass(frozen=True)
class State(Event):
    """The job moved to `state` (written by the job store; `error` when it failed)."""
    type: ClassVar[str] = "state"
    state: str
    error: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"state event: state {self.state!r} is not one of {', '.join(STATES)}")


#: the run functions' event callback
OnEvent = Callable[[Event], None]
