"""The dedup job end to end: exact and near duplicates, reports, determinism across shardings, reruns, errors."""
import json
import random

import pyarrow.parquet as pq
import pytest
import yaml

from corpus import dedup
from corpus.dedup import DedupSpec, run_dedup
from corpus.events import Log, Progress
from corpus.schema import normalize_doc, table_from_docs
from corpus.shards import read_index, read_shard, write_table
from corpus.spec import SpecError, load_spec, parse_spec

R = random.Random(5)
VOCAB = ["".join(R.choice("abcdefghijklmnopqrst") for _ in range(6)) for _ in range(5000)]


def _text(r, n=150):
    return " ".join(r.choice(VOCAB) for _ in range(n))


def _edit(r, text, n_changes):
    words = text.split()
    for i in r.sample(range(len(words)), n_changes):
        words[i] = words[i] + "q"
    return " ".join(words)


def _corpus(seed=0):
    """(docs, expected removals {id: (reason, kept id)}) with planted exact and near duplicates."""
    r = random.Random(seed)
    base = [_text(r) for _ in range(40)]
    docs = [{"text": t, "domain": "web", "id": f"base{i:02d}"} for i, t in enumerate(base)]
    groups = {0: [("exact0", base[0])], 1: [("exact1", "  " + base[1].upper().replace(" ", "\n") + " ")],
              2: [("exact2", base[2]), ("exact2b", base[2])], 3: [("near3", _edit(r, base[3], 2))],
              4: [("near4", _edit(r, base[4], 3))], 5: [("near5", _edit(r, base[5], 1) + " tail")]}
    # shares all its words but few 5-shingles with base06: not a duplicate
    docs.append({"text": _edit(r, base[6], 40), "domain": "web", "id": "far6"})
    expected = {}
    for b, extra in groups.items():
        members = [(f"base{b:02d}", base[b])] + extra
        docs.extend({"text": t, "domain": "web", "id": i} for i, t in extra)
        kept_id, kept_text = min(members, key=lambda m: (-len(m[1]), m[0]))  # the documented keep rule
        for i, t in members:
            if i != kept_id:
                same = " ".join(t.casefold().split()) == " ".join(kept_text.casefold().split())
                expected[i] = ("exact" if same else "near", kept_id)
    return [normalize_doc(d, "test") for d in docs], expected


def _write_shards(tmp_path, docs, n_shards, name="in"):
    d = tmp_path / name
    for k in range(n_shards):
        write_table(d / f"s-{k:05d}.parquet", table_from_docs(docs[k::n_shards]))
    return d


def _run(inputs, out, **kw):
    return run_dedup(DedupSpec(inputs=[str(i) for i in inputs], output=str(out), **kw))


def _kept_ids(out):
    return sorted(r["id"] for e in read_index(out)["shards"] for r in read_shard(out / e["path"]).to_pylist())


def _removed(out):
    return sorted((r["id"], r["reason"], r["kept_id"]) for r in pq.read_table(out / ".k2forge/removed.parquet").to_pylist())


def test_removes_exact_and_near_keeps_unrelated(tmp_path):
    docs, want = _corpus()
    inp = _write_shards(tmp_path, docs, 3)
    write_table(inp / "s-00003.parquet", table_from_docs([]))  # an empty shard is fine
    out = tmp_path / "out"
    res = _run([inp], out)
    assert {i: (reason, k) for i, reason, k in _removed(out)} == want
    assert {"base01", "base03"} <= set(want)  # longer copies win over the originals (keep rule)
    kept = _kept_ids(out)
    assert "far6" in kept and "base06" in kept and len(kept) == len(set(kept))
    assert res["docs_in"] == len(docs) and res["docs_out"] == len(kept) == len(docs) - len(want)
    reasons = [v[0] for v in want.values()]
    assert (res["exact_removed"], res["near_removed"]) == (reasons.count("exact"), reasons.count("near"))
    assert res["near_removed"] == 3 and res["exact_removed"] == 4
    stats = json.loads((out / ".k2forge/stats.json").read_text())
    assert stats["lsh"]["implied_threshold"] == pytest.approx((1 / 32) ** (1 / 4), abs=1e-6)
    assert stats["threshold"] == 0.7 and "0.70" in stats["lsh"]["s_curve"]
    assert [s["rows_out"] for s in stats["shards"]][-1] == 0
    assert yaml.safe_load((out / ".k2forge/spec.yaml").read_text())["kind"] == "dedup"
    clusters = pq.read_table(out / ".k2forge/clusters.parquet").to_pylist()
    assert len(clusters) == 6 and sum(c["size"] - 1 for c in clusters) == len(want)
    assert all(c["min_similarity"] >= 0.7 for c in clusters)
    assert all(str(out / p.name) in res["outputs"] for p in out.glob("part-*.parquet"))


