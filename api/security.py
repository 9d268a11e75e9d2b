"""Service security: bearer tokens, path confinement to the data root, model allowlist, secret redaction,
per-token rate limiting.

Path fields are found by name, so every job spec is covered without per-kind code: any key named like
input(s), output, path(s), dir, file, manifest, mixture, packed, checkpoint, tokenizer, styles_file (optionally with a
prefix such as `labelled_input`) holds a path or a list of paths/globs, and each must resolve inside the data root.
"""
from __future__ import annotations

import fnmatch
import glob
import hashlib
import hmac
import itertools
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from api.limits import FsBudget, LimitError, check_path_length

PATH_KEY = re.compile(r"(^|_)(inputs?|outputs?|paths?|dirs?|files?|manifest|mixture|packed|checkpoint|"
                      r"tokenizer|root)$")
# Secrets by key name. `token` alone or with an auth-ish prefix; NOT eos_token/pad_token (tokenizer settings).
SECRET_KEY = re.compile(r"((^|_)(api_?key|secret|password|authorization)|^((auth|access|bearer|hf|api)_)?token)$",
                        re.I)
REDACTED = "***redacted***"
#: the service's own state (job database, job logs) inside the data root: no job may read or write it
STATE_DIR = ".k2forge"
#: keys whose string values name a model to load (checked against the service's allowlist)
MODEL_KEYS = ("model", "base_url", "embedding_model")


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


def confine_spec(spec: Any, root: Path, where: str = "spec", budget: FsBudget | None = None) -> Any:
    """Return a copy of a spec dict with every path field resolved inside root; raise PathError otherwise (or
    LimitError when its paths cost more filesystem work than one budget allows)."""
    budget = budget or FsBudget()
    if isinstance(spec, dict):
        out = {}
        for k, v in spec.items():
            loc = f"{where}.{k}"
            if PATH_KEY.search(str(k)) and v is not None:
                if isinstance(v, str):
                    out[k] = confine(v, root, loc, budget)
                elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                    out[k] = [confine(x, root, f"{loc}[{i}]", budget) for i, x in enumerate(v)]
                else:
                    out[k] = confine_spec(v, root, loc, budget)
            else:
                out[k] = confine_spec(v, root, loc, budget)
        return out
    if isinstance(spec, list):
        return [confine_spec(x, root, f"{where}[{i}]", budget) for i, x in enumerate(spec)]
    return spec


def spec_paths(spec: Any) -> list[str]:
    """Every path value in a spec (the fields confine_spec confines), e.g. to compare inputs with outputs."""
    found: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if PATH_KEY.search(str(k)) and isinstance(v, str):
                    found.append(v)
                elif PATH_KEY.search(str(k)) and isinstance(v, list) and all(isinstance(i, str) for i in v):
                    found.extend(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(spec)
    return found


def split_secrets(spec: Any) -> tuple[Any, dict[str, Any]]:
    """(redacted copy, {dotted path: secret}) — secrets never reach the database or the logs."""
    secrets: dict[str, Any] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, dict):
            res = {}
            for k, v in x.items():
                p = f"{path}.{k}" if path else str(k)
                if SECRET_KEY.search(str(k)) and isinstance(v, str) and v and not str(k).endswith("_env"):
                    secrets[p] = v
                    res[k] = REDACTED
                else:
                    res[k] = walk(v, p)
            return res
        if isinstance(x, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(x)]
        return x

    return walk(spec, ""), secrets


def merge_secrets(spec: dict, secrets: dict[str, Any]) -> dict:
    """Put secrets back into a redacted spec (worker side, from its environment)."""
    for dotted, value in secrets.items():
        node = spec
        keys = dotted.split(".")
        for k in keys[:-1]:
            node = node.get(k, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node[keys[-1]] = value
    return spec


def env_names(spec: Any) -> list[tuple[str, str]]:
    """(field, value) of every field that names an environment variable to read (`*_env`, e.g. api_key_env)."""
    found: list[tuple[str, str]] = []

    def walk(x: Any, path: str) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                if str(k).endswith("_env") and isinstance(v, str):
                    found.append((f"{path}.{k}", v))
                else:
                    walk(v, f"{path}.{k}")
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")

    walk(spec, "spec")
    return found


#: what a worker inherits from the service's environment: locale, paths, caches, thread counts, CA bundles.
#: Everything else (the service's API tokens, HF tokens, cloud credentials) stays out of jobs.
WORKER_ENV = frozenset("""PATH HOME USER LOGNAME LANG LANGUAGE TZ TMPDIR TEMP TMP PYTHONPATH VIRTUAL_ENV
    HF_HOME HF_HUB_CACHE HF_DATASETS_CACHE HF_HUB_OFFLINE HF_DATASETS_OFFLINE TRANSFORMERS_OFFLINE XDG_CACHE_HOME
    TORCH_HOME OMP_NUM_THREADS MKL_NUM_THREADS OPENBLAS_NUM_THREADS TOKENIZERS_PARALLELISM CUDA_VISIBLE_DEVICES
    NVIDIA_VISIBLE_DEVICES RAY_TMPDIR SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE CURL_CA_BUNDLE HTTP_PROXY
    HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy K2FORGE_QUIET K2FORGE_PROGRESS K2FORGE_CACHE
    K2FORGE_PEAK_FLOPS K2FORGE_WORKER_NICE K2FORGE_HOST_ID K2FORGE_LEASE_S K2FORGE_LOCK_TIMEOUT_S
    K2FORGE_UNIT_DOCS""".split())


def worker_env(environ: dict[str, str], spec: Any, secret_env_allowlist: list[str],
               extra: list[str] = ()) -> dict[str, str]:
    """The minimal environment of a job's worker: WORKER_ENV (+ `extra`, operator-chosen), LC_*, and the
    credential variables this spec names that the operator allowlisted (checked again here: the list may have
    changed since the submit)."""
    keep = WORKER_ENV | set(extra)
    env = {k: v for k, v in environ.items() if k in keep or k.startswith("LC_")}
    for _, name in env_names(spec):
        if name in secret_env_allowlist and name in environ:
            env[name] = environ[name]
    return env


def model_sources(spec: Any) -> list[tuple[str, str]]:
    """(field, value) of every model source in a spec: keys in MODEL_KEYS, anywhere."""
    found: list[tuple[str, str]] = []

    def walk(x: Any, path: str) -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                p = f"{path}.{k}"
                if k in MODEL_KEYS and isinstance(v, str):
                    found.append((p, v))
                else:
                    walk(v, p)
        elif isinstance(x, list):
            for i, v in enumerate(x):
                walk(v, f"{path}[{i}]")

    walk(spec, "spec")
    return found


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
