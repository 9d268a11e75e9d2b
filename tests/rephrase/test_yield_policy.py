"""The yield policy (on_chunk_failure) and the yield stats, on a three-chunk document whose chunk 1 fails.

A FAULT-INJECTING scripted engine (tests/rephrase/scripted_engine.py) answers each chunk with a faithful rewrite,
except the chosen chunk, which gets an unfaithful one 4x the source that the real verifier's `length` check
rejects on every attempt. The verifier enables only `length` and `near_copy`: deterministic checks that do not
depend on the verifier's heuristics being tuned elsewhere. Tokens are the scripted engine's (whitespace words).
"""
import asyncio
import json

import pyarrow.parquet as pq
import pytest

from corpus.schema import table_from_docs
from corpus.shards import write_table
from corpus.spec import SpecError, parse_spec
from rephrase.generate import GenerationSpec, Rewriter
from rephrase.prompts import RephraseTask
from rephrase.run import run_rephrase
from rephrase.spec import RephraseSpec
from rephrase.stage import RewriteStage
from rephrase.stats import format_summary
from rephrase.styles import StyleBook
from rephrase.verify import Verifier, VerifierSpec
from tests.rephrase.scripted_engine import ScriptedEngine, fail_chunks

P = ["The Nile is about 6,650 km long and flows north into the Mediterranean Sea.",
     "The Aswan High Dam on the Nile was completed in 1970.",
     "Lake Nasser formed behind the dam and covers about 5,250 square kilometres."]
R = ["Flowing north into the Mediterranean Sea, the Nile measures roughly 6,650 km.",
     "Work on the Aswan High Dam across the Nile finished in 1970.",
     "Behind the dam lies Lake Nasser, which spans roughly 5,250 square kilometres."]
NILE = {"id": "nile", "domain": "knowledge", "text": "\n\n".join(P)}
MOON = {"id": "moon", "domain": "knowledge", "text": "The Moon is 384,400 km from Earth on average."}
MOON_R = "On average, the Moon lies 384,400 km away from Earth."
REWRITES = {"nile": R, "moon": [MOON_R]}
CHECKS = {"checks": ["length", "near_copy"]}


def words(text: str) -> int:
    return len(text.split())


SOURCE = sum(map(words, P))


def rewrite(policy: str, fail, docs=(NILE,), *, bad_finish="stop", task=None, attempts=2):
    engine = ScriptedEngine(REWRITES, fail, bad_finish=bad_finish)
    task = task or RephraseTask(StyleBook.load().select(["expert_notes"], ["neutral"]))
    cfg = GenerationSpec(seed=1, attempts=attempts, chunk_target_tokens=8, chunk_max_tokens=16,
                         context_tail_tokens=8, max_new_tokens=200, on_chunk_failure=policy)
    results = asyncio.run(Rewriter(task, engine, Verifier(VerifierSpec(**CHECKS)), cfg).rewrite_all(list(docs)))
    return results, engine


def test_reject_variant_rejects_the_whole_document():
    (res,), engine = rewrite("reject_variant", fail_chunks(1))
    assert res.n_chunks == 3 and [c.source for c in res.chunks] == P[:2], "chunked by paragraph; stops at 1"
    assert res.status == "rejected" and res.failed_chunk == 1 and res.text == ""
    assert res.reasons and all(r.startswith("chunk 1: length") for r in res.reasons), res.reasons
    assert res.chunks[1].attempts == 2 and res.synthetic_tokens == 0 and res.source_tokens == SOURCE


def test_keep_prefix_keeps_the_verified_chunks_before_the_failure():
    (res,), _ = rewrite("keep_prefix", fail_chunks(1))
    assert res.status == "accepted" and res.text == R[0]
    assert (res.policy, res.prefix_chunks, res.failed_chunk) == ("keep_prefix", 1, 1)
    assert res.reasons and res.reasons[0].startswith("chunk 1: length")
    assert res.synthetic_tokens == words(R[0]) and res.spliced_tokens == 0
    # with no verified chunk before the failure there is no prefix: rejected as before
    (first,), _ = rewrite("keep_prefix", fail_chunks(0))
    assert first.status == "rejected" and first.failed_chunk == 0 and first.text == ""