def test_exact_only_and_char_shingles(tmp_path):
    docs, want = _corpus()
    inp = _write_shards(tmp_path, docs, 2)
    _run([inp], tmp_path / "exact", near=False)
    assert {r[0] for r in _removed(tmp_path / "exact")} == {i for i, v in want.items() if v[0] == "exact"}
    res = _run([inp], tmp_path / "char", exact=False, shingle_unit="char", shingle_size=9, num_perm=64,
               bands=16, rows=4)
    got = {r[0] for r in _removed(tmp_path / "char")}
    assert got == set(want) and res["exact_removed"] == 0  # exact copies found as near dups at J = 1


def test_deterministic_and_independent_of_sharding(tmp_path):
    docs, _ = _corpus(seed=1)
    one = _write_shards(tmp_path, docs, 1, "one")
    shuffled = list(docs)
    random.Random(9).shuffle(shuffled)
    many = _write_shards(tmp_path, shuffled, 4, "many")
    _run([one], tmp_path / "a")
    _run([one], tmp_path / "b")
    assert read_index(tmp_path / "a")["shards"] == read_index(tmp_path / "b")["shards"]  # same sha256
    assert (tmp_path / "a/.k2forge/clusters.parquet").read_bytes() == (tmp_path / "b/.k2forge/clusters.parquet").read_bytes()
    _run(sorted(many.glob("*.parquet"), reverse=True), tmp_path / "c")
    assert _kept_ids(tmp_path / "a") == _kept_ids(tmp_path / "c")
    assert _removed(tmp_path / "a") == _removed(tmp_path / "c")


class _FailingSignatureStage(dedup.SignatureStage):
    """Fault injection: any signature unit that actually runs fails."""

    def process(self, unit):
        raise AssertionError(f"unit {unit.id} should have been skipped")


def test_rerun_skips_finished_units_and_redoes_changed_ones(tmp_path, monkeypatch):
    docs, _ = _corpus()
    inp = _write_shards(tmp_path, docs, 2)
    first = _run([inp], tmp_path / "out")
    monkeypatch.setattr(dedup, "SignatureStage", _FailingSignatureStage)
    again = _run([inp], tmp_path / "out")
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in first.items() if k != "seconds"}
    with pytest.raises(AssertionError, match="should have been skipped"):
        _run([inp], tmp_path / "out", num_perm=64, bands=16, rows=4)  # new parameters: new units


def test_bad_parameters_give_clear_errors(tmp_path):
    with pytest.raises(SpecError, match=r"bands \* rows must equal num_perm: bands=16 \* rows=4 = 64, num_perm=128"):
        parse_spec(DedupSpec, {"inputs": ["x"], "output": "o", "bands": 16, "rows": 4})
    with pytest.raises(SpecError, match="at least one of exact and near"):
        parse_spec(DedupSpec, {"inputs": ["x"], "output": "o", "exact": False, "near": False})
    with pytest.raises(SpecError, match=r"threshold: Input should be less than or equal to 1"):
        parse_spec(DedupSpec, {"inputs": ["x"], "output": "o", "threshold": 1.5})
    with pytest.raises(SpecError, match="shingle_unit: Input should be 'word' or 'char'"):
        parse_spec(DedupSpec, {"inputs": ["x"], "output": "o", "shingle_unit": "line"})
    spec_file = tmp_path / "d.yaml"
    spec_file.write_text("inputs: [x]\noutput: o\nnum_perms: 64\n")
    with pytest.raises(SpecError, match=f"{spec_file}: invalid spec\n  num_perms: Extra inputs"):
        load_spec(DedupSpec, spec_file)


