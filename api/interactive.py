"""POST /v1/rephrase: rewrite a few documents synchronously, for interactive use.

Bounded (documents, characters, variants, tokens) so a request stays short. It goes through the same
RewriteStage.rewrite_docs as batch jobs: same prompts, same chunk-wise generation, same verification. One stage
(one engine + verifier) is cached per engine/verifier configuration and used by one request at a time.
"""
from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.limits import LimitError, check_json
from api.security import confine_spec, model_sources


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


class _StageCache:
    """One RewriteStage per engine/verifier configuration; a lock serialises use of each."""

    def __init__(self):
        self._stages: dict[str, tuple[Any, threading.Lock]] = {}
        self._lock = threading.Lock()

    def get(self, spec) -> tuple[Any, threading.Lock]:
        from rephrase.stage import RewriteStage
        key = json.dumps({"engine": spec.engine.model_dump(mode="json"),
                          "verifier": spec.verifier.model_dump(mode="json")}, sort_keys=True)
        with self._lock:
            if key not in self._stages:
                self._stages[key] = (RewriteStage(spec), threading.Lock())
            return self._stages[key]


def _rewrite(cache: _StageCache, spec, docs: list[dict]) -> dict[str, Any]:
    stage, lock = cache.get(spec)
    with lock:
        stage.set_spec(spec)  # generation knobs may differ per request; engine and verifier are the cached ones
        rows, rejects, _, _ = stage.rewrite_docs(docs)
    return {"accepted": [{k: r[k] for k in ("parent_id", "style", "text", "fidelity", "attempts")} for r in rows],
            "rejected": [{k: r[k] for k in ("parent_id", "style", "status", "reasons", "chunk")} for r in rejects]}


def add_interactive_routes(app: FastAPI, principal, settings) -> None:
    cache = _StageCache()

    @app.post("/v1/rephrase", tags=["interactive"])
    async def rephrase_now(req: SyncRephraseRequest, who: str = Depends(principal)) -> dict:
        if len(req.documents) > settings.sync_max_docs:
            raise HTTPException(422, [{"loc": ["body", "documents"],
                                       "msg": f"at most {settings.sync_max_docs} documents per request"}])
        for i, d in enumerate(req.documents):
            if len(d.text) > settings.sync_max_chars:
                raise HTTPException(422, [{"loc": ["body", "documents", i, "text"],
                                           "msg": f"at most {settings.sync_max_chars} characters"}])
        try:    # before any recursive walk of them
            check_json(req.engine, ["engine"], settings.max_json_depth)
            check_json(req.verifier, ["verifier"], settings.max_json_depth)
        except LimitError as e:
            raise HTTPException(422, [{"loc": ["body", *e.field.split(".")], "msg": str(e)}]) from None
        for field, value in model_sources({"engine": req.engine, "verifier": req.verifier}):
            if value not in settings.model_allowlist:
                raise HTTPException(422, [{"loc": ["body", *field.split(".")[1:]],
                                           "msg": f"model source {value!r} is not in the service allowlist"}])
        from rephrase.spec import RephraseSpec
        fields = req.model_dump(exclude={"documents"})
        try:    # e.g. engine.tokenizer or verifier.styles paths: inside the data root, like a job's
            fields["engine"] = confine_spec(fields["engine"], settings.data_root, "engine")
            fields["verifier"] = confine_spec(fields["verifier"], settings.data_root, "verifier")
        except LimitError as e:
            raise HTTPException(422, [{"loc": ["body", *e.field.split(".")], "msg": str(e)}]) from None
        try:
            spec = RephraseSpec.model_validate({**fields, "inputs": ["<request>"], "output": "<request>"})
        except ValidationError as e:
            raise HTTPException(422, [{"loc": ["body", *err["loc"]], "msg": err["msg"]} for err in e.errors()])
        docs = [{"id": d.id or f"doc{i}", "text": d.text, "domain": "knowledge", "source": "api", "lang": "",
                 "meta": "{}"} for i, d in enumerate(req.documents)]
        try:
            return await asyncio.to_thread(_rewrite, cache, spec, docs)
        except (ValueError, OSError) as e:  # e.g. an unknown style name, a tokenizer file that is not there
            raise HTTPException(422, [{"loc": ["body"], "msg": str(e)}]) from None
