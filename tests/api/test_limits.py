"""Small requests that used to cost a lot or 500, against a real server: a huge header, deep JSON, Infinity,
long paths, unknown fields, many or wide globs, many idle event streams; and the README's curl example."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx

from api.store import JobStore
from corpus.events import Log
from tests.api.conftest import TOKEN, Service


def test_a_huge_header_is_refused_without_stalling_other_clients(service):
    result: dict = {}

    def attack() -> None:
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", service.port)) as s:
            try:
                huge = b"Authorization: Bearer " + b"a" * 48_000_000
                s.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\n" + huge + b"\r\n\r\n")
                result["reply"] = s.recv(100)
            except OSError as e:        # closed on us while we were still sending: refused just as well
                result["reply"] = repr(e).encode()
        result["s"] = time.perf_counter() - t0

    t = threading.Thread(target=attack)
    t.start()
    worst = 0.0
    while t.is_alive():
        t0 = time.perf_counter()
        assert service.client.get("/v1/jobs").status_code == 200
        worst = max(worst, time.perf_counter() - t0)
    t.join()
    assert result["reply"].startswith(b"HTTP/1.1 431") or b"reset" in result["reply"].lower() or \
        b"broken pipe" in result["reply"].lower(), result
    assert result["s"] < 2 and worst < 0.5, (result, worst)
    small = httpx.get(f"{service.url}/v1/jobs", headers={"Authorization": "Bearer " + "b" * 8000})
    assert small.status_code == 403                      # an ordinary header still reaches the app


def _post_raw(service, raw: str) -> httpx.Response:
    return service.client.post("/v1/jobs", content=raw, headers={"Content-Type": "application/json"})


def test_deep_json_infinity_long_paths_and_unknown_fields_are_422(service):
    for depth in (300, 900, 100_000):
        nested = "[" * depth + "]" * depth
        r = _post_raw(service, '{"kind": "ingest", "spec": {"inputs": ["raw"], "output": "o", "x": %s}}' % nested)
        assert r.status_code == 422, (depth, r.text[:300])
    r = _post_raw(service, '{"kind": "train", "spec": {"manifest": "m.json", "output": "t", "lr": Infinity}}')
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "spec", "lr"], r.text
    r = _post_raw(service, '{"kind": "train", "spec": {"manifest": "m.json", "output": "t", "lr": NaN}}')
    assert r.status_code == 422
    for path in ("a" * 6000, "d/" + "n" * 300):
        r = service.client.post("/v1/jobs", json={"kind": "ingest", "spec": {"inputs": [path], "output": "o"}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "spec", "inputs", 0], r.text
    r = service.client.post("/v1/jobs", json={"kind": "ingest", "spec": {"inputs": ["raw"], "output": "o"},
                                              "priority": 1})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "priority"], r.text


def test_glob_patterns_and_their_expansion_are_capped(tmp_path):
    for i in range(20):
        d = tmp_path / "tree" / f"d{i}"
        d.mkdir(parents=True)
        for j in range(60):
            (d / f"f{j}.jsonl").touch()
    svc = Service(tmp_path, extra_env={"K2FORGE_MAX_GLOB_PATTERNS": "4", "K2FORGE_MAX_FS_ENTRIES": "1000"}).start()
    try:
        def submit(inputs):
            return svc.client.post("/v1/jobs", json={"kind": "ingest", "spec": {"inputs": inputs, "output": "o"}})
        r = submit(["tree/d0/*.jsonl"] * 5)
        assert r.status_code == 422 and "at most 4 glob patterns" in r.text, r.text
        t0 = time.perf_counter()
        r = submit(["**"] * 4)
        assert r.status_code == 422 and "more than 1000 files" in r.text and time.perf_counter() - t0 < 2, r.text
        assert submit(["tree"]).status_code == 422                     # a folder walk counts too (1220 entries)
        assert submit(["tree/d1/*.jsonl", "tree/d2/*.jsonl"]).status_code == 201
    finally:
        svc.stop()


def test_event_streams_are_capped_per_token_and_per_replica(tmp_path):
    svc = Service(tmp_path, max_workers=0, extra_env={"K2FORGE_MAX_STREAMS_PER_TOKEN": "2",
                                                      "K2FORGE_MAX_STREAMS": "3"}).start()
    try:
        (tmp_path / "raw").mkdir()
        job = svc.client.post("/v1/jobs", json={"kind": "ingest", "spec": {"inputs": ["raw"],
                                                                            "output": "o"}}).json()["id"]
        url = f"/v1/jobs/{job}/events"
        held = [svc.client_for("alice") for _ in range(2)]
        opened = [c.stream("GET", url) for c in held]     # keep the context managers: collected, they close
        streams = [cm.__enter__() for cm in opened]       # the job stays queued: the streams stay open
        assert all(s.status_code == 200 for s in streams)
        r = svc.client.get(url, timeout=10)
        assert r.status_code == 429 and "Retry-After" in r.headers
        with svc.client_for("bob") as bob:
            assert bob.get(url).status_code == 404                  # bob's own slots are untouched: not his job
        root = svc.client_for("root")                               # an admin: may follow alice's job
        with root.stream("GET", url) as third:                      # the replica's third and last stream
            assert third.status_code == 200
            with svc.client_for("root") as root2:
                full = root2.get(url, timeout=10)
            assert full.status_code == 503 and "Retry-After" in full.headers, full.text
        root.close()
        opened[0].__exit__(None, None, None)
        held[0].close()
        deadline = time.monotonic() + 10
        while True:         # the slot frees once the server sees the disconnect
            with svc.client_for("alice").stream("GET", url) as s:
                if s.status_code == 200:
                    break
            assert time.monotonic() < deadline, "a closed stream never gave its slot back"
            time.sleep(0.05)
        opened[1].__exit__(None, None, None)
        held[1].close()
    finally:
        svc.stop()


def test_a_client_that_stops_reading_its_event_stream_is_dropped(tmp_path):
    """Events for a stream that is not read pile up in socket buffers until the server's send blocks; after the
    send timeout the server drops the stream (and its slot), instead of buffering for it without bound."""
    svc = Service(tmp_path, max_workers=0, extra_env={"K2FORGE_MAX_STREAMS_PER_TOKEN": "1",
                                                      "K2FORGE_STREAM_SEND_TIMEOUT_S": "1"}).start()
    try:
        (tmp_path / "raw").mkdir()
        job = svc.client.post("/v1/jobs", json={"kind": "ingest", "spec": {"inputs": ["raw"],
                                                                            "output": "o"}}).json()["id"]
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", svc.port))
        slow.sendall(f"GET /v1/jobs/{job}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                     .encode())
        assert slow.recv(12) == b"HTTP/1.1 200"                  # then it never reads again
        store = JobStore(f"sqlite:///{tmp_path / '.k2forge' / 'jobs.db'}")
        url = f"/v1/jobs/{job}/events"
        deadline = time.monotonic() + 90
        while True:
            for i in range(200):                                  # ~200 KB of events the client never reads
                store.add_event(job, Log(f"{i} " + "x" * 1000))
            with svc.client_for("alice").stream("GET", url, timeout=10) as again:
                if again.status_code == 200:                      # the unread stream's slot came back
                    break
                assert again.status_code == 429
            assert time.monotonic() < deadline, "a stream nobody reads was never dropped"
        slow.close()
    finally:
        svc.stop()


def test_the_readme_curl_example_works(service):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("### REST API", 1)[1].split("```", 2)[1]
    submit = re.search(r"^curl .*?/v1/jobs$", block.replace("\\\n", " "), re.M).group(0)
    (service.root / "raw").mkdir()
    (service.root / "raw" / "a.jsonl").write_text(json.dumps({"text": "hello", "domain": "web"}) + "\n")
    cmd = submit.replace("http://127.0.0.1:8000", service.url)
    r = subprocess.run(["bash", "-c", cmd], env={"TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}, capture_output=True,
                       text=True, timeout=60)
    job = json.loads(r.stdout)
    assert job["kind"] == "ingest" and job["state"] == "queued", r.stdout
    assert service.wait_state(job["id"], ("succeeded", "failed"))["state"] == "succeeded"


def test_a_chunked_body_over_the_limit_is_413(service):
    def chunks():
        yield b'{"kind": "ingest", "spec": {"inputs": ["'
        for _ in range(40):                  # 2.5 MB, no Content-Length: the limit is counted as it streams
            yield b"x" * 65536
        yield b'"], "output": "o"}}'
    r = service.client.post("/v1/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413 and "larger than" in r.text, r.text
