"""The mathnotes job end to end: real generation with the embedded SmolLM2 (weak: expect rejections, with honest
reasons), routing records, resumability, bad input, and a fault-injecting engine that states a wrong answer."""
from __future__ import annotations

import asyncio
import json

import pyarrow.parquet as pq
import pytest

from corpus.shards import file_sha256
from corpus.spec import SpecError, parse_spec
from mathnotes import prompts
from mathnotes.run import run_mathnotes
from mathnotes.spec import MathNotesSpec
from mathnotes.stage import MathNotesStage
from rephrase.engines.base import Completion, Engine
from rephrase.generate import reason_key
from tests.mathnotes.conftest import sample_docs

pytestmark = pytest.mark.timeout(600)
KNOWN_REASONS = {"truncated", "empty_completion", "length", "embedding", "math_numbers", "math_numbers_exact",
                 "math_formulas", "math_answer", "math_structure", "math_english", "prompt_too_long"}


def spec(inp, out, **kw) -> MathNotesSpec:
    return parse_spec(MathNotesSpec, {"inputs": [str(inp)], "output": str(out), **kw}, "test")


def read(path) -> list[dict]:
    return pq.read_table(path).to_pylist()


# ---------------------------------------------------------------- real generation
def test_real_generation_routes_translates_and_rejects_with_reasons(write_input, tmp_path):
    inp = write_input(["math-remainder-incomplete", "math-fr-systeme", "math-de-pythagoras", "web-cookie-page"])
    out = tmp_path / "out"
    # 12 new tokens: the 135M model cannot finish a note or a translation in that, so the run must say so
    s = spec(inp, out, max_new_tokens=12, attempts=1, detect_math=True, engine={"batch_size": 4})
    res = run_mathnotes(s)
    st = res["stats"]
    assert (st["docs_in"], st["docs_skipped_domain"], st["route_domain"], st["route_not_math"]) == (4, 1, 3, 1)
    assert (st["lang_en"], st["lang_fr"], st["lang_de"], st["translate_variants"], st["note_variants"]) == \
        (1, 1, 1, 2, 1 + st["translate_accepted"])
    routes = {r["id"]: r for r in read(res["routing"][0])}
    assert routes["math-fr-systeme"]["plan"] == "translate+note" and routes["math-de-pythagoras"]["lang"] == "de"
    assert routes["web-cookie-page"]["decision"] == "not_math" and json.loads(routes["web-cookie-page"]["detector"])
    rejects = read(res["rejects"][0])
    rows = read(res["outputs"][0])
    assert len(rejects) + len(rows) >= 3 and st["tokens_out"] > 0
    for r in rejects:
        assert r["task"] in ("translate", "learning_note") and r["reasons"] and r["engine"] == "local"
        assert {reason_key(x) for x in r["reasons"]} <= KNOWN_REASONS, r["reasons"]
    assert {r["style"] for r in rejects if r["task"] == "translate"} <= {"fr->en", "de->en"}
    assert sum(st["rejected_by_reason"].values()) >= len(rejects)

    # resumability: the same spec again skips the finished shard and rewrites nothing
    before = {p.name: file_sha256(p) for p in out.rglob("*.parquet")}
    again = run_mathnotes(s)
    assert again["stats"] == st and {p.name: file_sha256(p) for p in out.rglob("*.parquet")} == before
    with pytest.raises(SpecError, match="fields differ: format"):
        run_mathnotes(spec(inp, out, max_new_tokens=12, attempts=1, detect_math=True, engine={"batch_size": 4},
                           format="structured"))


# ---------------------------------------------------------------- fault injection
FR_TRANSLATION = """Exercise 4 - Solve the following system of equations:
$$\\begin{cases} 2x + y = 7 \\\\ x - y = 2 \\end{cases}$$

Solution. Adding the two equations eliminates $y$:
\\begin{align}
(2x + y) + (x - y) &= 7 + 2 \\\\
3x &= 9 \\\\
x &= 3.
\\end{align}
Substituting into the second equation: $3 - y = 2$, so $y = 1$.
Check: $2 \\cdot 3 + 1 = 7$ and $3 - 1 = 2$.

Final answer: $(x, y) = (3, 1)$."""

