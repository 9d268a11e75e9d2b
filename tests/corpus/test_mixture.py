"""corpus.mixture over real packed shards: allotment math, caps and shortfall, provenance, determinism, the
Megatron blend, and every bad-input error."""
import json
import math

import pytest
import yaml

from corpus.mixture import MixSpec, allot, run_mix
from corpus.pack import PackSpec, run_pack
from corpus.schema import normalize_doc, table_from_docs
from corpus.shards import write_table
from corpus.spec import SpecError


def _raw(prefix, n, domain):
    return [normalize_doc({"id": f"{prefix}{i}", "text": f"{prefix} document {i}. " + "facts " * (i % 7 + 3),
                           "domain": domain, "source": prefix}, "t") for i in range(n)]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """Three pack dirs: raw wiki (2 shards), its rephrasings (3 per parent for 5 parents), raw web."""
    root = tmp_path_factory.mktemp("mix")
    wiki = _raw("wiki", 10, "knowledge")
    write_table(root / "docs/wiki/wiki-00000.parquet", table_from_docs(wiki[:5]))
    write_table(root / "docs/wiki/wiki-00001.parquet", table_from_docs(wiki[5:]))
    syn = [normalize_doc({"text": f"Style {j}: {d['text']}", "domain": "knowledge", "source": "wiki",
                          "parent_id": d["id"], "task": "rephrase", "style": f"s{j}"}, "t", synthetic=True)
           for d in wiki[:5] for j in range(3)]
    write_table(root / "docs/syn/syn-00000.parquet", table_from_docs(syn, synthetic=True))
    write_table(root / "docs/web/web-00000.parquet", table_from_docs(_raw("web", 8, "web")))
    for name in ("wiki", "syn", "web"):
        run_pack(PackSpec(inputs=[str(root / "docs" / name)], output=str(root / "packed" / name)))
    avail = {n: json.loads((root / "packed" / n / ".k2forge/index.json").read_text())["total_tokens"]
             for n in ("wiki", "syn", "web")}
    return root / "packed", avail


def _mix(packed_dir, tmp_path, mixture, **kw):
    mixture = {"eval_fraction": 0.0, **mixture}  # allotment maths over whole shards; the eval split has its test
    path = tmp_path / "mix.yaml"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(mixture))
    return run_mix(MixSpec(mixture=str(path), output=str(tmp_path / "out" / "mix.json"), packed=[str(packed_dir)],
                           **kw))


def _manifest(tmp_path):
    return json.loads((tmp_path / "out" / "mix.json").read_text())


def _sources(**over):
    base = {"wiki": {"name": "wiki", "paths": ["wiki"], "domain": "knowledge", "weight": 0.3},
            "syn": {"name": "syn", "paths": ["syn/syn-*"], "domain": "knowledge", "weight": 0.3},
            "web": {"name": "web", "paths": ["web/web-00000.bin"], "domain": "web", "weight": 0.4}}
    for k, v in over.items():
        base[k] = {**base[k], **v}
    return list(base.values())


def test_weights_allotment_epochs_and_blend(packed, tmp_path):
    pdir, avail = packed
    res = _mix(pdir, tmp_path, {"total_tokens": 1000, "seq_len": 100, "seed": 1, "sources": _sources()})
    m = _manifest(tmp_path)
    by = {s["name"]: s for s in m["sources"]}
    assert {n: s["allotted_tokens"] for n, s in by.items()} == {"wiki": 300, "syn": 300, "web": 400}
    assert m["allotted_tokens"] == 1000 and m["shortfall_tokens"] == 0 and m["num_samples"] == 10
    for n, s in by.items():
        assert s["available_tokens"] == avail[n]
        assert s["epochs"] == pytest.approx(s["allotted_tokens"] / avail[n], abs=1e-6)
        assert s["fraction"] == pytest.approx(s["allotted_tokens"] / 1000)
    assert len(by["wiki"]["shards"]) == 2 and sum(sh["tokens"] for sh in by["wiki"]["shards"]) == avail["wiki"]
    assert res["warnings"] == [] and m["tokenizer"]["name"] == "SmolLM2-135M-Instruct" and m["dtype"] == "uint16"
    pairs = [line.split() for line in (tmp_path / "out" / "mix.blend.txt").read_text().splitlines()]
    weights = {p: float(w) for w, p in pairs}
    assert len(pairs) == 4 and sum(weights.values()) == pytest.approx(1.0)
    for s in m["sources"]:  # each shard's blend weight = its share of the allotted tokens
        for sh in s["shards"]:
            assert weights[sh["prefix"]] == pytest.approx(s["allotted_tokens"] * sh["tokens"] / s["available_tokens"]
                                                          / 1000)
            assert sh["prefix"].startswith(str(pdir.resolve()))
    assert (tmp_path / "out" / "mix.spec.yaml").exists()


