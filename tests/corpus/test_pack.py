"""corpus.pack and corpus.tokenizer with the real embedded SmolLM2 tokenizer: tokens, metadata, index, reruns,
other tokenizers (int32 path), and bad input."""
import json

import numpy as np
import pytest
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers

from corpus.embedded import embedded_tokenizer_path
from corpus.events import Progress
from corpus.indexed import IndexedDataset
from corpus.pack import PackSpec, flatten, run_pack
from corpus.schema import SchemaError, normalize_doc, table_from_docs
from corpus.shards import file_sha256, write_table
from corpus.spec import SpecError, load_spec
from corpus.tokenizer import load_tokenizer

TEXTS = ["Hello world.", "Ünïcödé — 数学 and emoji 🚀 too", "x " * 300, "def f(x):\n    return x ** 2\n",
         "  leading and trailing spaces  ", "A"]


def _raw_docs(n, domain="web"):
    return [normalize_doc({"text": f"{TEXTS[i % len(TEXTS)]} #{i}", "domain": domain,
                           "source": f"src{i % 2}"}, "t") for i in range(n)]


def _synth_docs(n_parents, k):
    return [normalize_doc({"text": f"Rewrite {j} of parent {p}: {TEXTS[j % len(TEXTS)]}", "domain": "knowledge",
                           "source": "wiki", "parent_id": f"p{p}", "task": "rephrase", "style": f"s{j}"},
                          "t", synthetic=True) for p in range(n_parents) for j in range(k)]


@pytest.fixture
def shards(tmp_path):
    d = tmp_path / "docs"
    raw, syn = _raw_docs(23), _synth_docs(4, 3)
    write_table(d / "raw-00000.parquet", table_from_docs(raw))
    write_table(d / "syn-00000.parquet", table_from_docs(syn, synthetic=True))
    return d, raw, syn


def _reference_ids(texts):
    tok = HFTokenizer.from_file(str(embedded_tokenizer_path()))
    eos = tok.token_to_id("<|endoftext|>")
    return [tok.encode(t, add_special_tokens=False).ids + [eos] for t in texts]


def test_embedded_tokenizer_facts():
    tok = load_tokenizer()
    assert tok.vocab_size == 49152 and tok.eos_token == "<|endoftext|>" and tok.eos_id == 0
    assert tok.name == "SmolLM2-135M-Instruct" and len(tok.sha256) == 64
    assert load_tokenizer(embedded_tokenizer_path().parent).sha256 == tok.sha256  # model dir works too
    assert load_tokenizer(None, eos="<|im_end|>").eos_id == 2
    assert tok.encode_batch(TEXTS) == [tok.encode(t) for t in TEXTS]


def test_tokens_equal_encode_per_doc_with_eos(shards, tmp_out):
    d, raw, syn = shards
    res = run_pack(PackSpec(inputs=[str(d)], output=str(tmp_out), batch_size=5))
    for stem, docs in (("raw-00000", raw), ("syn-00000", syn)):
        ds = IndexedDataset(tmp_out / stem)
        assert ds.dtype == np.uint16 and len(ds) == len(docs)
        assert [ds[i].tolist() for i in range(len(ds))] == _reference_ids([x["text"] for x in docs])
        # the .bin is the plain concatenation: EOS separates documents
        assert np.asarray(ds.tokens).tolist() == sum(_reference_ids([x["text"] for x in docs]), [])
    ref_total = sum(map(len, _reference_ids([x["text"] for x in raw + syn])))
    assert res["total_tokens"] == ref_total and res["total_docs"] == len(raw) + len(syn)
    assert all(p.startswith(str(tmp_out)) for p in res["outputs"])


