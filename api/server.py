"""`k2forge serve`: run the job service under uvicorn."""
from __future__ import annotations

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port.")
@click.option("--data-root", type=click.Path(file_okay=False), help="All job input/output paths must lie here "
              "[env K2FORGE_DATA_ROOT, default ./data].")
@click.option("--db-url", help="SQLAlchemy database URL [env K2FORGE_DB_URL, default SQLite in the data root].")
@click.option("--tokens-file", type=click.Path(dir_okay=False, exists=True),
              help="File with one bearer token per line ([name:]token) [env K2FORGE_API_TOKENS(_FILE)].")
@click.option("--max-workers", type=int, help="Jobs running at once [env K2FORGE_MAX_WORKERS, default 2].")
@click.option("--ray-address", help="Run jobs' executors on this Ray cluster [env K2FORGE_RAY_ADDRESS].")
@click.option("--allow-model", multiple=True, help="Model id/path or base URL that specs may name (repeatable).")
@click.option("--allow-secret-env", multiple=True, help="Environment variable a spec may name as its API key "
              "(engine.api_key_env), repeatable; OPENAI_API_KEY by default [env K2FORGE_ALLOW_SECRET_ENV].")
@click.option("--redis-url", help="Redis for the rate limit shared by all replicas [env K2FORGE_REDIS_URL].")
@click.option("--admin", multiple=True, help="User (token name) who sees every user's jobs (repeatable) "
              "[env K2FORGE_ADMINS].")
@click.option("--access-log/--no-access-log", default=False, show_default=True,
              help="Log every request (costs CPU under heavy polling; /metrics has per-route counts either way).")
def serve(host, port, data_root, db_url, tokens_file, max_workers, ray_address, allow_model, allow_secret_env,
          redis_url, admin, access_log) -> None:
    """Serve the REST API (OpenAPI docs at /docs). Jobs survive restarts and resume from finished shards."""
    # here, not at the top: `k2forge --help` imports this module to list the command, and must stay quick
    import uvicorn

    from api.app import create_app
    from api.settings import Settings

    s = Settings()
    for name, value in (("data_root", data_root), ("db_url", db_url), ("tokens_file", tokens_file),
                        ("max_workers", max_workers), ("ray_address", ray_address), ("redis_url", redis_url)):
        if value is not None:
            setattr(s, name, value)
    s.model_allowlist += list(allow_model)
    s.admins += list(admin)
    s.secret_env_allowlist += [e for e in allow_secret_env if e not in s.secret_env_allowlist]
    uvicorn.run(create_app(s), host=host, port=port, log_level="info", access_log=access_log,
                timeout_graceful_shutdown=10, http=_http_protocol(s.max_header_bytes),
                h11_max_incomplete_event_size=s.max_header_bytes)


def _http_protocol(max_head_bytes: int):
    """httptools (fast) with a cap on the request head; h11, which caps it itself, where httptools is absent."""
    try:
        from api.httpguard import bounded_httptools
    except ImportError:
        return "h11"
    return bounded_httptools(max_head_bytes)