def test_keep_source_chunk_splices_the_source_and_goes_on():
    (res,), engine = rewrite("keep_source_chunk", fail_chunks(1))
    assert res.status == "accepted" and res.text == "\n\n".join([R[0], P[1], R[2]])
    assert (res.policy, res.source_chunks) == ("keep_source_chunk", [1])
    (s, e), = res.source_spans
    assert res.text[s:e] == P[1]
    assert [c.spliced for c in res.chunks] == [False, True, False]
    assert res.synthetic_tokens == words(R[0]) + words(R[2]) and res.spliced_tokens == words(P[1])
    # generation went on: chunk 2 was asked for, with the spliced source in its context
    last = [q for q in engine.requests if q.request_id.startswith("nile/0/2/")]
    assert last and P[1].split()[-1] in last[0].messages[-1]["content"]
    # every chunk failing leaves only the source: no synthetic document, rejected with every chunk's reasons
    (allbad,), _ = rewrite("keep_source_chunk", fail_chunks(0, 1, 2))
    assert allbad.status == "rejected" and allbad.failed_chunk == 0 and allbad.text == ""
    assert {r.split(":")[0] for r in allbad.reasons} == {"chunk 0", "chunk 1", "chunk 2"}


@pytest.mark.parametrize("policy", ["keep_prefix", "keep_source_chunk"])
def test_engine_errors_are_not_absorbed_by_the_policy(policy):
    (res,), _ = rewrite(policy, fail_chunks(1), bad_finish="error")
    assert res.status == "rejected" and res.failed_chunk == 1 and res.text == ""
    assert all("engine_error" in r for r in res.reasons), res.reasons


def test_truncated_chunks_follow_the_policy():
    engine = ScriptedEngine(REWRITES, fail_chunks(1))
    task = RephraseTask(StyleBook.load().select(["expert_notes"], ["neutral"]))
    # max_new_tokens below the bad answer's length: chunk 1 is truncated (the others fit)
    cfg = GenerationSpec(seed=1, attempts=1, chunk_target_tokens=8, chunk_max_tokens=16, max_new_tokens=20,
                         on_chunk_failure="keep_source_chunk")

    async def go():
        return await Rewriter(task, _Truncating(engine), Verifier(VerifierSpec(**CHECKS)), cfg).rewrite_all([NILE])

    res, = asyncio.run(go())
    assert res.status == "accepted" and res.source_chunks == [1]
    assert res.reasons == ["chunk 1: truncated: the completion hit max_new_tokens=20"]


class _Truncating:
    """FAULT INJECTION: the scripted engine, reporting finish_reason "length" for answers over max_tokens."""

    def __init__(self, inner):
        self.inner, self.name, self.model = inner, inner.name, inner.model
        self.max_concurrency, self.context_length = inner.max_concurrency, inner.context_length
        self.count_tokens, self.prompt_tokens = inner.count_tokens, inner.prompt_tokens

    async def generate(self, req):
        comp = await self.inner.generate(req)
        if comp.completion_tokens > req.params.max_tokens:
            comp.finish_reason = "length"
        return comp


def test_unknown_policy_is_a_spec_error_naming_the_field(tmp_path):
    with pytest.raises(SpecError, match="on_chunk_failure"):
        parse_spec(RephraseSpec, {"inputs": ["x"], "output": "y", "on_chunk_failure": "keep_all"})
    with pytest.raises(ValueError, match="on_chunk_failure"):
        rewrite("keep_all", fail_chunks(1))


# ---------------------------------------------------------------- the run: rows, provenance, yield stats
class ScriptedStage(RewriteStage):
    """The real stage with the scripted engine: chunk 1 fails in the encyclopedia style only."""

    def build_engine(self):
        enc = StyleBook.load().styles["encyclopedia"].instruction
        return ScriptedEngine(REWRITES, fail_chunks(1, style_text=enc))


def run(tmp_path, policy: str):
    inp = tmp_path / "in"
    write_table(inp / "docs-00000.parquet", table_from_docs([NILE, MOON]))
    spec = parse_spec(RephraseSpec, {
        "inputs": [str(inp)], "output": str(tmp_path / policy), "variants": 2, "attempts": 2,
        "styles": ["expert_notes", "encyclopedia"], "perspectives": ["neutral"], "chunk_target_tokens": 8,
        "chunk_max_tokens": 16, "max_new_tokens": 200, "verifier": CHECKS, "on_chunk_failure": policy})
    res = run_rephrase(spec, stage=ScriptedStage(spec, "rephrase"))
    out = tmp_path / policy
    rows = {r["style"].split("/")[0] + ":" + r["parent_id"]: r for r in pq.read_table(out / "part-00000.parquet")
            .to_pylist()}
    rejects = pq.read_table(out / ".k2forge" / "rejects" / "part-00000.parquet").to_pylist()
    saved = json.loads((out / ".k2forge/stats.json").read_text())
    assert saved == json.loads(json.dumps(res["stats"])), "the stats JSON holds what the run returned"
    return rows, rejects, saved


FULL, MOON_T = sum(map(words, R)), words(MOON["text"])