def test_meta_and_index(shards, tmp_out):
    d, raw, syn = shards
    run_pack(PackSpec(inputs=[str(d / "*.parquet")], output=str(tmp_out)))
    lens = {x["id"]: len(ids) for x, ids in zip(raw + syn, _reference_ids([x["text"] for x in raw + syn]))}
    meta = json.loads((tmp_out / "raw-00000.meta.json").read_text())
    assert meta["doc_ids"] == [x["id"] for x in raw] and meta["eos_tokens"] == len(raw)
    assert meta["tokens_by"]["source"] == {s: sum(lens[x["id"]] for x in raw if x["source"] == s)
                                           for s in ("src0", "src1")}
    assert meta["tokens_by"]["task"] == {"raw": meta["tokens"]} and meta["synthetic"]["docs"] == 0
    smeta = json.loads((tmp_out / "syn-00000.meta.json").read_text())
    assert smeta["parents"] == {f"p{p}": 3 for p in range(4)}
    assert smeta["docs_by"]["task"] == {"rephrase": 12} and smeta["raw"] == {"docs": 0, "tokens": 0}
    assert smeta["synthetic"]["tokens"] == sum(lens[x["id"]] for x in syn)
    index = json.loads((tmp_out / ".k2forge/index.json").read_text())
    assert index["tokenizer"]["sha256"] == load_tokenizer().sha256 and index["dtype"] == "uint16"
    assert index["tokens_by_domain"] == {"knowledge": smeta["tokens"], "web": meta["tokens"]}
    for sh in index["shards"]:
        assert sh["bin_sha256"] == file_sha256(tmp_out / f"{sh['prefix']}.bin")
        assert sh["idx_sha256"] == file_sha256(tmp_out / f"{sh['prefix']}.idx")
    assert (tmp_out / ".k2forge/spec.yaml").exists()
    assert load_spec(PackSpec, None, {"inputs": [str(d)], "output": str(tmp_out)}).append_eos is True


def test_rerun_skips_and_changed_input_redoes(shards, tmp_out):
    d, raw, _ = shards
    spec = PackSpec(inputs=[str(d)], output=str(tmp_out))
    run_pack(spec)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_out.glob("*.bin")}
    events = []
    run_pack(spec, on_event=events.append)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_out.glob("*.bin")} == before
    assert events[-1] == Progress(2, 2)
    write_table(d / "raw-00000.parquet", table_from_docs(raw[:5]))  # upstream rewrote this shard
    res = run_pack(spec)
    assert len(IndexedDataset(tmp_out / "raw-00000")) == 5 and res["total_docs"] == 5 + 12
    assert (tmp_out / "syn-00000.bin").stat().st_mtime_ns == before["syn-00000.bin"]
    (tmp_out / "syn-00000.idx").unlink()  # an output lost after its unit finished is redone, not trusted
    run_pack(spec)
    assert len(IndexedDataset(tmp_out / "syn-00000")) == 12


def test_empty_shard(tmp_path, tmp_out):
    write_table(tmp_path / "in" / "e-00000.parquet", table_from_docs([]))
    res = run_pack(PackSpec(inputs=[str(tmp_path / "in")], output=str(tmp_out)))
    assert res["total_tokens"] == 0 and len(IndexedDataset(tmp_out / "e-00000")) == 0
    assert json.loads((tmp_out / "e-00000.meta.json").read_text())["tokens_by"]["domain"] == {}


def test_no_eos_and_stem_collisions(tmp_path, tmp_out):
    docs = _raw_docs(4)
    write_table(tmp_path / "a" / "part-00000.parquet", table_from_docs(docs[:2]))
    write_table(tmp_path / "b" / "part-00000.parquet", table_from_docs(docs[2:]))
    run_pack(PackSpec(inputs=[str(tmp_path / "a"), str(tmp_path / "b")], output=str(tmp_out), append_eos=False))
    ds = IndexedDataset(tmp_out / "b__part-00000")
    assert [ds[i].tolist() for i in range(2)] == [r[:-1] for r in _reference_ids([x["text"] for x in docs[2:]])]
    assert (tmp_out / "a__part-00000.idx").exists()


def _big_vocab_tokenizer(path):
    vocab = {f"w{i}": i for i in range(70000)} | {"[UNK]": 70000, "</s>": 70001}
    tok = HFTokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def test_large_vocab_packs_int32(tmp_path, tmp_out):
    tj = _big_vocab_tokenizer(tmp_path / "big.json")
    tok = load_tokenizer(tj)
    assert tok.eos_token == "</s>" and tok.vocab_size == 70002 and tok.name == "big"
    docs = [normalize_doc({"text": "w1 w69999 w65535 nope", "domain": "code"}, "t")]
    write_table(tmp_path / "in" / "c-00000.parquet", table_from_docs(docs))
    run_pack(PackSpec(inputs=[str(tmp_path / "in")], output=str(tmp_out), tokenizer=str(tj)))
    ds = IndexedDataset(tmp_out / "c-00000")
    assert ds.dtype == np.int32 and ds[0].tolist() == [1, 69999, 65535, 70000, 70001]


