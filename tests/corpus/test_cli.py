"""`k2forge corpus ...`: help for every command and option, lazy job commands, ingest end to end, stats, demo."""
import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import corpus.cli as corpus_cli
from api.cli import cli, main
from corpus.schema import normalize_doc, table_from_docs
from corpus.shards import write_index, write_table

COMMANDS = ["dedup", "demo", "ingest", "mix", "pack", "stats"]


def _run(*args):
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return res


def test_help_for_every_command_and_option():
    res = _run("corpus", "--help")
    assert res.exit_code == 0
    for name in COMMANDS:
        assert name in res.output
    ctx = None
    for name in COMMANDS:
        res = _run("corpus", name, "--help")
        assert res.exit_code == 0 and "Usage:" in res.output, name
        cmd = corpus_cli.corpus.get_command(ctx, name)
        assert "[unavailable" not in (cmd.help or ""), f"{name}: {cmd.help}"
        for p in cmd.params:
            if p.param_type_name == "option":
                assert (p.help or "").strip(), f"corpus {name} {p.opts}: option without help text"


def test_a_job_that_cannot_import_is_listed_as_unavailable(monkeypatch):
    monkeypatch.setitem(corpus_cli.JOBS, "broken", "A job whose module does not exist.")
    monkeypatch.setitem(__import__("corpus.spec").spec.JOB_KINDS, "broken",
                        ("corpus.no_such_module:Spec", "corpus.no_such_module:run"))
    corpus_cli.job_command.cache_clear()
    try:
        res = _run("corpus", "--help")
        assert res.exit_code == 0 and "broken" in res.output and "[unavailable]" in res.output
        res = CliRunner().invoke(cli, ["corpus", "broken", "--inputs", "x"])
        assert res.exit_code == 1 and "corpus broken is unavailable" in res.output
        assert "No module named 'corpus.no_such_module'" in res.output
    finally:
        corpus_cli.job_command.cache_clear()


def test_ingest_end_to_end_with_flags_and_spec_file(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"uid": "a1", "body": "Alpha body text.", "kind": "code"}\n'
                   '{"uid": "a2", "body": "Beta body text."}\n'
                   '{"uid": "a3", "body": ""}\n')
    out = tmp_path / "out"
    res = _run("--quiet", "corpus", "ingest", "--inputs", str(src), "--output", str(out), "--text-field", "body",
               "--id-field", "uid", "--domain-field", "kind", "--default-domain", "web", "--on-error", "skip",
               "--executor.workers", "1")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["rows_out"] == 2 and summary["skipped"] == {"empty_text": 1}
    rows = pq.read_table(out / "in-00000.parquet").to_pylist()
    assert [(r["id"], r["domain"]) for r in rows] == [("a1", "code"), ("a2", "web")]
    # the same job from a spec file, a flag overriding one of its fields
    spec = tmp_path / "ingest.yaml"
    spec.write_text(f"inputs: [{src}]\noutput: {tmp_path / 'out2'}\ntext_field: body\nid_field: uid\n"
                    f"default_domain: math\non_error: error\n")
    res = _run("corpus", "ingest", "--spec", str(spec), "--on-error", "skip")
    assert res.exit_code == 0, res.output
    assert {r["domain"] for r in pq.read_table(tmp_path / "out2" / "in-00000.parquet").to_pylist()} == {"math"}


def test_bad_input_exits_2_naming_file_and_line(tmp_path, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "ok", "domain": "web"}\n{"text": "x", "domain": "poetry"}\n')
    with pytest.raises(SystemExit) as e:
        main(["corpus", "ingest", "--inputs", str(src), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{src}:2: field 'domain' is 'poetry'" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as e:
        main(["corpus", "ingest", "--inputs", str(src), "--output", str(tmp_path / "o"), "--shard-bytes", "0"])
    assert e.value.code == 2 and "shard_bytes" in capsys.readouterr().err


def _synthetic_shard(out):
    docs = []
    for i, (task, ok) in enumerate([("rephrase", True), ("rephrase", False), ("learning_note", True),
                                    ("rephrase", True), ("translate", None)]):
        d = normalize_doc({"text": f"synthetic {i}", "domain": "knowledge", "source": "wiki", "lang": "en"}, "t",
                          synthetic=True)
        fid = None if ok is None else {"accepted": ok, "reasons": [] if ok else ["low_similarity"],
                                       "scores": {"cosine": 0.9 if ok else 0.3}}
        d.update(parent_id=f"p{i}", task=task, style="textbook", fidelity=fid, attempts=1)
        docs.append(d)
    write_index(out, [write_table(out / "synth-00000.parquet", table_from_docs(docs, synthetic=True))])


def test_stats_text_and_json(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "héllo", "domain": "web", "lang": "fr"}\n{"text": "", "domain": "web"}\n'
                   '{"text": "print(1)", "domain": "code", "source": "gh"}\n')
    _run("corpus", "ingest", "--inputs", str(src), "--output", str(tmp_path / "raw"), "--on-error", "skip")
    res = _run("corpus", "stats", str(tmp_path / "raw"), "--json")
    s = json.loads(res.stdout)
    assert s["docs"] == 2 and s["chars"] == 13 and s["by_domain"]["code"] == {"docs": 1, "chars": 8}
    assert s["by_lang"]["fr"]["docs"] == 1 and s["ingest"]["skipped"] == {"empty_text": 1}
    assert "fidelity" not in s
    text = _run("corpus", "stats", str(tmp_path / "raw")).output
    assert "docs 2" in text and "by domain:" in text and "skipped: empty_text 1" in text
    (tmp_path / "syn").mkdir()
    _synthetic_shard(tmp_path / "syn")
    s = json.loads(_run("corpus", "stats", str(tmp_path / "syn"), "--json").stdout)
    fid = s["fidelity"]
    assert (fid["accepted"], fid["rejected"], fid["unverified"]) == (3, 1, 1) and fid["acceptance_rate"] == 0.75
    assert fid["by_task"]["rephrase"] == {"accepted": 2, "rejected": 1, "unverified": 0}
    assert fid["reject_reasons"] == {"low_similarity": 1} and s["by_task"]["rephrase"]["docs"] == 3
    assert "acceptance 75.0%" in _run("corpus", "stats", str(tmp_path / "syn")).output


def test_stats_refuses_non_document_parquet(tmp_path, capsys):
    import pyarrow as pa
    pq.write_table(pa.table({"x": [1]}), tmp_path / "t.parquet")
    with pytest.raises(SystemExit) as e:
        main(["corpus", "stats", str(tmp_path / "t.parquet")])
    assert e.value.code == 2 and "t.parquet: not a document shard" in capsys.readouterr().err


def test_demo_runs_the_pipeline_on_the_samples(tmp_path):
    res = _run("--quiet", "corpus", "demo", "--output", str(tmp_path / "demo"))
    assert res.exit_code == 0, res.output
    assert "ingest  41 docs" in res.output
    # the samples plant one exact and three near duplicates
    assert "dedup   41 -> 37 docs: 1 exact and 3 near duplicates removed" in res.output
    manifest = json.loads((tmp_path / "demo" / "mixture.json").read_text())
    assert manifest["allotted_tokens"] == manifest["budget_tokens"] == 16000
    assert [s["name"] for s in manifest["sources"]] == ["knowledge", "math", "code", "web"]
    assert not any("also hold domain" in w for w in manifest["warnings"])  # parts map to the right domains
