"""Structural scaffolding of styled rewrites: what a check must not read as a fact.

Restyled rewrites add structure that states nothing: a title or heading, markdown markers, bullets and list
numbers ("1.", "Card 3", "Step 2", "Post 4/7"), question/answer labels, and speaker labels in a dialogue
("MAYA:", "Prof. Okafor:", "INTERVIEWER:"). Counted as content, list numbers become "quantities the source does
not state" and invented speaker names become "entities the source does not name" — the main source of false
rejections of faithful rewrites. `strip(text)` removes them and returns the remaining text plus the label words
it removed (so the entity check can ignore a speaker name that also appears inside an utterance).

Text is also brought to one Unicode form first (NFKC: full-width letters and digits, ligatures, non-breaking
spaces) with typographic quotes and dashes folded, so "１９０３" and "1903", "’" and "'" compare equal.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"',
                         "\u2013": "-", "\u2012": "-", "\u2011": "-", "\u2010": "-", "\u2212": "-",
                         "\u2014": " - ", "\u2015": " - ", "\u2026": "...", "\u00a0": " ", "\u202f": " "})

#: label words that are structure in any style (matched case-insensitively, the whole label)
_ROLE = (r"q|a|question|answer|front|back|note|notes|tip|fact|key point|summary|tl;?dr|host|co-?host|guest|"
         r"interviewer|interviewee|narrator|teacher|student|students|pupil|guide|anchor|reporter|caller|listener|"
         r"expert|moderator|speaker \d+|voice \d+|child|kid|parent|visitor|reader|professor|prof|doctor|dr|"
         # a support or service chat's parties ("Customer (Aiko):", "Agent (Rafael):")
         r"customer|agent|client|user|assistant|rep|representative|operator|advisor|adviser|patient|nurse|"
         r"clerk|passenger|tourist")
_ROLE_RE = re.compile(rf"^(?:{_ROLE})\.?$", re.IGNORECASE)
#: numbered scaffolding: "Card 3", "Step 2", "Post 4/7", "Slide 5", "Part II", "Q3", "#4", "4/7", "(3)"; a list
#: number has one or two digits ("day 243 Earth days" is content), and a thread's "1/" takes no number after a space
#: ("1/ 1 July 1569: ...")
_NUMBERED = re.compile(r"^\s*(?:(?:card|step|post|tweet|slide|part|section|point|fact|item|tip|question|answer|"
                       r"chapter|lesson|day|round|clue|entry|note)\s*#?\s*(?:\d{1,2}|[ivx]+)(?:\s*(?:/|of)\s*\d+)?(?![\d.,])"
                       r"(?:\s*\((?:front|back)\))?|#?\d{1,2}\s*/\d{0,2}(?=\s)|\(\d{1,2}\)|#\d{1,2}"
                       # "Q3:", "A3.", "Q1 What ...", not the paper size "A0 has ..." or "A4 is ..."
                       r"|[qa]\s*#?\s*\d{1,2}(?=\s*[:.)\-]|\s+(?-i:[A-Z])|\s*$))"
                       r"\s*[:.)\-]?\s*",
                       re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:(?:Q|A)\d{0,2}\.(?=\s)|[-*+\u2022\u25aa\u25cf\u2023\u2043>]+|\d{1,2}[.)]|[a-hA-H][.)](?=\s)|#{1,6})\s+")
#: "Name:" / "NAME (role):" / "**Name:**" at a line start: 1-4 words, no digits except a trailing count
#: ("omar:" of a lower-case chat counts when it repeats; "CALLER (Graham):" names its speaker in the brackets)
_LABEL = re.compile(r"^\s*(?:\*\*|__)?(?P<label>[A-Za-z\u00C0-\u024F][\w.'\- \u00C0-\u024F]{0,40}?)(?:\s*\((?P<paren>[^)\n]{1,30})\))?"
                    r"(?:\*\*|__)?\s*[:\uff1a](?:\*\*|__)?\s+(?=\S)")
#: a letter's greeting or sign-off names its addressee or writer, not a subject of the text
#: ("Dear Mr. and Mrs. Alvarez,"; a sign-off may start with "With" and span words: "With best wishes,", "Yours
#: sincerely," - the longer forms come first, so "sincerely" is not read as the writer's name)
_GREETING = re.compile(r"^\s*(?:with\s+)?(?:yours sincerely|yours faithfully|yours truly|best wishes|kind regards|"
                       r"warm regards|warmest regards|best regards|many thanks|all the best|see you|talk soon|"
                       r"sincerely|faithfully|respectfully|warmly|hi|hello|hey|dear|greetings|cheers|best|thanks|"
                       r"regards|yours|love)\b[ ,]*(?P<name>(?:[A-Z][\w.'&-]*\s*){0,4})"
                       r"[,!.]*\s*$|^\s*[-\u2014]\s*(?P<sig>[A-Z][\w.'-]*(?:\s+[A-Z][\w.'-]*){0,2})\s*$", re.IGNORECASE)
#: a greeting that opens a line the letter goes on after: "Hey Sam - here are the numbers", "Hi Jo! Quick note"
_INLINE_GREETING = re.compile(r"^\s*(?i:hi|hello|hey|dear)\s+(?P<name>[A-Z][\w.'-]*(?:\s+[A-Z][\w.'-]*)?)\s*[,!-]\s*"
                              r"(?=\S)")
_HONORIFIC = re.compile(r"^(?:prof|professor|dr|doctor|mr|mrs|ms|mx|sir|dame|capt|captain|coach|aunt|uncle|"
                        r"grandma|grandpa|mrs?)\.?\s", re.IGNORECASE)
_MARKUP = re.compile(r"\*\*|__|(?<!\w)\*(?=\S)|(?<=\S)\*(?!\w)|`+|^\s*[=\-_*]{3,}\s*$", re.MULTILINE)


#: a dictionary headword's syllable breaks: a middle dot or hyphenation point between two letters ("Lin·o·type");
#: between digits a middle dot is a decimal point ("3·5") and stays
_SYLLABLE_DOT = re.compile(r"(?<=[^\W\d_])[\u00b7\u2027](?=[^\W\d_])")


#: a power of ten in superscript, "10⁶", "10⁻¹⁹": written "10^6", "10^-19" (NFKC alone would make "10⁶" read "106")
_SUPER_POWER = re.compile(r"(?<![\d.])10([\u207b\u207a]?[\u2070\u00b9\u00b2\u00b3\u2074-\u2079]+)")
_SUPERSCRIPT = str.maketrans("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207b\u207a", "0123456789-+")


#: an underscore between a word and a number in a snake_case key: a YAML block's "occupancy_2023: 74%" or
#: "until_1991: HEU" writes the year 2023, 1991 (a word character glued before it hid the number)
_SNAKE_NUMBER = re.compile(r"(?<=[A-Za-z])_(?=\d)|(?<=\d)_(?=[A-Za-z])")


def normalize(text: str) -> str:
    """NFKC plus folded quotes, dashes, ellipses and non-breaking spaces; syllable dots inside a word removed;
    superscript powers of ten as "10^6"; a snake_case key's underscore beside a number a space."""
    text = _SUPER_POWER.sub(lambda m: "10^" + m.group(1).translate(_SUPERSCRIPT), text)
    text = _SYLLABLE_DOT.sub("", unicodedata.normalize("NFKC", text).translate(_QUOTES))
    return _SNAKE_NUMBER.sub(" ", text)