def test_cap_redistributes_and_warns(packed, tmp_path):
    pdir, avail = packed
    budget = 4 * avail["syn"]  # syn wants 30% of it, > 1 epoch of syn
    _mix(pdir, tmp_path, {"total_tokens": budget, "sources": _sources(syn={"max_epochs": 1})})
    m = _manifest(tmp_path)
    by = {s["name"]: s for s in m["sources"]}
    assert by["syn"]["allotted_tokens"] == avail["syn"] and by["syn"]["capped"] and by["syn"]["epochs"] == 1
    rest = budget - avail["syn"]  # wiki and web share it 3:4, as their weights
    assert by["wiki"]["allotted_tokens"] == pytest.approx(rest * 3 / 7, abs=1)
    assert m["allotted_tokens"] == budget and m["shortfall_tokens"] == 0
    assert any("source 'syn'" in w and "redistributed" in w for w in m["warnings"])


def test_all_capped_gives_shortfall(packed, tmp_path):
    pdir, avail = packed
    caps = {n: {"max_epochs": 2} for n in ("wiki", "syn", "web")}
    _mix(pdir, tmp_path, {"total_tokens": 100 * sum(avail.values()), "sources": _sources(**caps)})
    m = _manifest(tmp_path)
    assert [s["allotted_tokens"] for s in m["sources"]] == [2 * avail[n] for n in ("wiki", "syn", "web")]
    assert m["shortfall_tokens"] == 100 * sum(avail.values()) - 2 * sum(avail.values())
    assert any("shortfall of" in w for w in m["warnings"])


def test_report_policy_keeps_targets(packed, tmp_path):
    pdir, avail = packed
    budget = 4 * avail["syn"]
    _mix(pdir, tmp_path, {"total_tokens": budget, "shortfall": "report",
                          "sources": _sources(syn={"max_epochs": 1})})
    m = _manifest(tmp_path)
    by = {s["name"]: s for s in m["sources"]}
    assert by["web"]["allotted_tokens"] == round(0.4 * budget)
    assert m["shortfall_tokens"] == round(0.3 * budget) - avail["syn"]
    assert any("reported as shortfall" in w for w in m["warnings"])


def test_token_targets_and_provenance(packed, tmp_path):
    pdir, avail = packed
    src = [{"name": "wiki", "paths": ["wiki"], "domain": "knowledge", "tokens": 10 * avail["wiki"]},
           {"name": "syn", "paths": ["syn"], "domain": "knowledge", "tokens": avail["syn"], "max_epochs": 1}]
    _mix(pdir, tmp_path, {"sources": src})
    m = _manifest(tmp_path)
    wiki, syn = m["sources"]
    assert m["budget_tokens"] == 10 * avail["wiki"] + avail["syn"] and wiki["epochs"] == 10
    assert wiki["provenance"]["summary"] == "raw x 10 epochs" and wiki["provenance"]["kind"] == "raw"
    p = syn["provenance"]
    assert p["summary"] == "3 rephrasings x 1 epoch (3 exposures per parent)"
    assert p["parents"] == 5 and p["synthetic_docs"] == 15 and p["parents_in_sources"] == {"wiki": 5}
    assert p["tokens_by_task"] == {"rephrase": avail["syn"]}


def test_deterministic_for_a_seed(packed, tmp_path):
    pdir, _ = packed
    mix = {"total_tokens": 777, "seed": 5, "sources": _sources()}
    _mix(pdir, tmp_path, mix)
    first = (tmp_path / "out" / "mix.json").read_bytes()
    _mix(pdir, tmp_path, mix)
    assert (tmp_path / "out" / "mix.json").read_bytes() == first
    orders = set()
    for seed in range(8):
        _mix(pdir, tmp_path, {**mix, "seed": seed})
        orders.add(tuple(_manifest(tmp_path)["sources"][0]["shard_order"]))
    assert orders == {(0, 1), (1, 0)}


