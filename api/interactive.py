"""POST /v1/rephrase: rewrite a few documents synchronously, for interactive use.

Bounded (documents, characters, variants, tokens) so a request stays short. It goes through the same
RewriteStage.rewrite as batch jobs: same prompts, same chunk-wise generation, same verification. One stage
(one engine + verifier) is cached per engine/verifier configuration and used by one request at a time; the
cache (StageCache) is the app's `state.rephrase_stages`.
"""
from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import get_settings, principal
from api.errors import invalid, unprocessable
from api.limits import LimitError, check_json
from api.security import confined_spec, model_sources
from api.settings import Settings
from corpus.fields import loc_parts


class SyncDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, max_length=200)
    text: str = Field(min_length=1)


class SyncRephraseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[SyncDoc] = Field(min_length=1)
    variants: int = Field(1, ge=1, le=3)
    styles: list[str] | None = None
    perspectives: list[str] | None = None
    seed: int = 0
    max_new_tokens: int = Field(128, ge=1, le=512)
    attempts: int = Field(2, ge=1, le=3)
    engine: dict[str, Any] = Field(default_factory=dict, description="EngineSpec fields (model must be allowed)")
    verifier: dict[str, Any] = Field(default_factory=dict, description="VerifierSpec fields")


class StageCache:
    """One RewriteStage per engine/verifier configuration; a lock serialises use of each."""

    def __init__(self):
        self._stages: dict[str, tuple[Any, threading.Lock]] = {}
        self._lock = threading.Lock()

    def get(self, spec) -> tuple[Any, threading.Lock]:
        from rephrase.stage import RewriteStage     # engines: imported when the first request needs one
        key = json.dumps({"engine": spec.engine.model_dump(mode="json"),
                          "verifier": spec.verifier.model_dump(mode="json")}, sort_keys=True)
        with self._lock:
            if key not in self._stages:
                self._stages[key] = (RewriteStage(spec), threading.Lock())
            return self._stages[key]


def _rewrite(cache: StageCache, spec, docs: list[dict]) -> dict[str, Any]:
    stage, lock = cache.get(spec)
    with lock:
        stage.set_spec(spec)  # generation knobs may differ per request; engine and verifier are the cached ones
        out = stage.rewrite(docs)
        rows, rejects = out.rows, out.rejects
    return {"accepted": [{k: r[k] for k in ("parent_id", "style", "text", "fidelity", "attempts")} for r in rows],
            "rejected": [{k: r[k] for k in ("parent_id", "style", "status", "reasons", "chunk")} for r in rejects]}


router = APIRouter()


async def get_stages(request: Request) -> StageCache:
    return request.app.state.rephrase_stages


@router.post("/v1/rephrase", tags=["interactive"])
async def rephrase_now(req: SyncRephraseRequest, who: str = Depends(principal),
                       settings: Settings = Depends(get_settings), cache: StageCache = Depends(get_stages)) -> dict:
    if len(req.documents) > settings.sync_max_docs:
        raise invalid(["body", "documents"], f"at most {settings.sync_max_docs} documents per request")
    for i, d in enumerate(req.documents):
        if len(d.text) > settings.sync_max_chars:
            raise invalid(["body", "documents", i, "text"], f"at most {settings.sync_max_chars} characters")
    try:    # before any recursive walk of them
        check_json(req.engine, ["engine"], settings.max_json_depth)
        check_json(req.verifier, ["verifier"], settings.max_json_depth)
    except LimitError as e:
        raise unprocessable(e) from None
    from rephrase.spec import RephraseSpec      # the rephrase package is heavier to import than the service
    fields = req.model_dump(exclude={"documents"})
    try:    # e.g. engine.tokenizer paths: inside the data root, like a job's
        spec = confined_spec(RephraseSpec, {**fields, "inputs": ["<request>"], "output": "<request>"},
                             settings.data_root)
    except ValidationError as e:
        raise unprocessable(e) from None
    except LimitError as e:     # its field is the spec's: "spec.engine.tokenizer" is the body's engine.tokenizer
        raise invalid(["body", *loc_parts(e.field)[1:]], str(e)) from None
    for field, value in model_sources(spec):
        if value not in settings.model_allowlist:
            raise invalid(["body", *loc_parts(field)[1:]], f"model source {value!r} is not in the service allowlist")
    docs = [{"id": d.id or f"doc{i}", "text": d.text, "domain": "knowledge", "source": "api", "lang": "",
             "meta": "{}"} for i, d in enumerate(req.documents)]
    try:
        return await asyncio.to_thread(_rewrite, cache, spec, docs)
    except (ValueError, OSError) as e:  # e.g. an unknown style name, a tokenizer file that is not there
        raise unprocessable(e) from None