def test_eos_from_tokenizer_config_or_error(tmp_path):
    tok = HFTokenizer(models.WordLevel({"a": 0, "<my_eos>": 1, "[UNK]": 2}, unk_token="[UNK]"))
    (tmp_path / "m").mkdir()
    tok.save(str(tmp_path / "m" / "tokenizer.json"))
    with pytest.raises(ValueError, match="cannot tell which token ends a document; pass eos_token"):
        load_tokenizer(tmp_path / "m")
    (tmp_path / "m" / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": "<my_eos>"}}))
    t = load_tokenizer(tmp_path / "m")
    assert (t.eos_token, t.eos_id, t.name) == ("<my_eos>", 1, "m")
    with pytest.raises(FileNotFoundError, match="directory without tokenizer.json"):
        load_tokenizer(tmp_path)


def test_flatten_matches_python():
    ids = [[5, 6], [], [7], [8, 9, 10]]
    flat, lengths = flatten(ids, 0, np.dtype(np.uint16))
    assert flat.tolist() == [5, 6, 0, 0, 7, 0, 8, 9, 10, 0] and lengths.tolist() == [3, 1, 2, 4]
    flat, lengths = flatten(ids, None, np.dtype(np.int32))
    assert flat.tolist() == [5, 6, 7, 8, 9, 10] and lengths.tolist() == [2, 0, 1, 3]


def test_bad_inputs(tmp_path, tmp_out):
    import pyarrow as pa
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        run_pack(PackSpec(inputs=[str(tmp_path / "missing_dir")], output=str(tmp_out)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="match no .parquet shards"):
        run_pack(PackSpec(inputs=[str(tmp_path / "empty")], output=str(tmp_out)))
    write_table(tmp_path / "bad" / "b-00000.parquet", pa.table({"body": ["no text column"]}))
    with pytest.raises(SchemaError, match=r"b-00000\.parquet: missing column\(s\) id, text, domain"):
        run_pack(PackSpec(inputs=[str(tmp_path / "bad")], output=str(tmp_out)))
    assert not list(tmp_out.glob("b-00000*")) and not list(tmp_out.glob(".*tmp"))
    write_table(tmp_path / "ok" / "o-00000.parquet", table_from_docs(_raw_docs(2)))
    with pytest.raises(FileNotFoundError, match="tokenizer: .*nowhere.json"):
        run_pack(PackSpec(inputs=[str(tmp_path / "ok")], output=str(tmp_out), tokenizer=str(tmp_path / "nowhere.json")))
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match="junk.json: not a valid tokenizer.json"):
        load_tokenizer(tmp_path / "junk.json")
    with pytest.raises(ValueError, match="eos token '<nope>' is not in the vocabulary"):
        run_pack(PackSpec(inputs=[str(tmp_path / "ok")], output=str(tmp_out), eos_token="<nope>"))
    with pytest.raises(SpecError, match="batch_size"):
        load_spec(PackSpec, None, {"inputs": ["x"], "output": "y", "batch_size": 0})
    with pytest.raises(SpecError, match="batchsize"):
        load_spec(PackSpec, None, {"inputs": ["x"], "output": "y", "batchsize": 3})


@pytest.mark.slow
def test_ray_executor_matches_local(shards, tmp_path):
    d, _, _ = shards
    run_pack(PackSpec(inputs=[str(d)], output=str(tmp_path / "local")))
    run_pack(PackSpec(inputs=[str(d)], output=str(tmp_path / "ray"), executor={"kind": "ray", "workers": 2}))
    for stem in ("raw-00000", "syn-00000"):
        for ext in (".bin", ".idx", ".meta.json"):
            a, b = tmp_path / "local" / f"{stem}{ext}", tmp_path / "ray" / f"{stem}{ext}"
            if ext == ".meta.json":  # records the input path, identical here
                assert json.loads(a.read_text()) == json.loads(b.read_text())
            else:
                assert a.read_bytes() == b.read_bytes()