def test_allot_properties():
    assert allot([10.5, 10.5, 0], [math.inf] * 3, True) == [11, 10, 0]
    assert allot([50, 30, 20], [10, math.inf, 15], True) == [10, 75, 15]
    assert allot([50, 30, 20], [10, math.inf, 15], False) == [10, 30, 15]
    assert allot([50, 50], [5, 7], True) == [5, 7]


def _err(pdir, tmp_path, mixture, match, exc=(SpecError, ValueError, FileNotFoundError), **kw):
    with pytest.raises(exc, match=match):
        _mix(pdir, tmp_path, mixture, **kw)
    assert not (tmp_path / "out" / "mix.json").exists()


def test_bad_mixtures(packed, tmp_path):
    pdir, _ = packed
    _err(pdir, tmp_path, {"total_tokens": 10, "sources": _sources(web={"weight": 0.5})},
         r"sources\[\*\]\.weight: weights sum to 1\.1")
    _err(pdir, tmp_path, {"total_tokens": 10, "sources": _sources(web={"domain": "poetry"})},
         r"sources\.2\.domain.*unknown domain 'poetry'")
    _err(pdir, tmp_path, {"total_tokens": 10, "sources": _sources(web={"paths": ["nothing-*"]})},
         r"sources\[2\] 'web': paths \['nothing-\*'\] match no packed token shards")
    _err(pdir, tmp_path, {"total_tokens": 10, "sources": _sources(web={"tokens": 5})}, "exactly one of")
    _err(pdir, tmp_path, {"total_tokens": 10, "sources": _sources(web={"weight": None, "tokens": 5})},
         "'weight' on every source or 'tokens'")
    _err(pdir, tmp_path, {"sources": _sources()}, "total_tokens: required")
    _err(pdir, tmp_path, {"total_tokens": 10, "sources": [{"name": "a", "paths": ["web"], "domain": "web",
                                                           "tokens": 5}]}, "total_tokens: 10 differs")
    _err(pdir, tmp_path, {"total_tokens": 10, "sources": _sources(syn={"name": "wiki"})}, "duplicate name")
    _err(pdir, tmp_path, {"total_tokens": 10, "sources": _sources(), "sedd": 1}, "sedd")
    _err(pdir, tmp_path, {"total_tokens": 10, "sources": _sources(syn={"paths": ["wiki/wiki-00000"]})},
         "in both source 'wiki' and source 'syn'")
    _err(pdir, tmp_path, {"total_tokens": 10, "tokenizer": "gpt2", "sources": _sources()},
         "mixture asks for 'gpt2'")
    with pytest.raises(SpecError, match="mixture file not found"):
        run_mix(MixSpec(mixture=str(tmp_path / "none.yaml"), output=str(tmp_path / "o.json")))
    (tmp_path / "bad.yaml").write_text("sources: [unclosed")
    with pytest.raises(SpecError, match="bad.yaml: not valid YAML"):
        run_mix(MixSpec(mixture=str(tmp_path / "bad.yaml"), output=str(tmp_path / "o.json")))


def test_bad_shards(packed, tmp_path):
    import shutil
    pdir, _ = packed
    copy = tmp_path / "copy"
    shutil.copytree(pdir, copy)
    mix = {"total_tokens": 10, "sources": _sources()}
    (copy / "web" / ".k2forge/index.json").unlink()
    _err(copy, tmp_path, mix, r"web: no \.k2forge/index\.json; run `corpus pack`")
    shutil.copytree(pdir / "web", copy / "web", dirs_exist_ok=True)
    shutil.copy(copy / "web" / "web-00000.bin", copy / "web" / "stale.bin")
    shutil.copy(copy / "web" / "web-00000.idx", copy / "web" / "stale.idx")
    _err(copy, tmp_path, {**mix, "sources": _sources(web={"paths": ["web/stale"]})}, "stale: not listed in")
    b = copy / "wiki" / "wiki-00001.bin"
    data = bytearray(b.read_bytes())
    data[0] ^= 1  # same size, different content: only the checksum catches it
    b.write_bytes(bytes(data))
    _mix(copy, tmp_path, mix)
    _err(copy, tmp_path / "v", mix, r"wiki-00001\.bin: sha256 differs", verify_checksums=True)
    b.write_bytes(bytes(data[:-2]))
    _err(copy, tmp_path / "w", mix, r"wiki-00001\.bin: \d+ bytes, pack index says")


