"""Remote storage (corpus.storage) against a REAL S3 API: moto's server on loopback (moto[server], dev extra).

Job inputs and outputs given as s3:// URLs: the outputs land in the bucket with the index uploaded last (the
commit), a run that fails midway leaves its finished units but no index, and a rerun from an empty local cache
resumes from the markers in the bucket."""
import json
import shutil

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from api.cli import main
from corpus import jobs
from corpus.ingest import IngestStage
from corpus.shards import file_sha256

moto_server = pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")


@pytest.fixture
def s3(monkeypatch, tmp_path):
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": f"http://{host}:{port}", "K2FORGE_REMOTE_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(k, v)
    import urllib.request     # moto keeps its buckets per process: start every test from an empty store
    urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST")).close()
    boto3.client("s3").create_bucket(Bucket="corpus")
    fs, _ = pafs.FileSystem.from_uri("s3://corpus/")
    for k in range(3):
        rows = [{"text": f"Document {i} about rivers, floods and the towns that move uphill. " * 5, "domain": "web"}
                for i in range(k * 10, k * 10 + 10)] + [{"text": "A copy every file has. " * 20, "domain": "web"}]
        with fs.open_output_stream(f"corpus/in/part{k}.jsonl") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows).encode())
    yield fs
    server.stop()


def _listing(fs, prefix: str) -> dict[str, int]:
    return {i.path[len(prefix) + 1:]: i.size for i in fs.get_file_info(pafs.FileSelector(prefix, recursive=True))
            if i.type == pafs.FileType.File}


def test_jobs_read_and_write_s3_and_the_index_lists_what_is_there(s3, tmp_path):
    raw = jobs.ingest("s3://corpus/in/", output="s3://corpus/work/raw")
    assert raw.summary["rows_out"] == 33 and all(p.startswith("s3://corpus/work/raw/") for p in raw.summary["outputs"])
    main(["corpus", "dedup", "--inputs", "s3://corpus/work/raw", "--output", "s3://corpus/work/dedup", "-q"])
    for out in ("corpus/work/raw", "corpus/work/dedup"):
        files = _listing(s3, out)
        with s3.open_input_stream(f"{out}/.k2forge/index.json") as f:
            index = json.loads(f.read())
        shards = {n for n in files if "/" not in n}
        assert shards == {e["path"] for e in index["shards"]} and shards     # data at the top, all listed
        for e in index["shards"]:
            local = tmp_path / e["path"]
            with s3.open_input_stream(f"{out}/{e['path']}") as f:
                local.write_bytes(f.read())
            assert files[e["path"]] == e["bytes"] and file_sha256(local) == e["sha256"]
        assert not [n for n in files if n.startswith("_")]
    kept = sum(pq.read_table(f"corpus/work/dedup/{n}", filesystem=s3).num_rows
               for n in _listing(s3, "corpus/work/dedup") if "/" not in n)
    assert kept == 31          # 30 distinct documents + one of the three copies


def test_a_failed_run_commits_no_index_and_a_rerun_resumes_from_the_bucket(s3, tmp_path, monkeypatch):
    real, calls = IngestStage.process, []

    def fail_on_third(self, unit):
        calls.append(unit.id)
        if len(calls) == 3:
            raise RuntimeError("injected failure in the third unit")
        return real(self, unit)
    monkeypatch.setattr(IngestStage, "process", fail_on_third)
    with pytest.raises(RuntimeError, match="injected"):
        jobs.ingest("s3://corpus/in/", output="s3://corpus/work/raw")
    files = _listing(s3, "corpus/work/raw")
    assert ".k2forge/index.json" not in files                              # not committed
    assert len([n for n in files if n.startswith(".k2forge/done/ingest/")]) == 2   # two finished units uploaded
    shutil.rmtree(tmp_path / "cache")                                     # another machine: nothing local
    monkeypatch.setattr(IngestStage, "process", real)
    res = jobs.ingest("s3://corpus/in/", output="s3://corpus/work/raw")
    assert res.summary["units_cached"] == 2 and res.summary["rows_out"] == 33
    assert ".k2forge/index.json" in _listing(s3, "corpus/work/raw")


def test_nested_path_fields_read_remote_inputs_and_a_file_output_is_uploaded(s3, tmp_path):
    # the mixture inline: its sources' paths (a PathIn list two specs deep) name the bucket; the output is a file
    jobs.ingest("s3://corpus/in/", output="s3://corpus/work/raw")
    main(["corpus", "pack", "--inputs", "s3://corpus/work/raw", "--output", "s3://corpus/work/packed", "-q"])
    from corpus.mixture import MixSpec, run_mix
    from corpus.storage import with_remote_paths
    spec = MixSpec(mixture={"sources": [{"name": "web", "paths": ["s3://corpus/work/packed"], "domain": "web",
                                         "weight": 1.0}], "seq_len": 16, "total_tokens": 200},
                   output="s3://corpus/work/mix.json")
    res = with_remote_paths(run_mix)(spec)
    assert res["outputs"][0] == "s3://corpus/work/mix.json" and res["allotted_tokens"] > 0
    with s3.open_input_stream("corpus/work/mix.json") as f:
        manifest = json.loads(f.read())
    src = manifest["sources"][0]
    assert src["allotted_tokens"] == res["allotted_tokens"]
    assert all(not p.startswith("s3://") for p in src.get("prefixes", src.get("paths", [])))  # read from the cache
