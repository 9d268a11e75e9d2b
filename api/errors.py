"""The service's error answers, in one place: every error is JSON `{"detail": ...}`, and a 422's detail is a list
of `{"loc": [...], "msg": ..., "type": ...}` items whoever raised it (a route, FastAPI's request parsing, a spec
model, a request bound).

Routes raise `invalid(loc, msg)`, or convert what validation raised with `unprocessable(exc, prefix)`; the
handlers installed by `install(app)` give every 422 the documented item shape. `responses(*codes)` documents a
route's error statuses in the OpenAPI schema.
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.limits import LimitError
from corpus.fields import loc_parts


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="where: body/query/path, then the field path")
    msg: str
    type: str = "value_error"


class ValidationProblem(BaseModel):
    detail: list[ErrorItem]


class Problem(BaseModel):
    detail: str


_WHAT = {401: "no bearer token", 403: "invalid token", 404: "no such job (or another user's)",
         409: "conflict with the job's state, its output's owner or an Idempotency-Key",
         413: "request body too large", 422: "invalid request", 429: "rate limit or stream limit exceeded",
         503: "this replica holds as many event streams as it serves; retry later or on another replica"}
#: what every authenticated route may answer
AUTH = (401, 403, 429)


def responses(*codes: int) -> dict[int, dict]:
    """OpenAPI entries for the error statuses a route can answer (every one is a JSON `detail`)."""
    return {c: {"model": ValidationProblem if c == 422 else Problem, "description": _WHAT[c]} for c in codes}


def problem(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


def invalid(loc: Sequence[str | int], msg: str) -> HTTPException:
    """A 422 naming one field, e.g. invalid(["body", "documents"], "at most 4 documents per request")."""
    return HTTPException(422, [{"loc": list(loc), "msg": msg}])


def unprocessable(exc: Exception, prefix: Sequence[str | int] = ("body",)) -> HTTPException:
    """The 422 of what validating a request raised: a pydantic ValidationError (one item per error, its `loc`
    under `prefix`), a LimitError (its dotted `field` under `prefix`) or another ValueError/OSError (at
    `prefix`)."""
    if isinstance(exc, ValidationError):
        return HTTPException(422, [{"loc": [*prefix, *e["loc"]], "msg": e["msg"]} for e in exc.errors()])
    if isinstance(exc, LimitError):
        return invalid([*prefix, *loc_parts(exc.field)], str(exc))
    return invalid(prefix, str(exc))


async def _on_http_error(request: Request, exc: StarletteHTTPException):
    # FastAPI answers JSON its parser cannot take (nested beyond the recursion limit) with a bare 400
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        return problem(422, [{"loc": ["body"], "msg": "JSON body could not be parsed (nested too deeply?)",
                              "type": "json_invalid"}])
    if exc.status_code == 405:      # Starlette names only the first route's methods; a path may have several
        allowed = sorted({m for r in _routes(request.app.routes) if r.path_regex.match(request.url.path)
                          for m in r.methods})
        return problem(405, exc.detail, headers={"Allow": ", ".join(allowed)})
    if exc.status_code == 422 and isinstance(exc.detail, list):    # every 422 item has the documented type
        return problem(422, [{"type": "value_error", **e} for e in exc.detail])
    return await http_exception_handler(request, exc)


def _routes(routes: list) -> Iterator[Any]:
    """Every route with methods, inside included routers too (FastAPI 0.16x keeps an included router whole, as
    one entry holding the original; the service's routers have no prefix, so their routes' paths are the app's)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        elif getattr(r, "methods", None):
            yield r


async def _on_request_invalid(request: Request, exc: RequestValidationError):
    return problem(422, [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()])


def install(app: FastAPI) -> None:
    """Answer every HTTP error and request validation error of `app` in the shapes above."""
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(RequestValidationError, _on_request_invalid)