def test_domain_mismatch_warns_and_cli(packed, tmp_path):
    from click.testing import CliRunner

    from corpus.clispec import spec_command
    pdir, _ = packed
    (tmp_path / "mix.yaml").write_text(yaml.safe_dump(
        {"total_tokens": 50, "sources": _sources(web={"domain": "code"})}))
    cmd = spec_command("mix", MixSpec, run_mix, "mix")
    r = CliRunner().invoke(cmd, ["--mixture", str(tmp_path / "mix.yaml"), "--output", str(tmp_path / "m.json"),
                                 "--packed", str(pdir)])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["allotted_tokens"] == 50
    assert any("declared 'code'" in w and "web" in w for w in m["warnings"])


def test_inline_mixture(packed, tmp_path):
    from corpus.spec import parse_spec
    pdir, avail = packed
    spec = parse_spec(MixSpec, {"mixture": {"total_tokens": 90, "sources": _sources()},
                                "output": str(tmp_path / "m.json"), "packed": [str(pdir)]}, "api")
    assert run_mix(spec)["allotted_tokens"] == 90
    with pytest.raises(SpecError, match=r"inline mixture: invalid spec\n\s*sources\.0\.domain: .*'poetry'"):
        parse_spec(MixSpec, {"mixture": {"total_tokens": 90, "sources": _sources(wiki={"domain": "poetry"})},
                             "output": "m.json"}, "api")


def test_source_without_tokens(packed, tmp_path):
    pdir, avail = packed
    write_table(tmp_path / "docs" / "none-00000.parquet", table_from_docs([]))
    run_pack(PackSpec(inputs=[str(tmp_path / "docs")], output=str(tmp_path / "none")))
    src = _sources() + [{"name": "none", "paths": [str(tmp_path / "none")], "domain": "web", "weight": 0.2}]
    src[2]["weight"] = 0.2
    _mix(pdir, tmp_path, {"total_tokens": 100, "sources": src})
    m = _manifest(tmp_path)
    # the empty source's 20 tokens spread 3:3:2 over the others; the tie 37.5/37.5 goes to the first source
    assert [s["allotted_tokens"] for s in m["sources"]] == [38, 37, 25, 0] and m["shortfall_tokens"] == 0
    assert any("'none': its shards hold no tokens" in w for w in m["warnings"])
    assert str(tmp_path / "none") not in (tmp_path / "out" / "mix.blend.txt").read_text()


def test_eval_split_is_held_out_of_the_allotment(packed, tmp_path):
    pdir, avail = packed
    _mix(pdir, tmp_path, {"total_tokens": 1000, "seq_len": 100, "eval_fraction": 0.2, "sources": _sources()})
    m = _manifest(tmp_path)
    assert m["eval_fraction"] == 0.2
    from corpus.indexed import IndexedDataset
    blend = {p: float(w) for w, p in (ln.split() for ln in (tmp_path / "out" / "mix.blend.txt").read_text()
                                      .splitlines())}
    for s in m["sources"]:
        for sh in s["shards"]:
            lengths = IndexedDataset(sh["prefix"]).sequence_lengths
            assert sh["eval_docs"] == max(1, round(0.2 * len(lengths)))  # the shard's tail documents
            assert sh["eval_tokens"] == int(lengths[len(lengths) - sh["eval_docs"]:].sum())
            assert sh["train_tokens"] + sh["eval_tokens"] == sh["tokens"]
            assert blend[sh["prefix"]] == pytest.approx(s["allotted_tokens"] * sh["train_tokens"]
                                                        / s["available_tokens"] / 1000)
        # available = training tokens only, so epochs count passes over what the trainer really reads
        assert s["available_tokens"] == avail[s["name"]] - s["eval_tokens"] > 0
        assert s["epochs"] == pytest.approx(s["allotted_tokens"] / s["available_tokens"], abs=1e-6)
        assert s["eval_docs"] == sum(sh["eval_docs"] for sh in s["shards"])
