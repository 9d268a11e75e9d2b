"""rephrase's chunker on math: no cut inside $..$, $$..$$, \\[..\\], \\(..\\) or \\begin{env}..\\end{env}, measured with
the embedded model's tokenizer at chunk sizes far below the documents' length."""
from __future__ import annotations

import re

import pytest

from rephrase.chunking import chunk_text
from tests.mathnotes.conftest import sample_docs

# Our own span finder, independent of the chunker's, so the test can disagree with it.
MATH = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|\\\(.+?\\\)|\\begin\{([^}]+)\}.*?\\end\{\1\}|(?<![\\$])\$[^$\n]+?\$", re.S)

LONG = "\n\n".join([
    "Theorem. For all $n \\ge 1$ we have the identity below, which we prove by a long computation.",
    "\\begin{align}\n" + " \\\\\n".join(f"S_{{{i}}} &= \\sum_{{k=1}}^{{{i}}} (2k-1) = {i}^2" for i in range(1, 9))
    + "\n\\end{align}",
    "Hence \\[ \\sum_{k=1}^{n} (2k - 1) = n^2 \\] and with $a = \\tfrac{1}{2}$ also \\( a^2 = \\tfrac14 \\).",
    "$$\\int_0^1 x^2 \\, dx = \\frac{1}{3}, \\qquad \\int_0^1 x^3 \\, dx = \\frac{1}{4}$$ as before.",
] * 3)


@pytest.fixture(scope="module")
def count():
    from tokenizers import Tokenizer

    from corpus.embedded import embedded_tokenizer_path
    tok = Tokenizer.from_file(str(embedded_tokenizer_path()))
    return lambda s: len(tok.encode(s, add_special_tokens=False).ids)


def _inside(text: str, pos: int) -> str | None:
    for m in MATH.finditer(text):
        if m.start() < pos < m.start() + len(m.group(0).rstrip()):
            return m.group(0)
    return None


@pytest.mark.parametrize("target", [12, 24, 48])
def test_no_cut_inside_math_in_sample_documents(count, target):
    texts = [d["text"] for d in sample_docs().values()] + [LONG]
    cuts = 0
    for text in texts:
        # max_tokens above every span: the chunker cuts a protected span only when it alone exceeds max_tokens
        chunks = chunk_text(text, count, target, 400)
        assert "".join(text[c.start:c.end] for c in chunks) == text
        for c in chunks[:-1]:
            cuts += 1
            span = _inside(text, c.end)
            assert span is None, f"cut at {c.end} inside {span[:60]!r}"
    assert cuts > 40          # the sizes really force many cuts


def test_environment_larger_than_target_stays_whole(count):
    chunks = chunk_text(LONG, count, 16, 400)
    envs = [c for c in chunks if "\\begin{align}" in c.text]
    assert len(envs) == 3 and all(c.text.count("\\end{align}") == 1 for c in envs)
    assert all(count(c.text) > 16 for c in envs)    # kept whole although beyond the target
