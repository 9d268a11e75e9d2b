"""Property-style tests of chunking: lossless cover, token bounds, protected spans never cut."""
import random
import re

import pytest

from rephrase.chunking import chunk_text, protected_spans, stitch

WORDS = "the model of a river flows north across plains and hills while people build towns near water".split()
PROTECTED = ["3.14159", "1,000,000", "12:30", "6.02e23", "$x^2 + y^2 = z^2$", "$$\\int_0^1 f(x)\\, dx = 1$$",
             "\\[a + b = c\\]", "\\(\\alpha \\cdot \\beta\\)", "https://example.org/path/to/page.html?q=1&r=2",
             "\\begin{align} a &= b \\\\ c &= d \\end{align}"]
CODE = "```python\ndef f(x):\n\n    return x * 2.5\n```"
INDENTED = "    for i in range(10):\n        print(i)"


def words_count(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def tok_count():
    from tokenizers import Tokenizer

    from corpus.embedded import embedded_tokenizer_path
    tok = Tokenizer.from_file(str(embedded_tokenizer_path()))
    return lambda t: len(tok.encode(t, add_special_tokens=False).ids)


def random_doc(rng: random.Random) -> tuple[str, list[str]]:
    """A document of paragraphs of sentences with protected items sprinkled in; returns (text, items)."""
    items, paras = [], []
    for _ in range(rng.randint(1, 6)):
        sents = []
        for _ in range(rng.randint(1, 6)):
            ws = [rng.choice(WORDS) for _ in range(rng.randint(3, 18))]
            if rng.random() < 0.6:
                item = rng.choice(PROTECTED)
                ws.insert(rng.randint(0, len(ws)), item)
                items.append(item)
            sents.append(" ".join(ws).capitalize() + rng.choice([".", "!", "?", "."]))
        para = " ".join(sents)
        if rng.random() < 0.2:
            para, block = para + "\n\n" + (CODE if rng.random() < 0.5 else INDENTED), None
            items.append(CODE if CODE in para else INDENTED)
        paras.append(para)
    return "\n\n".join(paras), items


def check_properties(text: str, items: list[str], count, target: int, max_tokens: int) -> None:
    chunks = chunk_text(text, count, target, max_tokens)
    assert "".join(text[c.start:c.end] for c in chunks) == text, "chunks must cover the text exactly"
    assert all(c.text.strip() for c in chunks), "no empty chunks"
    for c in chunks:
        assert count(c.text) <= max_tokens, (c.text, count(c.text))
    cuts = [c.start for c in chunks[1:]]
    for s, e in protected_spans(text):
        if count(text[s:e]) <= max_tokens:
            assert not any(s < cut < e for cut in cuts), f"cut inside protected {text[s:e]!r}"
    for item in set(items):
        if count(item) <= max_tokens:    # every protected item survives whole in some chunk
            assert sum(c.text.count(item) for c in chunks) == text.count(item), item


@pytest.mark.parametrize("seed", range(60))
def test_properties_with_word_counts(seed):
    rng = random.Random(seed)
    text, items = random_doc(rng)
    target = rng.randint(4, 40)
    check_properties(text, items, words_count, target, target + rng.randint(0, 30))


@pytest.mark.parametrize("seed", range(15))
def test_properties_with_the_engine_tokenizer(seed, tok_count):
    rng = random.Random(1000 + seed)
    text, items = random_doc(rng)
    target = rng.randint(24, 120)
    check_properties(text, items, tok_count, target, int(target * 1.5))


def test_paragraphs_are_preferred_and_stitch_keeps_structure():
    text = "First paragraph here.\n\nSecond paragraph is here.\n\nThird one."
    chunks = chunk_text(text, words_count, 4, 8)
    assert [c.text for c in chunks] == ["First paragraph here.", "Second paragraph is here.", "Third one."]
    assert stitch([c.text for c in chunks], chunks) == text


def test_sentence_split_respects_abbreviations_and_decimals():
    text = "Dr. Smith measured 3.5 kg. The value was 2.75 m. Then e.g. this continues here."
    chunks = chunk_text(text, words_count, 5, 7)
    assert [c.text for c in chunks] == ["Dr. Smith measured 3.5 kg.", "The value was 2.75 m.",
                                        "Then e.g. this continues here."]


def test_paragraph_without_boundaries_is_split_at_whitespace():
    text = " ".join(f"w{i}" for i in range(50))          # one "sentence", no punctuation
    chunks = chunk_text(text, words_count, 10, 12)
    assert all(words_count(c.text) <= 12 for c in chunks) and len(chunks) >= 5
    assert " ".join(c.text for c in chunks) == text


def test_hard_split_as_last_resort_and_oversize_protected_span():
    blob = "x" * 400                                         # no whitespace at all
    chunks = chunk_text(blob, len, 50, 100)                  # count = characters
    assert "".join(c.text for c in chunks) == blob and all(len(c.text) <= 100 for c in chunks)
    # A URL longer than max must still be cut (max protects the context window), but only there.
    url = "https://example.org/" + "a" * 150
    text = f"See {url} now. Short tail sentence here."
    chunks = chunk_text(text, len, 60, 100)
    assert all(len(c.text) <= 100 for c in chunks)
    assert "".join(text[c.start:c.end] for c in chunks) == text


def test_protected_spans_found():
    text = "Cost 1,000 at 3.14 see https://a.org/x. $a+b$ and\n```\ncode\n```"
    found = [text[s:e] for s, e in protected_spans(text)]
    assert found == ["1,000", "3.14", "https://a.org/x", "$a+b$", "```\ncode\n```"]


def test_price_dollars_are_not_math():
    text = "It cost $5 and later $10 in 2020."
    assert [text[s:e] for s, e in protected_spans(text)] == []


def test_leading_blank_lines_never_make_an_empty_chunk():
    chunks = chunk_text("\n\n" + "word " * 30, lambda t: len(t.split()), 10, 40)
    assert chunks and all(c.text.strip() for c in chunks)


def test_bad_bounds_and_empty_text():
    with pytest.raises(ValueError, match="target_tokens"):
        chunk_text("abc", words_count, 10, 5)
    assert chunk_text("  \n\n ", words_count, 10) == []
    assert re.fullmatch(r"\S+", chunk_text("one", words_count, 10)[0].text)