NOTE = """**Task Description**
Exercise 4: solve the system $2x + y = 7$ and $x - y = 2$ for $(x, y)$.

**Approach**
Add the equations to eliminate $y$.

**Solution Steps**
1. $(2x + y) + (x - y) = 7 + 2$, so $3x = 9$ and $x = 3$.
2. From $x - y = 2$: $3 - y = 2$, so $y = 1$.
3. Check: $2 \\cdot 3 + 1 = 7$ and $3 - 1 = 2$.

**Final Answer**
\\boxed{ANSWER}"""


class WrongAnswerEngine(Engine):
    """FAULT INJECTION: serves a faithful translation, then a structured note whose boxed answer is `answer`
    (a wrong one unless the test passes the right one). Token counts use the embedded tokenizer."""
    name, model, max_concurrency, context_length = "fault", "wrong-answer", 4, 8192

    def __init__(self, answer: str):
        from tokenizers import Tokenizer

        from corpus.embedded import embedded_tokenizer_path
        self.answer, self.tok = answer, Tokenizer.from_file(str(embedded_tokenizer_path()))

    async def generate(self, req):
        await asyncio.sleep(0)
        translate = req.messages[0]["content"] == prompts.TRANSLATE_SYSTEM
        text = FR_TRANSLATION if translate else NOTE.replace("ANSWER", self.answer)
        return Completion(text, self.prompt_tokens(req.messages), self.count_tokens(text), "stop")

    def encode(self, text):
        return self.tok.encode(text, add_special_tokens=False).ids

    def prompt_tokens(self, messages):
        return sum(len(self.encode(m["content"])) for m in messages)


class FaultStage(MathNotesStage):
    def __init__(self, spec, answer: str):
        super().__init__(spec)
        self.answer = answer

    def __getstate__(self):
        return {**super().__getstate__(), "answer": self.answer}

    def build_engine(self):
        return WrongAnswerEngine(self.answer)


MATH_ONLY = {"checks": ["length", "math_numbers", "math_formulas", "math_answer", "math_structure"]}


@pytest.mark.parametrize("answer,accepted", [("(3, 2)", False), ("(x, y) = (3, 1)", True)])
def test_wrong_boxed_answer_is_caught_after_translation(write_input, tmp_path, answer, accepted):
    s = spec(write_input(["math-fr-systeme"]), tmp_path / "out", format="structured", verifier=MATH_ONLY)
    res = run_mathnotes(s, stage=FaultStage(s, answer))
    rows, rejects = read(res["outputs"][0]), read(res["rejects"][0])
    tr = [r for r in rows if r["task"] == "translate"]
    assert len(tr) == 1 and tr[0]["lang"] == "en" and tr[0]["style"] == "fr->en"
    assert tr[0]["parent_id"] == "math-fr-systeme" and json.loads(tr[0]["meta"])["source_lang"] == "fr"
    notes = [r for r in rows if r["task"] == "learning_note"]
    if accepted:
        assert not rejects and len(notes) == 1 and notes[0]["style"] == "structured"
        meta = json.loads(notes[0]["meta"])
        assert notes[0]["parent_id"] == "math-fr-systeme" and meta["translation_id"] == tr[0]["id"]
        assert meta["source_lang"] == "fr" and notes[0]["fidelity"]["accepted"]
    else:
        assert not notes and len(rejects) == 1 and rejects[0]["task"] == "learning_note"
        # the wrong answer also drops the source's formula (x, y) = (3, 1): both reasons are named
        assert rejects[0]["reasons"] == [
            "chunk 0: math_formulas: 1 of 10 source formula(s) not found: '(x, y) = (3, 1)'",
            "chunk 0: math_answer: \\boxed{(3, 2)} differs from the source's final answer '$(x, y) = (3, 1)$'"]
        assert res["stats"]["rejected_by_reason"] == {"math_answer": 1, "math_formulas": 1}