@dataclass
class Stripped:
    text: str                                        # the text without scaffolding, one line per original line
    labels: set[str] = field(default_factory=set)    # lower-cased words of removed speaker/role labels
    titles: list[str] = field(default_factory=list)  # heading/title lines (kept in text, stated no claim)


_TABLE_ROW = re.compile(r"^\s*\|(?P<cells>.*)\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?(?:\s*:?-{2,}:?\s*\|)+\s*:?-*:?\s*\|?\s*$")


def _tables(lines: list[str], out: Stripped) -> list[str]:
    """Markdown table rows as text: a row's cells become one clause each ("USB 2.0; Hi-Speed; 480 Mbit/s."), the
    rule line goes, and the header row (the row above a rule) is a title whose words are labels: column names
    ("Item | Detail", "Maximum data rate | Released") are structure, and a cell border is no part of a name."""
    kept = []
    for k, line in enumerate(lines):
        if _TABLE_RULE.match(line) and k > 0 and _TABLE_ROW.match(lines[k - 1]):
            kept.append("")
            continue
        m = _TABLE_ROW.match(line)
        if not m:
            kept.append(line)
            continue
        cells = [c.strip() for c in m.group("cells").split("|")]
        row = "; ".join(c for c in cells if c)
        row = row + "." if row and row[-1] not in ".!?:;" else row
        if k + 1 < len(lines) and _TABLE_RULE.match(lines[k + 1]):
            out.labels.update(w.lower() for c in cells for w in re.findall(r"[^\W\d_]+", c))
            out.titles.append(row)
        kept.append(row)
    return kept


_TEMPLATE_OPEN = re.compile(r"^\s*\{\{\s*[^|{}=]*?\s*(?:\|(?P<rest>.*))?$")
_TEMPLATE_FIELD = re.compile(r"^\s*\|?\s*(?P<key>[^\W\d][\w .-]{0,40}?)\s*=\s*(?P<value>.*?)\s*$")


