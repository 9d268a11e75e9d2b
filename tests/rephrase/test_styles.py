"""Styles as data, reproducible variant choice, prompts and their provenance hash."""
import pytest

from rephrase.prompts import TASKS, RephraseTask, clean_completion
from rephrase.styles import StyleBook, StylesError, choose_variants


@pytest.fixture(scope="module")
def book():
    return StyleBook.load()


def test_package_styles(book):
    assert len(book.styles) >= 10 and len(book.perspectives) >= 4
    for name in ("encyclopedia", "textbook", "lecture", "qa", "dialogue", "child", "news_brief",
                 "expert_notes", "study_guide", "podcast"):
        assert name in book.styles
    assert {"neutral", "historian", "practitioner", "student"} <= set(book.perspectives)


def test_variant_choice_is_reproducible_and_distinct(book):
    a = choose_variants("doc-1", 7, 5, book)
    assert a == choose_variants("doc-1", 7, 5, book)
    assert len({v.label for v in a}) == 5
    assert len({v.style.name for v in a}) == 5, "distinct styles are preferred"
    assert [v.index for v in a] == list(range(5))
    # Different documents or seeds draw differently (over a few ids at least one differs).
    assert any(choose_variants(f"doc-{i}", 7, 5, book) != a for i in range(2, 6))
    assert choose_variants("doc-1", 8, 5, book) != a
    # A prefix property: asking for fewer variants gives the first ones of the larger draw.
    assert choose_variants("doc-1", 7, 3, book) == a[:3]


def test_more_variants_than_styles_repeat_styles_with_new_perspectives(book):
    small = book.select(["qa", "child"], ["neutral", "student", "historian"])
    vs = choose_variants("d", 0, 6, small)
    assert len({v.label for v in vs}) == 6
    assert {v.style.name for v in vs[:2]} == {"qa", "child"}
    with pytest.raises(StylesError, match="only 6"):
        choose_variants("d", 0, 7, small)


def test_user_styles_file_adds_and_overrides(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("styles:\n  haiku:\n    instruction: Write it as a sequence of haiku.\n"
                 "  qa:\n    description: overridden\n    instruction: Only questions.\n")
    book = StyleBook.load(f)
    assert book.styles["haiku"].instruction == "Write it as a sequence of haiku."
    assert book.styles["qa"].instruction == "Only questions." and "textbook" in book.styles


@pytest.mark.parametrize("content,match", [
    ("styles:\n  x:\n    description: no instruction\n", "styles.x: field 'instruction'"),
    ("styles:\n  x:\n    instruction: ok\n    colour: red\n", "unknown field"),
    ("stiles: {}\n", "expected a mapping with keys"),
    ("styles: [1, 2]\n", "must be a mapping"),
    ("styles: {a: [\n", "not valid YAML"),
])
def test_bad_styles_files_name_the_problem(tmp_path, content, match):
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    with pytest.raises(StylesError, match=match) as e:
        StyleBook.load(f)
    assert str(f) in str(e.value)


def test_unknown_style_names(book):
    with pytest.raises(StylesError, match="unknown style.*nope"):
        book.select(["nope"])


def test_prompts_demand_faithfulness_and_carry_context(book):
    task = RephraseTask(book)
    v = choose_variants("doc", 0, 1, book)[0]
    msgs = task.messages(v, "The Nile is 6,650 km long.", "", 0, 1)
    text = " ".join(m["content"] for m in msgs)
    assert "6,650 km" in text and v.style.instruction in text and v.perspective.instruction in text
    assert "exactly" in text and "add" in text.lower()
    with_ctx = task.messages(v, "Second part.", "Earlier rewritten words.", 1, 3)[-1]["content"]
    assert "Earlier rewritten words." in with_ctx and with_ctx.endswith("Second part.")


def test_prompt_sha_tracks_template_style_and_perspective(book):
    task = RephraseTask(book)
    vs = choose_variants("doc", 0, 3, book)
    shas = {task.prompt_sha(v) for v in vs}
    assert len(shas) == 3 and all(len(s) == 16 for s in shas)
    assert task.prompt_sha(vs[0]) == RephraseTask(StyleBook.load()).prompt_sha(vs[0])
    other = RephraseTask(book, template=task.template + "changed")
    assert other.prompt_sha(vs[0]) != task.prompt_sha(vs[0])


def test_task_registry_builds_from_spec_fields(tmp_path):
    class FakeSpecFields:     # only the attributes the factory reads
        styles, perspectives, styles_file = ["qa"], ["student"], None
    task = TASKS["rephrase"](FakeSpecFields())
    assert [v.label for v in task.variants({"id": "x"}, 0, 1)] == ["qa/student"]


def test_clean_completion():
    assert clean_completion("Here is the rewritten passage:\n\nThe sky.") == "The sky."
    assert clean_completion("<<<\nThe sky.\n>>>") == "The sky."
    assert clean_completion("  The sky.  ") == "The sky."
    assert clean_completion("Text to rewrite:\nThe sky.") == "The sky."
    assert clean_completion("Text messages date from 1992: a fact.") == "Text messages date from 1992: a fact."
    assert clean_completion("Here's a rewritten version: The sky.") == "The sky."
    content = "Here are the three main causes of the war: famine, debt and pride."
    assert clean_completion(content) == content, "a sentence that merely starts with 'Here are' is content"