def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope: no such file"):
        _run([tmp_path / "nope"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no input shards"):
        _run([tmp_path / "empty"], tmp_path / "out")
    bad = tmp_path / "bad" / "x.parquet"
    bad.parent.mkdir()
    bad.write_text("not parquet")
    with pytest.raises(ValueError, match=f"{bad}: not a readable parquet file"):
        _run([bad.parent], tmp_path / "out2")
    assert not list((tmp_path / "out2").glob("part-*"))  # nothing half written
    docs, _ = _corpus()
    inp = _write_shards(tmp_path, docs, 1)
    with pytest.raises(ValueError, match="contains input shard"):
        _run([inp], inp.parent)


def test_synthetic_shards_keep_their_columns_and_events_are_reported(tmp_path):
    docs, want = _corpus()
    synth = [{**d, "parent_id": "p", "task": "rephrase", "style": "qa", "attempts": 1,
              "fidelity": {"accepted": True, "reasons": [], "scores": {"cos": 0.9}}} for d in docs]
    write_table(tmp_path / "in" / "syn-00000.parquet", table_from_docs(synth, synthetic=True))
    events = []
    run_dedup(DedupSpec(inputs=[str(tmp_path / "in")], output=str(tmp_path / "out")), on_event=events.append)
    out = read_shard(tmp_path / "out" / "part-00000.parquet")
    assert "fidelity" in out.column_names and out.num_rows == len(docs) - len(want)
    assert out.column("fidelity")[0].as_py()["scores"] == [{"name": "cos", "value": 0.9}]
    stages = [e.stage for e in events if isinstance(e, Progress) and e.unit is None]
    assert stages == ["signatures", "clusters", "write"] and isinstance(events[-1], Log)
    per_unit = [e for e in events if isinstance(e, Progress) and e.unit is not None]
    # one exact-key unit and 32 bands / 8 per unit = 4 near units
    assert [e.stage for e in per_unit] == ["dedup-signatures"] + ["dedup-bands"] * 5 + ["dedup-write"]
    assert [e.done for e in per_unit] == [1, 1, 2, 3, 4, 5, 1]
    assert all(e.total == (5 if e.stage == "dedup-bands" else 1) for e in per_unit)


def test_only_empty_shards(tmp_path):
    inp = tmp_path / "in"
    write_table(inp / "e-00000.parquet", table_from_docs([]))
    res = _run([inp], tmp_path / "out")
    assert res["docs_in"] == res["docs_out"] == 0 and read_index(tmp_path / "out")["total_rows"] == 0
    assert pq.read_table(tmp_path / "out/.k2forge/clusters.parquet").num_rows == 0


@pytest.mark.slow
def test_process_pool_and_ray_match_in_process(tmp_path):
    docs, _ = _corpus()
    inp = _write_shards(tmp_path, docs, 3)
    _run([inp], tmp_path / "local")
    for kind in ("local", "ray"):
        _run([inp], tmp_path / kind / "2", executor={"kind": kind, "workers": 2})
        assert read_index(tmp_path / "local")["shards"] == read_index(tmp_path / kind / "2")["shards"]
        assert _removed(tmp_path / "local") == _removed(tmp_path / kind / "2")


def test_spec_drives_a_click_command(tmp_path):
    """The CLI front door (built from the spec by corpus.clispec) validates the same way and runs the job."""
    from click.testing import CliRunner

    from corpus.clispec import spec_command
    cmd = spec_command("dedup", DedupSpec, run_dedup, help="dedup")
    docs, want = _corpus()
    inp = _write_shards(tmp_path, docs, 2)
    res = CliRunner().invoke(cmd, ["--inputs", str(inp), "--output", str(tmp_path / "out"), "--no-near",
                                   "--executor-workers", "1"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["exact_removed"] == sum(v[0] == "exact" for v in want.values())
    bad = CliRunner().invoke(cmd, ["--inputs", str(inp), "--output", str(tmp_path / "o"), "--bands", "3"])
    assert isinstance(bad.exception, SpecError) and "bands * rows must equal num_perm" in str(bad.exception)


def _pair_near(r, target, n_words=200):
    """A doc and a copy whose exact word-5-shingle Jaccard is the largest value <= target reachable by edits."""
    from corpus.minhash import MinHasher
    shingles = MinHasher(1).shingles
    a = [r.choice(VOCAB) for _ in range(n_words)]
    sa, b = set(shingles(" ".join(a))), list(a)
    while True:
        sb = set(shingles(" ".join(b)))
        j = len(sa & sb) / len(sa | sb)
        if j <= target:
            return " ".join(a), " ".join(b), j
        b[r.randrange(n_words)] = r.choice(VOCAB)


def test_exact_recheck_decides_pairs_near_the_threshold(tmp_path):
    r = random.Random(2)
    docs, truth = [], {}
    for n, target in enumerate((0.62, 0.66, 0.69, 0.72, 0.74, 0.78, 0.85)):
        a, b, j = _pair_near(r, target)
        docs += [{"text": a, "domain": "web", "id": f"p{n}a"}, {"text": b, "domain": "web", "id": f"p{n}b"}]
        truth[n] = j >= 0.7
    inp = _write_shards(tmp_path, [normalize_doc(d, "t") for d in docs], 2)
    res = _run([inp], tmp_path / "out")
    together = {int(i[1:-1]) for i, _, k in _removed(tmp_path / "out") if i[1:-1] == k[1:-1]}
    assert {n for n, t in truth.items() if t} == together and res["rechecked_pairs"] >= 3
    assert sum(truth.values()) == 4 and len(together) == res["near_removed"]


def test_alternating_runs_in_one_output_redo_overwritten_shards(tmp_path):
    docs, want = _corpus()
    inp = _write_shards(tmp_path, docs, 2)
    out = tmp_path / "out"
    _run([inp], out)
    _run([inp], out, near=False)  # rewrites part files with more rows kept
    _run([inp], out)              # its markers are still there, but the part files changed since
    assert {i for i, _, _ in _removed(out)} == set(want)
    assert len(_kept_ids(out)) == len(docs) - len(want)
    (out / "part-00001.parquet").unlink()
    _run([inp], out)
    assert len(_kept_ids(out)) == len(docs) - len(want)
    single = _write_shards(tmp_path, docs[:10], 1, "single")
    _run([single], out)  # fewer input shards: the extra part file from before is removed
    assert not (out / "part-00001.parquet").exists() and len(_kept_ids(out)) == 10
