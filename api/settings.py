"""Service settings, from flags or K2FORGE_* environment variables."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from api.security import STATE_DIR


def _env_list(name: str, default: str = "") -> list[str]:
    return [x.strip() for x in os.environ.get(name, default).split(",") if x.strip()]


@dataclass
class Settings:
    data_root: Path = field(default_factory=lambda: Path(os.environ.get("K2FORGE_DATA_ROOT", "./data")))
    db_url: str | None = field(default_factory=lambda: os.environ.get("K2FORGE_DB_URL"))
    tokens_env: str | None = field(default_factory=lambda: os.environ.get("K2FORGE_API_TOKENS"))
    tokens_file: str | None = field(default_factory=lambda: os.environ.get("K2FORGE_API_TOKENS_FILE"))
    max_body_bytes: int = field(default_factory=lambda: int(os.environ.get("K2FORGE_MAX_BODY_BYTES", 1 << 20)))
    rate_per_s: float = field(default_factory=lambda: float(os.environ.get("K2FORGE_RATE_PER_S", 200)))
    rate_burst: int = field(default_factory=lambda: int(os.environ.get("K2FORGE_RATE_BURST", 400)))
    #: Redis for the per-token rate limit shared by every replica (e.g. redis://127.0.0.1:6379/0); none = each
    #: replica limits on its own
    redis_url: str | None = field(default_factory=lambda: os.environ.get("K2FORGE_REDIS_URL"))
    redis_prefix: str = field(default_factory=lambda: os.environ.get("K2FORGE_REDIS_PREFIX", "k2forge:rate:"))
    #: model sources a spec may name (model ids/paths and base URLs); the embedded model (None) is always allowed.
    model_allowlist: list[str] = field(default_factory=lambda: _env_list("K2FORGE_MODEL_ALLOWLIST"))
    #: users (token names) who see and cancel every user's jobs; everyone else sees only their own
    admins: list[str] = field(default_factory=lambda: _env_list("K2FORGE_ADMINS"))
    #: environment variables a spec may name as a credential (engine.api_key_env); a worker gets only those its
    #: spec names, never the service's own tokens
    secret_env_allowlist: list[str] = field(
        default_factory=lambda: _env_list("K2FORGE_ALLOW_SECRET_ENV", "OPENAI_API_KEY"))
    #: further non-secret variables workers inherit (beyond api.security.WORKER_ENV)
    worker_env: list[str] = field(default_factory=lambda: _env_list("K2FORGE_WORKER_ENV"))
    #: seconds a running attempt's lease lasts without renewal (workers renew every third of it); after that
    #: another replica may take the job over
    lease_s: float = field(default_factory=lambda: float(os.environ.get("K2FORGE_LEASE_S", 30)))
    #: attempts whose worker died before a job fails (each resumes from finished units)
    max_attempts: int = field(default_factory=lambda: int(os.environ.get("K2FORGE_MAX_ATTEMPTS", 3)))
    #: request bounds (api.limits): header bytes, glob patterns and filesystem entries per submit, JSON depth,
    #: concurrent event streams per token (and per replica) and the seconds a stream may wait for a client that
    #: stopped reading
    max_header_bytes: int = field(default_factory=lambda: int(os.environ.get("K2FORGE_MAX_HEADER_BYTES", 32768)))
    max_glob_patterns: int = field(default_factory=lambda: int(os.environ.get("K2FORGE_MAX_GLOB_PATTERNS", 16)))
    max_fs_entries: int = field(default_factory=lambda: int(os.environ.get("K2FORGE_MAX_FS_ENTRIES", 100000)))
    max_json_depth: int = 32
    max_streams_per_token: int = field(
        default_factory=lambda: int(os.environ.get("K2FORGE_MAX_STREAMS_PER_TOKEN", 8)))
    #: event streams one replica holds open at once, all tokens together (beyond: 503, try another replica)
    max_streams: int = field(default_factory=lambda: int(os.environ.get("K2FORGE_MAX_STREAMS", 1000)))
    stream_send_timeout_s: float = field(
        default_factory=lambda: float(os.environ.get("K2FORGE_STREAM_SEND_TIMEOUT_S", 30)))
    max_workers: int = field(default_factory=lambda: int(os.environ.get("K2FORGE_MAX_WORKERS", 2)))
    ray_address: str | None = field(default_factory=lambda: os.environ.get("K2FORGE_RAY_ADDRESS"))
    sync_max_docs: int = 4
    sync_max_chars: int = 8000

    def resolved(self) -> "Settings":
        self.data_root = Path(self.data_root).resolve()
        self.data_root.mkdir(parents=True, exist_ok=True)
        state = self.data_root / STATE_DIR     # job logs always; the SQLite database unless --db-url names one
        state.mkdir(exist_ok=True)
        if not self.db_url:
            self.db_url = f"sqlite:///{state / 'jobs.db'}"
        return self