def test_no_translate_skips_foreign_math_and_detector_routes_web_math(tmp_path):
    from corpus.schema import table_from_docs
    from corpus.shards import write_table
    docs = sample_docs()
    web_math = {**docs["math-dice-probability"], "id": "web-dice", "domain": "web"}
    write_table(tmp_path / "in" / "d-00000.parquet", table_from_docs([docs["math-fr-systeme"], web_math]))
    s = spec(tmp_path / "in", tmp_path / "out", translate=False, detect_math=True, verifier=MATH_ONLY)
    res = run_mathnotes(s, stage=FaultStage(s, "(x, y) = (3, 1)"))
    routes = {r["id"]: r for r in read(res["routing"][0])}
    assert routes["math-fr-systeme"]["plan"] == "skipped_language"
    assert routes["web-dice"]["decision"] == "detected" and routes["web-dice"]["math_score"] > 0.4
    st = res["stats"]
    assert (st["plan_skipped_language"], st["route_detected"], st["translate_variants"], st["note_variants"]) == \
        (1, 1, 0, 1)
    # the engine's note is about another problem: the dice document's numbers and answer are missing
    (rej,) = read(res["rejects"][0])
    assert rej["parent_id"] == "web-dice" and {reason_key(r) for r in rej["reasons"]} >= {"math_numbers",
                                                                                           "math_answer"}


# ---------------------------------------------------------------- bad input and specs
def test_bad_input_names_the_file_and_writes_nothing(tmp_path):
    bad = tmp_path / "in" / "broken-00000.parquet"
    bad.parent.mkdir()
    bad.write_text("not parquet")
    with pytest.raises(ValueError, match="broken-00000.parquet: not a readable parquet file"):
        run_mathnotes(spec(bad.parent, tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="nowhere"):
        run_mathnotes(spec(tmp_path / "nowhere", tmp_path / "out"))


@pytest.mark.parametrize("fields,where", [
    ({"format": "essay"}, "format"), ({"chunk_max_tokens": 8}, "chunk_max_tokens"),
    ({"verifier": {"checks": ["math_nope"]}}, "verifier.checks"), ({"top_p": 0}, "top_p"), ({"inputs": []}, "inputs"),
])
def test_spec_errors_name_the_field(fields, where):
    with pytest.raises(SpecError, match=where):
        parse_spec(MathNotesSpec, {"inputs": ["x"], "output": "y", **fields}, "job.yaml")


def test_defaults_follow_swallowmath_and_structured_adds_its_check():
    s = spec("x", "y")
    assert (s.temperature, s.top_p, s.domains, s.translate, s.note_after_translate) == (0.2, 0.7, ["math"], True, True)
    assert "math_structure" not in s.verifier.checks
    assert "math_structure" in spec("x", "y", format="structured").verifier.checks
    assert "math_english" in s.translate_verifier.checks


def test_cli_error_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "api.cli", "mathnotes", "run", "--input", str(tmp_path / "none"),
                        "--output", str(tmp_path / "o"), "--engine", "local", "--executor", "local"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("error: ") and "none" in p.stderr


def test_sample_math_set_is_what_the_brief_needs():
    docs = sample_docs()
    assert sum(d["lang"] != "en" for d in docs.values()) >= 2


@pytest.mark.slow
def test_ray_executor_writes_the_same_shards_as_local(write_input, tmp_path):
    inp = write_input(["math-fr-systeme", "math-remainder-incomplete"])
    outs = {}
    for kind in ("local", "ray"):
        s = spec(inp, tmp_path / kind, format="structured", verifier=MATH_ONLY, executor={"kind": kind})
        res = run_mathnotes(s, stage=FaultStage(s, "(x, y) = (3, 1)"))
        outs[kind] = [read(p) for p in res["outputs"] + res["rejects"] + res["routing"]]
    assert outs["ray"] == outs["local"] and outs["local"][0]
