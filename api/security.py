"""Service security: bearer tokens, path confinement to the data root, model allowlist, secret redaction,
per-token rate limiting.

What a spec field holds is declared on the field (corpus.fields: PathIn, PathOut, Secret, SecretEnv,
ModelSource), so every job spec is covered without per-kind code and without guessing from key names:
- `confined_spec` validates a submitted spec once, each path resolved inside the data root as it is validated;
- `split_secrets` / `merge_secrets` / `missing_secrets` keep Secret values out of the database, by location;
- `env_names` lists the SecretEnv variables a worker may be given (`worker_env`), `model_sources` the ModelSource
  values the request set (for the allowlist);
- `check_confined` checks a stored spec's paths again at run time.
"""
from __future__ import annotations

import fnmatch
import glob
import hashlib
import hmac
import itertools
import os
import threading
import time
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticCustomError

from api.limits import FsBudget, LimitError, check_path_length
from corpus import fields
from corpus.fields import PATHS, Role

REDACTED = "***redacted***"
#: the service's own state (job database, job logs) inside the data root: no job may read or write it
STATE_DIR = ".k2forge"
M = TypeVar("M", bound=BaseModel)


class PathError(LimitError):
    """A path a job may not use (outside the data root, the state folder, ...); also raised for limits."""