def _templates(lines: list[str]) -> list[str]:
    """A wiki template ("{{Infobox book", "| printer = Johannes Gutenberg", "}}") as a record: the template's own
    name ("Infobox book") is markup, and each "| key = value" field reads as "key: value" ("lines per page: 42")."""
    kept, inside = [], False
    for line in lines:
        m = _TEMPLATE_OPEN.match(line) if not inside else None
        if m:
            inside, line = True, m.group("rest") or ""
        if inside:
            body = line.rstrip()
            closes = body.endswith("}}")
            body = body[:-2] if closes else body
            fields = [(_TEMPLATE_FIELD.match(p), p) for p in body.split("|") if p.strip()]
            line = "; ".join(f"{f.group('key').replace('_', ' ')}: {f.group('value')}" if f else p.strip()
                             for f, p in fields)
            inside = not closes
        kept.append(line)
    return kept


def strip(text: str) -> Stripped:
    """Remove list markers, numbered scaffolding, Q/A and speaker labels and markdown from `text`."""
    out = Stripped("")
    lines = _templates(_tables(normalize(text).split("\n"), out))
    repeated = _repeated_labels(lines)
    kept, signer = [], False
    for line in lines:
        if signer and re.fullmatch(r"\s*[A-Z][\w.'-]*(?:\s+[A-Z][\w.'-]*){0,2}\s*", line):
            out.labels.update(w.lower().strip(".") for w in line.split())  # the name under "Best,"
            kept.append("")
            continue
        g = _GREETING.match(line)
        signer = bool(g) and not (g.group("name") or g.group("sig"))
        line, title = _strip_line(line, repeated, out.labels)
        if title:
            out.titles.append(line.strip())
        kept.append(line)
    out.text = "\n".join(kept)
    return out


def _repeated_labels(lines: list[str]) -> set[str]:
    """Labels that start two or more lines: a dialogue's speakers (a one-off "Capital: Lisbon" key stays text)."""
    seen: dict[str, int] = {}
    for line in lines:
        m = _LABEL.match(_BULLET.sub("", line))
        if m and _plausible_label(m.group("label")):
            key = m.group("label").strip().lower()
            seen[key] = seen.get(key, 0) + 1
    return {k for k, n in seen.items() if n >= 2}


def _plausible_label(label: str) -> bool:
    words = label.split()
    return 1 <= len(words) <= 4 and not any(c.isdigit() for c in label)


def _strip_line(line: str, repeated: set[str], labels: set[str]) -> tuple[str, bool]:
    is_heading = bool(re.match(r"^\s*#{1,6}\s", line))
    g = _GREETING.match(line)
    if g:
        labels.update(w.lower().strip(".,") for w in (g.group("name") or g.group("sig") or "").split())
        return "", False
    g = _INLINE_GREETING.match(line)
    if g:
        labels.update(w.lower().strip(".,") for w in g.group("name").split())
        line = line[g.end():]
    before_all = line
    for _ in range(3):  # markers nest: "- **Card 2:** Q: ..."
        before = line
        line = _BULLET.sub("", line)
        line = _MARKUP.sub("", line)
        line = _NUMBERED.sub("", line, count=1) if _NUMBERED.match(line) else line
        m = _LABEL.match(line)
        if m:
            label = m.group("label").strip()
            if _ROLE_RE.match(label) or label.lower() in repeated or _HONORIFIC.match(label + " ") or (
                    label.isupper() and len(label) > 1 and _plausible_label(label)):
                labels.update(w.lower().strip(".") for w in label.split())
                paren = m.group("paren")
                if paren and _ROLE_RE.match(label):  # "HOST (Priya Nair):" is Priya Nair speaking
                    labels.update(w.lower().strip(".,") for w in paren.split())
                line = line[m.end():]
                if paren and any(c.isdigit() for c in paren) and label.lower() not in repeated \
                        and not _ROLE_RE.match(label):
                    # a glossary term, not a speaker: "FORTRAN (1957): designed at IBM" keeps its year
                    line = f"({paren}) {line}"
        if line == before:
            break
    g = _INLINE_GREETING.match(line)  # a speaker greeting the other party: "Agent: Hello Aiko! SQLite is ..."
    if g and line != before_all:
        labels.update(w.lower().strip(".,") for w in g.group("name").split())
        line = line[g.end():]
    return line, is_heading or is_title(line)


def is_title(line: str) -> bool:
    """A short line with no sentence punctuation at its end, mostly capitalised or upper-case words."""
    s = line.strip()
    if not s or len(s.split()) > 10 or s[-1] in ".!?;,\"')" or ":" in s[:-1]:
        return False
    ws = [w for w in re.findall(r"[^\W\d_]+", s)]
    return bool(ws) and (s.isupper() or sum(w[0].isupper() for w in ws) >= max(1, len(ws) // 2 + 1)
                         or s.endswith(":"))