@pytest.mark.parametrize("policy,enc_nile", [
    ("reject_variant", None), ("keep_prefix", R[0]), ("keep_source_chunk", "\n\n".join([R[0], P[1], R[2]]))])
def test_run_rows_provenance_and_yield_per_style(tmp_path, policy, enc_nile):
    rows, rejects, st = run(tmp_path, policy)
    assert rows["expert_notes:nile"]["text"] == "\n\n".join(R) and rows["expert_notes:moon"]["text"] == MOON_R
    assert rows["encyclopedia:moon"]["text"] == MOON_R       # one chunk: nothing to fail
    enc_syn = {"reject_variant": 0, "keep_prefix": words(R[0]), "keep_source_chunk": words(R[0]) + words(R[2])}
    enc_syn = enc_syn[policy] + words(MOON_R)
    full_syn = FULL + words(MOON_R)
    # yield = accepted synthetic tokens / source tokens (engine tokens; each document once for the run)
    assert (st["source_tokens"], st["synthetic_tokens"]) == (SOURCE + MOON_T, full_syn + enc_syn)
    assert st["yield"] == pytest.approx((full_syn + enc_syn) / (SOURCE + MOON_T))
    assert st["yield_by_task"] == {"rephrase": pytest.approx(st["yield"])}
    assert st["source_tokens_by_style"] == {"expert_notes": SOURCE + MOON_T, "encyclopedia": SOURCE + MOON_T}
    assert st["yield_by_style"] == {"expert_notes": pytest.approx(full_syn / (SOURCE + MOON_T)),
                                    "encyclopedia": pytest.approx(enc_syn / (SOURCE + MOON_T))}
    assert st["yield_by_style"]["encyclopedia"] < st["yield_by_style"]["expert_notes"]
    summary = format_summary(st)
    assert f"yield: {st['yield']:.2f} accepted synthetic tokens per source token" in summary
    assert f"encyclopedia {st['yield_by_style']['encyclopedia']:.2f}" in summary
    fidelity_reasons = [] if enc_nile is None else rows["encyclopedia:nile"]["fidelity"]["reasons"]
    assert rows["expert_notes:nile"]["fidelity"]["reasons"] == []
    assert "policy" not in json.loads(rows["expert_notes:nile"]["meta"])
    if policy == "reject_variant":
        assert "encyclopedia:nile" not in rows and len(rejects) == 1 and rejects[0]["chunk"] == 1
        assert st["variants_rejected"] == 1 and st["rejected_by_reason"] == {"length": 1}
        return
    assert not rejects and rows["encyclopedia:nile"]["text"] == enc_nile
    meta = json.loads(rows["encyclopedia:nile"]["meta"])
    assert meta["policy"] == policy and meta["failed_reasons"][0].startswith("chunk 1: length")
    assert rows["encyclopedia:nile"]["fidelity"]["accepted"]
    if policy == "keep_prefix":
        assert (meta["prefix_chunks"], meta["failed_chunk"]) == (1, 1)
        assert fidelity_reasons == ["keep_prefix: chunks 0-0 of 3 kept; chunk 1 failed verification"]
        assert (st["variants_prefix"], st["chunks_dropped_prefix"], st["spliced_source_tokens"]) == (1, 2, 0)
        assert "1 variant(s) kept as a prefix (2 chunk(s) dropped)" in summary
    else:
        assert meta["source_chunks"] == [1]
        (s, e), = meta["source_spans"]
        assert enc_nile[s:e] == P[1]
        assert fidelity_reasons == ["keep_source_chunk: chunk(s) 1 of 3 are source text"]
        assert (st["variants_source_spliced"], st["chunks_source_spliced"]) == (1, 1)
        assert st["spliced_source_tokens"] == words(P[1]), "spliced source is counted apart, never as synthetic"
        assert f"{words(P[1])} spliced source tokens not counted" in summary


def test_a_run_saved_before_the_option_existed_resumes_only_at_the_default(tmp_path):
    import yaml
    run(tmp_path, "reject_variant")
    saved = tmp_path / "reject_variant" / ".k2forge/spec.yaml"
    doc = yaml.safe_load(saved.read_text())
    del doc["spec"]["on_chunk_failure"]                  # as written by the code before this option
    saved.write_text(yaml.safe_dump(doc))
    run(tmp_path, "reject_variant")                      # the default changes nothing: resumes
    spec = parse_spec(RephraseSpec, {**doc["spec"], "on_chunk_failure": "keep_prefix"})
    with pytest.raises(SpecError, match="fields differ: on_chunk_failure"):
        run_rephrase(spec, stage=ScriptedStage(spec, "rephrase"))
