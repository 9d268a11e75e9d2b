"""The one error mapper (api.errors) and the module-level routers, in process: a 422 has the documented items
whoever raised it, a 405 names every method of the path across the included routers, and routes get the
service's parts through Depends."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError

from api.app import create_app
from api.errors import invalid, unprocessable
from api.limits import LimitError
from api.settings import Settings


class _Spec(BaseModel):
    n: int


def test_the_mapper_turns_validation_limits_and_value_errors_into_422_items():
    with pytest.raises(ValidationError) as e:
        _Spec.model_validate({"n": "many"})
    assert unprocessable(e.value, ["body", "spec"]).detail == \
        [{"loc": ["body", "spec", "n"], "msg": e.value.errors()[0]["msg"]}]
    limit = LimitError("spec.inputs[2]", "at most 16 glob patterns per job")
    assert unprocessable(limit).detail == [{"loc": ["body", "spec", "inputs", 2], "msg": str(limit)}]
    assert unprocessable(ValueError("unknown style 'x'")).detail == [{"loc": ["body"], "msg": "unknown style 'x'"}]
    unreadable = IsADirectoryError(21, "Is a directory", "pipeline.yaml")
    assert unprocessable(unreadable, ["body", "spec"]).detail == [{"loc": ["body", "spec"], "msg": str(unreadable)}]
    assert invalid(["body", "documents"], "too many").status_code == 422


@pytest.fixture
def client(tmp_path):
    app = create_app(Settings(data_root=tmp_path, tokens_env="alice:secret-1", max_workers=1))
    with TestClient(app) as c:
        c.headers["Authorization"] = "Bearer secret-1"
        yield c


def test_routes_answer_through_the_shared_handlers(client):
    r = client.delete("/v1/jobs")
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"     # both routes of the path
    assert client.put("/v1/rephrase").headers["allow"] == "POST"          # the interactive router's route
    r = client.post("/v1/rephrase", json={"documents": [{"text": "x"}] * 5})
    assert r.status_code == 422 and r.json()["detail"] == \
        [{"type": "value_error", "loc": ["body", "documents"], "msg": "at most 4 documents per request"}]
    r = client.post("/v1/jobs", json={"kind": "ingest", "spec": {"inputs": ["raw"]}})
    assert r.status_code == 422 and r.json()["detail"] == \
        [{"type": "value_error", "loc": ["body", "spec", "output"], "msg": "Field required"}]
    assert client.get("/v1/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/v1/jobs/none").json() == {"detail": "job none not found"}
    assert client.get("/healthz").json() == {"ok": True, "jobs": {}}
