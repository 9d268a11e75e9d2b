"""The OpenAPI contract of the real service: error statuses documented per route, job kinds as an enum, and 422
bodies shaped as documented (every item has loc, msg and type)."""
from __future__ import annotations


def test_openapi_documents_errors_and_kinds_and_422_items_have_a_type(service):
    schema = service.client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"401", "403", "409", "413", "422", "429"} <= set(paths["/v1/jobs"]["post"]["responses"])
    for route, method in (("/v1/jobs/{job_id}", "get"), ("/v1/jobs/{job_id}/cancel", "post"),
                          ("/v1/jobs/{job_id}/outputs", "get"), ("/v1/jobs/{job_id}/events", "get")):
        assert {"401", "403", "404", "429"} <= set(paths[route][method]["responses"]), route
    kind = schema["components"]["schemas"]["JobRequest"]["properties"]["kind"]
    assert set(kind["enum"]) == {"ingest", "rephrase", "mathnotes", "dedup", "mix", "pack", "train"}
    for body in ({"kind": "nope", "spec": {}}, {"kind": "ingest", "spec": {"inputs": ["../x"], "output": "o"}},
                 {"kind": "ingest", "spec": {"inputs": ["x"], "output": "o", "shard_bytes": -1}}):
        r = service.client.post("/v1/jobs", json=body)
        assert r.status_code == 422
        assert all(set(item) == {"loc", "msg", "type"} for item in r.json()["detail"]), r.text