def load_tokens(env_value: str | None, file: str | None) -> dict[str, str]:
    """Tokens from K2FORGE_API_TOKENS ("name:token,token2") and/or a file with one `[name:]token` per line."""
    entries: list[str] = []
    if env_value:
        entries += [e.strip() for e in env_value.split(",") if e.strip()]
    if file:
        entries += [ln.strip() for ln in Path(file).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    tokens = {}
    for i, e in enumerate(entries):
        name, _, tok = e.rpartition(":")
        tokens[tok] = name or f"token{i}"
    return tokens


def hash_tokens(tokens: dict[str, str]) -> dict[bytes, str]:
    """{sha256(token): principal}: lookups then cost O(1) however many tokens there are."""
    return {hashlib.sha256(tok.encode()).digest(): name for tok, name in tokens.items()}


def check_token(header: str | None, hashed: dict[bytes, str]) -> tuple[int, str | None]:
    """(status, principal): 401 without a bearer token, 403 with a wrong one, 200 otherwise.

    The lookup is by the token's sha256, so its timing depends on the digest, not on how many characters of a
    real token were guessed; the final compare_digest keeps the comparison itself constant-time.
    """
    if not header or not header.lower().startswith("bearer ") or not header[7:].strip():
        return 401, None
    digest = hashlib.sha256(header[7:].strip().encode()).digest()
    for known in (digest,) if digest in hashed else ():
        if hmac.compare_digest(digest, known):
            return 200, hashed[known]
    return 403, None


def confine(value: str, root: Path, field: str, budget: FsBudget | None = None) -> str:
    """Resolve `value` (relative = under root) and refuse anything outside root, symlinks included.

    Globs are checked on their fixed prefix AND on every path they match now, and a directory is checked for
    symlinks inside it that lead out, so neither `escap?/etc/passwd` nor `dir/link-to-etc` gets through. The
    service's state folder (STATE_DIR) is refused too: a job must not overwrite the job database. The work is
    bounded by `budget` (LimitError beyond it).
    """
    budget = budget or FsBudget()
    check_path_length(value, field)
    if "\x00" in value:
        raise PathError(field, "path contains a NUL byte")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PathError(field, f"path {value!r} is not valid Unicode") from None
    p = Path(value)
    if ".." in p.parts:
        raise PathError(field, f"'..' is not allowed in paths ({value!r})")
    full = p if p.is_absolute() else root / p
    root_real = Path(os.path.realpath(root))
    parts = full.parts
    cut = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    if cut < len(parts):    # a glob: its fixed prefix, then what it matches now (what a reader would read)
        prefix = Path(*parts[:cut]) if cut else root
        _check_inside(prefix, root_real, value, field)
        budget.pattern(field)
        if "**" in value:   # a recursive glob walks the whole tree below its prefix, matches or not
            budget.walk_tree(prefix, field)
        targets = [Path(m) for m in itertools.islice(glob.iglob(str(full), recursive=True), budget.remaining() + 1)]
        budget.spend(len(targets), field)
    else:
        targets = [full]
    rel = full.relative_to(root).parts if full.is_relative_to(root) else ()
    # glob matches hidden names only with a pattern that starts with "." (so "**" never reaches STATE_DIR)
    if rel and rel[0].startswith(".") and fnmatch.fnmatchcase(STATE_DIR, rel[0]):
        raise _state_error(value, field)
    for t in targets:
        _check_inside(t, root_real, value, field)
        if t.is_dir() and not t.is_symlink():
            for d, dirs, files in os.walk(t):
                budget.spend(len(dirs) + len(files), field)
                for name in dirs + files:
                    if os.path.islink(os.path.join(d, name)):
                        _check_inside(Path(d) / name, root_real, value, field)
    return str(full)


def _check_inside(path: Path, root_real: Path, value: str, field: str) -> None:
    real = Path(os.path.realpath(path))
    if real != root_real and root_real not in real.parents:
        raise PathError(field, f"path {value!r} is outside the data root" +
                        (f" ({path} leads to {real})" if path != Path(value) else ""))
    rel = real.relative_to(root_real).parts
    if rel and rel[0] == STATE_DIR:
        raise _state_error(value, field)


def _state_error(value: str, field: str) -> PathError:
    return PathError(field, f"path {value!r} is inside the service's state folder {STATE_DIR}/")


def confined_spec(cls: type[M], data: Any, root: Path, budget: FsBudget | None = None) -> M:
    """Validate `data` as `cls` ONCE, each path field (PathIn/PathOut, corpus.fields) confined to root as it is
    validated, so a validator that reads a file (a styles file) reads the confined path. ValidationError names the
    field (a PathError or LimitError becomes its message). Paths pydantic does not validate itself (defaults, a
    sub-spec a validator builds) are confined after validation: then PathError/LimitError name their location."""
    budget = budget or FsBudget()
    seen: set[str] = set()

    def on_value(role: Role, value: str, name: str) -> str:
        if not role.is_path:
            return value
        try:
            out = confine(value, root, name, budget)
        except LimitError as e:     # the loc of the error says where; its message what
            raise PydanticCustomError("path" if isinstance(e, PathError) else "limit", "{reason}",
                                     {"reason": str(e)}) from None
        seen.add(out)
        return out

    spec = fields.validate(cls, data, on_value)
    return fields.replace(spec, PATHS, lambda loc, role, v: v if v in seen else confine(v, root, loc, budget))


def check_confined(spec: BaseModel, root: Path, budget: FsBudget | None = None) -> None:
    """Check every path of a validated spec again (a symlink may have appeared since the submit); PathError."""
    budget = budget or FsBudget()
    for loc, value in fields.values(spec, *PATHS):
        confine(value, root, loc, budget)


def spec_paths(spec: BaseModel, role: Role) -> list[str]:
    """The values of a spec's fields with this path role (PATH_IN: what the job reads, PATH_OUT: what it writes)."""
    return [v for _, v in fields.values(spec, role)]


def split_secrets(spec: M) -> tuple[M, dict[str, str]]:
    """(copy with every Secret field REDACTED, {location: secret}): secrets never reach the database or logs."""
    secrets: dict[str, str] = {}

    def redact(loc: str, role: Role, value: str) -> str:
        if not value or value == REDACTED:
            return value
        secrets[loc] = value
        return REDACTED

    return fields.replace(spec, {Role.SECRET}, redact), secrets


def merge_secrets(spec: M, secrets: dict[str, str]) -> M:
    """Put secrets back into a redacted spec (worker side, from its environment), by location."""
    return fields.replace(spec, {Role.SECRET}, lambda loc, role, value: secrets.get(loc, value))


def missing_secrets(spec: BaseModel) -> list[str]:
    """Locations of Secret fields still REDACTED (their value was lost with a service restart)."""
    return [loc for loc, value in fields.values(spec, Role.SECRET) if value == REDACTED]


def env_names(spec: BaseModel) -> list[tuple[str, str]]:
    """(location, name) of every SecretEnv field: environment variables holding credentials the job reads
    (defaults included: they are read from the environment just the same)."""
    return fields.values(spec, Role.SECRET_ENV)


def model_sources(spec: BaseModel) -> list[tuple[str, str]]:
    """(location, value) of every ModelSource field the submitted data set (defaults are the operator's code)."""
    return fields.values(spec, Role.MODEL_SOURCE, explicit=True)


#: what a worker inherits from the service's environment: locale, paths, caches, thread counts, CA bundles.
#: Everything else (the service's API tokens, HF tokens, cloud credentials) stays out of jobs.
WORKER_ENV = frozenset("""PATH HOME USER LOGNAME LANG LANGUAGE TZ TMPDIR TEMP TMP PYTHONPATH VIRTUAL_ENV
    HF_HOME HF_HUB_CACHE HF_DATASETS_CACHE HF_HUB_OFFLINE HF_DATASETS_OFFLINE TRANSFORMERS_OFFLINE XDG_CACHE_HOME
    TORCH_HOME OMP_NUM_THREADS MKL_NUM_THREADS OPENBLAS_NUM_THREADS TOKENIZERS_PARALLELISM CUDA_VISIBLE_DEVICES
    NVIDIA_VISIBLE_DEVICES RAY_TMPDIR SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE CURL_CA_BUNDLE HTTP_PROXY
    HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy K2FORGE_QUIET K2FORGE_PROGRESS K2FORGE_CACHE
    K2FORGE_PEAK_FLOPS K2FORGE_WORKER_NICE K2FORGE_HOST_ID K2FORGE_LEASE_S K2FORGE_LOCK_TIMEOUT_S
    K2FORGE_UNIT_DOCS""".split())


def worker_env(environ: dict[str, str], spec: BaseModel | None, secret_env_allowlist: list[str],
               extra: list[str] = ()) -> dict[str, str]:
    """The minimal environment of a job's worker: WORKER_ENV (+ `extra`, operator-chosen), LC_*, and the
    credential variables this spec names that the operator allowlisted (checked again here: the list may have
    changed since the submit). No spec (a stored one that no longer validates): no credential variables."""
    keep = WORKER_ENV | set(extra)
    env = {k: v for k, v in environ.items() if k in keep or k.startswith("LC_")}
    for _, name in env_names(spec) if spec is not None else ():
        if name in secret_env_allowlist and name in environ:
            env[name] = environ[name]
    return env


class RateLimiter:
    """Token bucket per principal: `rate` requests per second with a burst of `burst`."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(key, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            ok = tokens >= 1
            self._state[key] = (tokens - 1 if ok else tokens, now)
            return ok
