"""The OpenAPI contract of the real service: error statuses documented per route, the submit body as one schema
per job kind (discriminated on `kind`), and 422 bodies shaped as documented (every item has loc, msg and type)."""
from __future__ import annotations

from corpus.spec import JOB_KINDS


def test_openapi_documents_errors_and_kinds_and_422_items_have_a_type(service):
    schema = service.client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"401", "403", "409", "413", "422", "429"} <= set(paths["/v1/jobs"]["post"]["responses"])
    for route, method in (("/v1/jobs/{job_id}", "get"), ("/v1/jobs/{job_id}/cancel", "post"),
                          ("/v1/jobs/{job_id}/outputs", "get"), ("/v1/jobs/{job_id}/events", "get")):
        assert {"401", "403", "404", "429"} <= set(paths[route][method]["responses"]), route
    body = paths["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"ingest", "rephrase", "mathnotes", "dedup", "mix", "pack", "train"} <= set(JOB_KINDS)
    assert body["discriminator"]["propertyName"] == "kind" and set(body["discriminator"]["mapping"]) == set(JOB_KINDS)
    ingest = schema["components"]["schemas"]["IngestJob"]
    assert ingest["properties"]["spec"]["$ref"] == "#/components/schemas/IngestSpec"
    assert {"inputs", "output"} <= set(schema["components"]["schemas"]["IngestSpec"]["required"])
    for body in ({"kind": "nope", "spec": {}}, {"kind": "ingest", "spec": {"inputs": ["../x"], "output": "o"}},
                 {"kind": "ingest", "spec": {"inputs": ["x"], "output": "o", "shard_bytes": -1}}):
        r = service.client.post("/v1/jobs", json=body)
        assert r.status_code == 422
        assert all(set(item) == {"loc", "msg", "type"} for item in r.json()["detail"]), r.text
