"""Entity features (ent_added / ent_missing) on the ways styled rewrites write names: document headings, a
programme's or a chat's frame, letters' salutations and sign-offs, plurals, capitalised common nouns, bracketed
aliases. Each faithful case once caused a false alarm; each corrupted counterpart must still be seen."""
import pytest

from rephrase.verify.scaffold import strip
from tests.rephrase.verify_pairs import pair_features as _features, verifier  # noqa: F401 (a fixture)


def _clean(f):
    return f["ent_added"].value == 0 and f["ent_missing"].value == 0


HTTP = ("HTTP/2 was published by the Internet Engineering Task Force as RFC 7540 in May 2015. It was derived from "
        "SPDY, an experimental protocol developed by Google.")


@pytest.mark.parametrize("source,rewrite", [
    # a man page's section headings
    (HTTP, "HTTP2(7)            Protocols Manual            HTTP2(7)\n\nNAME\n       HTTP/2 - protocol published "
           "by the Internet Engineering Task Force as RFC 7540 (May 2015)\n\nSYNOPSIS\n       derived from SPDY\n\n"
           "DESCRIPTION\n       Derived from SPDY, Google's experimental protocol."),
    # a memo's heading
    ("Scheme: new State Pension (United Kingdom)\nMinimum for any payment: 10 qualifying years",
     "MEMORANDUM\nTo: All HR staff\nFrom: Pensions Desk\nRe: The new State Pension (UK)\n\n"
     "The new State Pension pays nothing to anyone with fewer than 10 qualifying years."),
])
def test_document_section_headings_are_no_names(verifier, source, rewrite):
    f = _features(verifier, source, rewrite)
    assert _clean(f), (f["ent_added"], f["ent_missing"])


LINUX = ("Linus Torvalds announced the Linux kernel on 25 August 1991 in a post to the Usenet newsgroup comp.os.minix. "
         "Torvalds created Git in April 2005 to manage kernel development.")


def test_a_programme_welcoming_its_audience_names_its_frame(verifier):
    f = _features(verifier, LINUX, "Welcome back to Source Code Stories! Today: the Linux kernel. On 25 August 1991 "
                                   "Linus Torvalds posted to the Usenet group comp.os.minix to announce Linux. And "
                                   "Torvalds built Git in April 2005 to manage kernel development.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])


def test_welcome_rule_does_not_hide_a_swapped_place(verifier):
    # "Welcome to Osaka" names a place, not a programme: not common words, so still an added name
    f = _features(verifier, "Kyoto was the capital of Japan from 794 to 1868.",
                  "Welcome to Osaka! It was the capital of Japan from 794 to 1868.")
    assert "Osaka" in f["ent_added"].detail, f["ent_added"]
    # a programme name later in the text is content
    f = _features(verifier, LINUX, LINUX + " Welcome back to Source Code Stories, said Linus Torvalds.")
    assert f["ent_added"].value > 0, f["ent_added"]


SQLITE = ("Project: SQLite\nAuthor: D. Richard Hipp\nFirst release: August 2000\n"
          "Contributions: the project does not accept patches from outside contributors")


def test_a_chat_names_its_parties_in_label_brackets_and_greetings(verifier):
    chat = ("Customer (Mei): Hi, who wrote SQLite?\nAgent (Tomas): Hello Mei! SQLite is by D. Richard Hipp, first "
            "released in August 2000.\nCustomer (Mei): Can I send a patch?\nAgent (Tomas): No, the project turns "
            "down patches from outside contributors.")
    f = _features(verifier, SQLITE, chat)
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    s = strip(chat)
    assert {"mei", "tomas"} <= s.labels


def test_a_chat_label_does_not_hide_a_swapped_author(verifier):
    chat = ("Customer (Mei): Hi, who wrote SQLite?\nAgent (Tomas): SQLite is by Dan Kennedy, first released in "
            "August 2000.\nCustomer (Mei): Can I send a patch?\nAgent (Tomas): No.")
    f = _features(verifier, SQLITE, chat)
    assert "Kennedy" in f["ent_added"].detail, f["ent_added"]
    # a repeated label's brackets that hold no name are content, not a speaker
    s = strip("MAYA (in Paris): It opened in 1889.\nMAYA (in Paris): It is tall.")
    assert "paris" not in s.labels


FEMA = ("The National Flood Insurance Program was created by the US Congress in 1968 and is managed by the Federal "
        "Emergency Management Agency (FEMA). Standard homeowners insurance policies do not cover flood damage.")


def test_letter_salutation_and_sign_off_name_no_subject(verifier):
    letter = ("Dear Mr. and Mrs. Novak,\n\nFurther to our meeting: the National Flood Insurance Program was set up "
              "by Congress in 1968, and the Federal Emergency Management Agency (FEMA) runs it. A standard homeowners "
              "policy leaves flood damage out.\n\nWith best wishes,\nHanna Lindqvist")
    f = _features(verifier, FEMA, letter)
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    s = strip("Thanks for your note.\n\nYours sincerely,\nHanna Lindqvist")
    assert {"hanna", "lindqvist"} <= s.labels and "Hanna" not in s.text


def test_a_letter_frame_does_not_hide_a_swapped_agency(verifier):
    letter = ("Dear Mr. and Mrs. Novak,\n\nThe National Flood Insurance Program was set up by Congress in 1968, and "
              "the Department of Housing and Urban Development (HUD) runs it. A standard homeowners policy leaves "
              "flood damage out.\n\nWith best wishes,\nHanna Lindqvist")
    f = _features(verifier, FEMA, letter)
    assert "Housing" in f["ent_added"].detail, f["ent_added"]


IPOD = "At launch it worked only with Macs; Windows support arrived in July 2002."


def test_a_name_and_its_plural_are_the_same_name(verifier):
    f = _features(verifier, IPOD, "Heads up, PC folks: at launch this thing was Mac-only. Windows support didn't "
                                  "show up until July 2002.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])


def test_plural_rule_does_not_hide_a_swapped_name(verifier):
    f = _features(verifier, IPOD, "At launch this thing was Amiga-only. Windows support didn't show up until "
                                  "July 2002.")
    assert f["ent_missing"].value > 0 or f["ent_added"].value > 0, (f["ent_added"], f["ent_missing"])


def test_sun_is_named_by_solar(verifier):
    f = _features(verifier, "Halley's Comet returns to the inner Solar System about every 76 years.",
                  "Halley's Comet comes back close to the Sun about once every seventy-six years.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    f = _features(verifier, "Halley's Comet returns to the inner Solar System about every 76 years.",
                  "Halley's Comet comes back close to Jupiter about once every seventy-six years.")
    assert "Jupiter" in f["ent_added"].detail, f["ent_added"]


WHALE = ("The blue whale is the largest animal known to have ever lived. The International Whaling Commission "
         "banned the hunting of blue whales in 1966.")


def test_on_earth_after_a_superlative_is_an_intensifier(verifier):
    f = _features(verifier, WHALE, "BLUE WHALE\nThe biggest animal ever known to have lived on Earth.\nIn 1966 "
                                   "the International Whaling Commission banned blue-whale hunting.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    f = _features(verifier, WHALE, "BLUE WHALE\nThe biggest animal ever known to have lived on Mars.\nIn 1966 "
                                   "the International Whaling Commission banned blue-whale hunting.")
    assert "Mars" in f["ent_added"].detail, f["ent_added"]


PI = "Name: Raspberry Pi 4 Model B\nReleased: 24 June 2019\nSoC: Broadcom BCM2711"


def test_a_stage_direction_verb_is_no_name(verifier):
    script = ("[Opening shot, box on desk]\nHey everyone, today we're unboxing the Raspberry Pi 4 Model B, the board "
              "that came out on the 24th of June, 2019.\n[Lifts board]\nRight in the middle is the Broadcom BCM2711.")
    f = _features(verifier, PI, script)
    assert _clean(f), (f["ent_added"], f["ent_missing"])


ROTH = ("Account type: Roth IRA (individual retirement account, United States)\n"
        "Named after: Senator William Roth of Delaware\nAnnual contribution limit (2024): $7,000")


def test_a_determiner_is_no_part_of_a_name(verifier):
    f = _features(verifier, ROTH, "The Roth IRA is a retirement account. This United States individual retirement "
                                  "account takes its name from Senator William Roth of Delaware. For 2024 you may "
                                  "put in up to $7,000.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    f = _features(verifier, ROTH, "The Roth IRA is a retirement account. This Canadian individual retirement "
                                  "account takes its name from Senator William Roth of Delaware.")
    assert "Canadian" in f["ent_added"].detail, f["ent_added"]


def test_a_common_word_after_an_article_in_lower_case_text_is_no_name(verifier):
    f = _features(verifier, ROTH, "ok so a roth ira is a us individual retirement account, named after senator "
                                  "william roth (delaware). for 2024 the max you can put in is $7k.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    f = _features(verifier, ROTH, "ok so a roth ira is a us individual retirement account, named after senator "
                                  "william proxmire (delaware). for 2024 the max you can put in is $7k.")
    assert "proxmire" in f["ent_added"].detail, f["ent_added"]


HOF = ("Karl-Marx-Hof in Vienna (Wien), designed by the architect Karl Ehn, was built between 1927 and 1930. The "
       "apartments are owned by the City of Vienna.")


def test_a_bracketed_alias_of_a_kept_name_is_not_missing(verifier):
    f = _features(verifier, HOF, "KARL-MARX-HOF (VIENNA)\nBuilt 1927-1930; architect: Karl Ehn.\n"
                                 "Owner: City of Vienna.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    # the alias goes with its name: both gone is a missing name
    f = _features(verifier, "The palace was built in Munich (München) in 1385.", "The palace was built in 1385.")
    assert f["ent_missing"].value > 0, f["ent_missing"]


def test_a_name_mentioned_twice_is_missing_once(verifier):
    f = _features(verifier, "In 1922 Howard Carter's workers uncovered a step in the Valley of the Kings. Later, "
                            "Carter made a small hole in the sealed doorway.",
                  "1922 - The men uncovered a step in the Valley of the Kings. Later the team made a small hole "
                  "in the sealed doorway.")
    assert f["ent_missing"].value == 1 and "Carter" in f["ent_missing"].detail, f["ent_missing"]


TOMB = ("On 26 November 1922, Howard Carter made a small hole in the sealed doorway and peered in by candlelight. "
        "Asked by Lord Carnarvon whether he could see anything, Carter replied: \"Yes, wonderful things.\"")


def test_a_first_person_rewrite_speaks_as_the_person_it_does_not_name(verifier):
    diary = ("26 Nov. 1922 - Made a small hole in the sealed doorway; looked in by candlelight. Lord Carnarvon asked "
             "whether I could see anything. I answered, \"Yes, wonderful things.\"")
    f = _features(verifier, TOMB, diary)
    assert f["ent_missing"].value == 0, f["ent_missing"]


def test_narrator_rule_does_not_hide_a_dropped_name(verifier):
    # third person: nobody speaks as Carter
    f = _features(verifier, TOMB, "On 26 November 1922 a small hole was made in the sealed doorway. Asked by Lord "
                                  "Carnarvon whether anything could be seen, the answer was \"Yes, wonderful things.\"")
    assert "Carter" in f["ent_missing"].detail, f["ent_missing"]
    # an "I" only inside a quotation is someone quoted, not the narrator
    f = _features(verifier, TOMB, "On 26 November 1922 a small hole was made in the sealed doorway. Lord Carnarvon "
                                  "asked: \"Can I see anything?\" The reply: \"Yes, wonderful things.\"")
    assert "Carter" in f["ent_missing"].detail, f["ent_missing"]
    # the narrator stands for one person: two dropped people are missing
    f = _features(verifier, TOMB, "26 Nov. 1922 - Made a small hole in the sealed doorway. Someone asked whether I "
                                  "could see anything. I answered, \"Yes, wonderful things.\"")
    assert "Carnarvon" in f["ent_missing"].detail, f["ent_missing"]


# ---- author P-Q's false alarms (issue 16, second batch)

GUTENBERG = ("Title: Gutenberg Bible\nPrinter: Johannes Gutenberg\nPlace: Mainz, Germany\nLanguage: Latin\n"
             "Copies printed: about 180")


def test_a_wiki_template_reads_as_a_record():
    # the template's name is markup; each "| key = value" field is "key: value"
    s = strip("{{Infobox book\n| name = Gutenberg Bible\n| lines_per_page = 42\n}}").text
    assert "Infobox" not in s and "name: Gutenberg Bible" in s and "lines per page: 42" in s, s
    assert strip("{{Infobox person | name = Ada Lovelace | birth_date = 1815 }}").text == (
        "name: Ada Lovelace; birth date: 1815")
    assert strip("Cite it as {{cite}} here.").text == "Cite it as {{cite}} here."  # an inline template stays


def test_a_wiki_infobox_names_no_entity(verifier):
    f = _features(verifier, GUTENBERG, "{{Infobox book\n| name = Gutenberg Bible\n| printer = Johannes Gutenberg\n"
                                       "| location = Mainz, Germany\n| language = Latin\n| copies_printed = c. 180\n}}")
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    # a field's value is content: a swapped printer is an added name
    f = _features(verifier, GUTENBERG, "{{Infobox book\n| name = Gutenberg Bible\n| printer = Peter Schoeffer\n"
                                       "| location = Mainz, Germany\n| language = Latin\n| copies_printed = c. 180\n}}")
    assert "Schoeffer" in f["ent_added"].detail, f["ent_added"]


def test_syllable_dots_of_a_headword_join_the_word():
    assert strip("Lin\u00b7o\u00b7type (n.) - a typesetting machine").text.startswith("Linotype (n.)")
    assert strip("a 3\u00b75 m wall").text == "a 3\u00b75 m wall"  # a middle dot between digits is a decimal point


def test_a_dictionary_headword_with_syllable_dots_is_its_name(verifier):
    f = _features(verifier, "Ottmar Mergenthaler invented the Linotype machine in 1884.",
                  "Lin\u00b7o\u00b7type (n.) \u2014 A typesetting machine invented by Ottmar Mergenthaler in 1884.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])


POINTS = ("The Didot point was later used in France and parts of continental Europe. The American point was adopted "
          "by the United States Type Founders' Association in 1886.")


def test_across_the_atlantic_names_no_new_place(verifier):
    # the source names both shores (France, Europe / the United States): "across the Atlantic" is where one lies
    f = _features(verifier, POINTS, "The Didot point was later used in France and parts of continental Europe. "
                                    "Across the Atlantic, the United States Type Founders' Association adopted the "
                                    "American point in 1886.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    # "transatlantic" is "across the Atlantic"
    f = _features(verifier, "Marconi received the first transatlantic radio signal in 1901.",
                  "Marconi received the first radio signal sent across the Atlantic in 1901.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])


def test_across_another_sea_is_still_an_added_place(verifier):
    # the Pacific's shores are not the ones the source names
    f = _features(verifier, POINTS, "The Didot point was later used in France and parts of continental Europe. "
                                    "Across the Pacific, the United States Type Founders' Association adopted the "
                                    "American point in 1886.")
    assert "Pacific" in f["ent_added"].detail, f["ent_added"]
    # the Atlantic as a place of its own ("in the Atlantic") is content
    f = _features(verifier, "The ship sank off Ireland in 1915.", "The ship sank in the Atlantic off Ireland in 1915.")
    assert "Atlantic" in f["ent_added"].detail, f["ent_added"]


LIBRARY = ("Name: British Library\nRole: national library of the United Kingdom\nMain building: St Pancras, London; "
           "opened to readers in 1997")


def test_minutes_heading_names_the_meeting_not_a_fact(verifier):
    f = _features(verifier, LIBRARY, "MINUTES \u2014 Heritage Committee\nItem: briefing on the British Library\n"
                                     "1. The British Library is the UK's national library; its main building at "
                                     "St Pancras, London, opened to readers in 1997.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    # a name in the minutes' body is content
    f = _features(verifier, LIBRARY, "MINUTES \u2014 Heritage Committee\nItem: briefing on the British Library\n"
                                     "1. The British Library is the UK's national library; its main building at "
                                     "Euston, London, opened to readers in 1997.")
    assert "Euston" in f["ent_added"].detail, f["ent_added"]


def test_a_programme_heading_in_spanish_is_its_frame(verifier):
    f = _features(verifier, "Dia de Muertos is celebrated in Mexico on 1 and 2 November.",
                  "Programa \u00b7 Dia de Muertos \u00b7 Mexico\n1 November and 2 November: Dia de Muertos.")
    assert f["ent_added"].value == 0, f["ent_added"]


JENNY = ("Stamp: Inverted Jenny\nIssuer: United States Post Office Department\nFace value: 24 cents (airmail)\n"
         "Placed on sale: 13 May 1918")


def test_a_records_field_label_is_no_name(verifier):
    # "Issuer" (one who issues) is the record's key, not a name the rewrite drops
    f = _features(verifier, JENNY, "The Inverted Jenny: an error of the United States Post Office Department. Face "
                                   "value 24 cents; placed on sale 13 May 1918.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    # the value is content: a dropped issuer is still missing
    f = _features(verifier, JENNY, "The Inverted Jenny: an error stamp. Face value 24 cents; placed on sale 13 May "
                                   "1918.")
    assert "Post Office" in f["ent_missing"].detail, f["ent_missing"]
    # a key that is a name is a name: "Fournier:" is dropped
    f = _features(verifier, "Fournier: 0.349 mm\nDidot: 0.376 mm\nAmerican: 0.3514 mm",
                  "Didot's point is 0.376 mm and the American point 0.3514 mm; another is 0.349 mm.")
    assert "Fournier" in f["ent_missing"].detail, f["ent_missing"]


def test_demonyms_of_short_and_vowel_final_names():
    from rephrase.verify.entities import _stem_match
    for name, demonym in (("tyre", "tyrian"), ("rome", "roman"), ("rome", "romans"), ("java", "javanese"),
                          ("yemen", "yemeni"), ("congo", "congolese"), ("korea", "koreans")):
        assert _stem_match(name, demonym) and _stem_match(demonym, name), (name, demonym)
    for a, b in (("rome", "romania"), ("tyre", "tyr"), ("peru", "perian"), ("rome", "rom")):
        assert not _stem_match(a, b), (a, b)


def test_a_name_kept_as_its_demonym_or_place(verifier):
    f = _features(verifier, "Tyrian purple was produced in Phoenicia.",
                  "In Tyre, in Phoenicia, dye-makers made purple.")
    assert f["ent_missing"].value == 0, f["ent_missing"]
    f = _features(verifier, "The Antonine Wall was abandoned when the Romans fell back to Hadrian's Wall.",
                  "ROME'S NORTHERN FRONTIERS\nThe Antonine Wall was given up as the Romans pulled back to "
                  "Hadrian's Wall.")
    assert f["ent_added"].value == 0, f["ent_added"]


W3C = "The World Wide Web Consortium (W3C) was founded by Tim Berners-Lee in October 1994."


def test_a_name_kept_as_the_abbreviation_it_defines_in_brackets(verifier):
    f = _features(verifier, W3C, "Q: Who founded the W3C?\nA: Tim Berners-Lee, in October 1994.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    # another body's abbreviation keeps nothing
    f = _features(verifier, W3C, "Q: Who founded the IETF?\nA: Tim Berners-Lee, in October 1994.")
    assert "World Wide Web Consortium" in f["ent_missing"].detail, f["ent_missing"]


def test_a_region_after_the_place_it_contains(verifier):
    src = "The railway opened in 1825 in County Durham, England, to carry coal."
    f = _features(verifier, src, "The railway opened in 1825, here in County Durham, to carry coal.")
    assert f["ent_missing"].value == 0, f["ent_missing"]
    # a place of a list is an item, not a region: dropping it is a missing name
    f = _features(verifier, "The eclipse was seen from Cornwall, central Europe, Iran, India in 1999.",
                  "The eclipse was seen from Cornwall, central Europe, India in 1999.")
    assert "Iran" in f["ent_missing"].detail, f["ent_missing"]
    f = _features(verifier, "The coins were found in Mainz, Cologne and Bonn.", "The coins were found in Mainz.")
    assert f["ent_missing"].value > 0, f["ent_missing"]
    # a swapped region is an added name
    f = _features(verifier, src, "The railway opened in 1825 in County Durham, Scotland, to carry coal.")
    assert "Scotland" in f["ent_added"].detail, f["ent_added"]


SUEZ = "Name: Suez Canal (Qan\u0101t as-Suways)\nCountry: Egypt\nOpened: 17 November 1869"


def test_the_language_of_a_bracketed_alias_adds_no_name(verifier):
    f = _features(verifier, SUEZ, "The Suez Canal lies in Egypt, its Arabic name being Qan\u0101t as-Suways. It was "
                                  "opened on 17 November 1869.")
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    # a language or people said of something else is an added name
    f = _features(verifier, SUEZ, "The Suez Canal (Qan\u0101t as-Suways) lies in Egypt; Arabic engineers opened it on "
                                  "17 November 1869.")
    assert "Arabic" in f["ent_added"].detail, f["ent_added"]


def test_a_world_heritage_site_is_on_the_world_heritage_list(verifier):
    f = _features(verifier, "The Falun mine has been a UNESCO World Heritage Site since 2001.",
                  "Since 2001 the Falun mine has been on UNESCO's World Heritage List.")
    assert f["ent_added"].value == 0, f["ent_added"]


def test_names_spacy_splits_without_a_gap_count_once(verifier):
    # "Stockton & Darlington" + "Railway": one name the source never uses, counted once
    f = _features(verifier, "- Opened: 1825, in County Durham, England\n- Carried coal to the River Tees at Stockton",
                  "TIMETABLE NOTE \u2014 Stockton & Darlington Railway, County Durham, England.\nOpened 1825; coal to "
                  "the River Tees at Stockton.")
    assert f["ent_added"].value == 1 and "Darlington Railway" in f["ent_added"].detail, f["ent_added"]


TAY = ("The Tay Bridge opened on 1 June 1878 and carried the North British Railway across the Firth of Tay. It was "
       "designed by Thomas Bouch.")


@pytest.mark.parametrize("rewrite", [
    # the body named in the heading after "Minutes of the", then referred to as "The Board"
    "Minutes of the Harbour Works Board \u2014 Item 4: the Tay Bridge\nThe Board noted that the Tay Bridge opened on "
    "1 June 1878, carrying the North British Railway across the Firth of Tay. Members recorded that Thomas Bouch "
    "designed it.",
    # the record's noun after the body (an em dash folds to spaced hyphen: space tokens before "minutes")
    "Heritage Committee \u2014 minutes, Item 7: the Tay Bridge\nThe Committee noted that the Tay Bridge, designed by "
    "Thomas Bouch, opened on 1 June 1878 and carried the North British Railway across the Firth of Tay.",
    # an agenda item's heading names no body: "The Council" is the subject of the record's reporting verb
    "Agenda item 3: the Tay Bridge\nThe Council received a note that the Tay Bridge opened on 1 June 1878 and "
    "carried the North British Railway across the Firth of Tay. It was recorded that Thomas Bouch designed it.",
])
def test_a_meeting_record_names_its_body_as_its_frame(verifier, rewrite):
    f = _features(verifier, TAY, rewrite)
    assert _clean(f), (f["ent_added"], f["ent_missing"])


def test_meeting_frame_does_not_hide_a_swapped_name(verifier):
    # a name in the minutes' body is content
    f = _features(verifier, TAY, "Minutes of the Harbour Works Board \u2014 Item 4: the Tay Bridge\nThe Board noted "
                                 "that the Tay Bridge opened on 1 June 1878, carrying the North British Railway across "
                                 "the Firth of Tay. Members recorded that Benjamin Baker designed it.")
    assert "Benjamin Baker" in f["ent_added"].detail, f["ent_added"]
    # outside a meeting's record "The Council noted" names a body the source does not
    f = _features(verifier, TAY, "The Council noted that the Tay Bridge opened on 1 June 1878 and carried the North "
                                 "British Railway across the Firth of Tay. Thomas Bouch designed it.")
    assert "Council" in f["ent_added"].detail, f["ent_added"]


def test_a_title_case_headings_verb_is_no_part_of_a_name(verifier):
    source = ("Modern passenger elevators hang from several steel cables, each able to hold the car alone. A free "
              "fall is almost unheard of, despite what films suggest.")
    f = _features(verifier, source, "Hollywood Got It Wrong: Elevators Almost Never Plunge\nModern passenger "
                                    "elevators hang from several steel cables, each able to hold the car alone, so "
                                    "a free fall is almost unheard of.")
    assert "Got" not in f["ent_added"].detail, f["ent_added"]


# ---- acronyms and their expansions, name forms, words that are no names (authors R, S, U)
QUAKE = ("Date: 11 March 2011, 14:46 JST\nEpicentre: about 72 km east of the Oshika Peninsula\n"
         "Hypocentre depth: approx. 29 km\nMonitoring: U.S. Geological Survey field teams; the USGS logged 5,000 "
         "aftershocks.")


@pytest.mark.parametrize("rewrite", [
    # "JST" spelled out; "U.S." gives "US" to the initials; a record's key "Hypocentre depth:" is a field label
    "- When: 11 March 2011, 2:46 p.m. Japan Standard Time\n- About 72 km E of the Oshika Peninsula\n"
    "- Focus ~29 km deep\n- The USGS monitored it and logged 5,000 aftershocks.",
])
def test_an_acronym_matches_its_expansion_on_the_other_side(verifier, rewrite):
    f = _features(verifier, QUAKE, rewrite)
    assert _clean(f), (f["ent_added"], f["ent_missing"])


def test_an_expansion_with_other_initials_is_still_a_new_name(verifier):
    f = _features(verifier, QUAKE, "- When: 11 March 2011, 2:46 p.m. Korea Standard Time\n- About 72 km E of the "
                                   "Oshika Peninsula\n- Focus ~29 km deep\n- The USGS logged 5,000 aftershocks.")
    assert "Korea" in f["ent_added"].detail, f["ent_added"]
    f = _features(verifier, "Geologist Don J. Miller of the USGS surveyed the damage.",
                  "British Geological Survey geologist Don J. Miller surveyed the damage.")
    assert "British" in f["ent_added"].detail, f["ent_added"]


def test_an_acronym_in_a_longer_name_and_a_nickname(verifier):
    source = ("New York Times Co. v. Sullivan was decided by the U.S. Supreme Court in 1964. The Court reversed "
              "unanimously in an opinion by Justice William J. Brennan Jr. The ad raised money for the defence of "
              "Martin Luther King Jr.")
    rewrite = ("IANAL but: NYT Co. v. Sullivan was decided by SCOTUS in 1964, unanimously, in an opinion by Justice "
               "William J. Brennan Jr. The ad raised money for Martin Luther King Jr.'s defence.")
    f = _features(verifier, source, rewrite)
    assert _clean(f), (f["ent_added"], f["ent_missing"])
    f = _features(verifier, source, rewrite.replace("NYT", "WSJ").replace("Brennan", "Warren"))
    assert "WSJ" in f["ent_added"].detail and "Warren" in f["ent_added"].detail, f["ent_added"]


@pytest.mark.parametrize("source,rewrite", [
    # a sentence-opening adverb spaCy tags as a name
    ("Going down took about 4 hours. During the descent a cracked outer window pane shook the sphere.",
     "Going down took about 4 hours. Partway, a cracked outer window pane shook the sphere."),
    # a compass point abbreviated before a region the source names
    ("The North Atlantic Drift helps keep north-western Europe several degrees warmer.",
     "- North Atlantic Drift helps keep NW Europe several degrees warmer"),
    # a software log's heading
    ("Machine: Colossus Mark 2\nFirst operational: 1 June 1944 at Bletchley Park",
     "## Colossus - changelog\n\nMark 2 - 1 June 1944\n- Went operational at Bletchley Park."),
    # an all-lower-case salutation
    ("The Framingham Heart Study began in 1948 in Framingham, Massachusetts.",
     "hey jo - the framingham heart study began in 1948 in framingham, massachusetts."),
    # a unit's abbreviation the other side spells out
    ("The main payload file was roughly 500 KB.", "The main payload file was roughly 500 kilobytes."),
    # chess piece letters
    ("Final material: rook and bishop versus rook", "- Final material: R+B vs R"),
])
def test_words_that_are_no_names(verifier, source, rewrite):
    f = _features(verifier, source, rewrite)
    assert _clean(f), (f["ent_added"], f["ent_missing"])


def test_no_name_rules_do_not_hide_a_swapped_name(verifier):
    f = _features(verifier, "The North Atlantic Drift helps keep north-western Europe several degrees warmer.",
                  "- North Atlantic Drift helps keep NW Africa several degrees warmer")
    assert "Africa" in f["ent_added"].detail, f["ent_added"]
    f = _features(verifier, "Machine: Colossus Mark 2\nFirst operational: 1 June 1944 at Bletchley Park",
                  "## Enigma - changelog\n\nMark 2 - 1 June 1944\n- Went operational at Bletchley Park.")
    assert "Enigma" in f["ent_added"].detail, f["ent_added"]
    f = _features(verifier, "Going down took about 4 hours. During the descent a window shook.",
                  "Going down took about 4 hours. Piccard, a window shook.")
    assert "Piccard" in f["ent_added"].detail, f["ent_added"]


@pytest.mark.parametrize("source,rewrite", [
    # a name glued to an approximation sign
    ("The refund cost the firm an estimated DKK 3 million.", "a: how much\nb: ~DKK 3 million"),
    # the Second World War by its initialism
    ("The mill kept running through the Second World War.", "The mill kept running through WWII."),
    ("The mill kept running through WW2.", "The mill kept running through the Second World War."),
    # a support reply signed by the writer's role
    ("The shop opened in Leeds in 1990.", "Thanks for asking: the shop opened in Leeds in 1990. Kind regards, "
                                          "Customer Support Team"),
    ("The shop opened in Leeds in 1990.", "The shop opened in Leeds in 1990. With apologies, Customer Service"),
    # the Sun named by the perihelion
    ("Perihelion distance: about 0.3 AU", "At its closest it comes within about 0.3 AU of the Sun."),
])
def test_glued_names_war_initialisms_sign_offs_and_apsides(verifier, source, rewrite):
    f = _features(verifier, source, rewrite)
    assert _clean(f), (f["ent_added"], f["ent_missing"])


def test_glued_war_sign_off_and_apsis_readings_still_see_a_swapped_name(verifier):
    f = _features(verifier, "The refund cost the firm an estimated DKK 3 million.", "a: how much\nb: ~SEK 3 million")
    assert "DKK" in f["ent_missing"].detail, f["ent_missing"]
    f = _features(verifier, "The mill kept running through the Second World War.",
                  "The mill kept running through WWI.")
    assert "WWI" in f["ent_added"].detail, f["ent_added"]
    # a person's name after the closing, or a role mid-text, is still a name the source lacks
    f = _features(verifier, "The shop opened in Leeds in 1990.",
                  "The shop opened in Leeds in 1990, said Customer Care. Kind regards, Tom")
    assert "Customer Care" in f["ent_added"].detail, f["ent_added"]
    f = _features(verifier, "Perihelion distance: about 0.3 AU", "At its closest it comes within about 0.3 AU of Jupiter.")
    assert "Jupiter" in f["ent_added"].detail, f["ent_added"]


# ---- authors X, Z: weekday ranges, title lines, a programme's opening after a sound cue, lower-case chat
POST = ("A stamp from Cambrian Post costs £1.35. The universal service obligation requires letter deliveries six days a week, Monday to Saturday. "
        "Compensation for a lost item is limited to £20.")
CLIFF = ("On 12 December 1947 the trawler Dhoon ran aground beneath the Látrabjarg cliffs in Iceland. Farmers "
         "lowered themselves down the cliff face on ropes and hauled twelve crew to safety in a rescue.")
K3 = ("Kangchenjunga was first climbed on 25 May 1955 by Joe Brown and George Band of a British expedition led by "
      "Charles Evans.")
PHONE = "Model: Nokora X7 Pro\nRelease date: 12 October 2023\nWeight: 204 g"


@pytest.mark.parametrize("source,rewrite", [
    # weekdays abbreviated in a range: the source's "Monday to Saturday"
    (POST, "Cambrian Post - quick notes\n- stamp: £1.35\n- universal service obligation: letters must be delivered "
           "Mon\u2013Sat, i.e. six days a week\n- lost item: max £20 compensation"),
    # a title-case title line of common words (spaCy tags "The Big Cliff Rescue" ORG)
    (CLIFF, "The Big Cliff Rescue \U0001f9d7\U0001f30a\nOn 12 December 1947, a fishing boat called the Dhoon ran "
            "aground under the Látrabjarg cliffs in Iceland. Farmers climbed down the cliff on ropes and pulled 12 "
            "sailors up to safety."),
    # the show a host welcomes listeners to, after a sound cue
    (K3, "[INTRO MUSIC]\nPRIYA: Welcome back to Summit Stories. I'm Priya.\nANGUS: And I'm Angus.\nPRIYA: "
         "Kangchenjunga was first climbed on May 25th, 1955, by Joe Brown and George Band, on a British expedition "
         "led by Charles Evans."),
    (K3, "This is Summit Stories. Kangchenjunga was first climbed on 25 May 1955 by Joe Brown and George Band, on a "
         "British expedition led by Charles Evans."),
    # an all-lower-case chat: spaCy's "pro specs" is two common words
    (PHONE, "ok nokora x7 pro specs since u asked \U0001f4f1\n- out 12 oct 2023\n- 204g"),
])
def test_weekday_ranges_title_lines_show_openings_and_lower_case_chat(verifier, source, rewrite):
    f = _features(verifier, source, rewrite)
    assert _clean(f), (f["ent_added"], f["ent_missing"])


def test_weekday_title_opening_and_chat_readings_still_see_a_changed_name(verifier):
    # a weekday the source does not give
    f = _features(verifier, POST, "Cambrian Post - quick notes\n- stamp: £1.35\n- universal service obligation: "
                                  "letters must be delivered Mon-Sun, i.e. six days a week\n- lost item: max £20")
    assert "Mon-Sun" in f["ent_added"].detail, f["ent_added"]
    # a title line's name-like word is a name
    f = _features(verifier, CLIFF, "The Big Hornbjarg Rescue\nOn 12 December 1947, a fishing boat called the Dhoon "
                                   "ran aground under the Látrabjarg cliffs in Iceland.")
    assert "Hornbjarg" in f["ent_added"].detail, f["ent_added"]
    # a place welcomed to after the sound cue is content; so is a show named after the opening line
    f = _features(verifier, K3, "[INTRO MUSIC]\nWelcome to Kathmandu! Kangchenjunga was first climbed on 25 May "
                                "1955 by Joe Brown and George Band, on a British expedition led by Charles Evans.")
    assert "Kathmandu" in f["ent_added"].detail, f["ent_added"]
    f = _features(verifier, K3, "Kangchenjunga was first climbed on 25 May 1955 by Joe Brown and George Band. This "
                                "is Summit Stories, said Charles Evans, who led the British expedition.")
    assert f["ent_added"].value > 0, f["ent_added"]
    # in lower-case chat a word that is no common word is still a name
    f = _features(verifier, PHONE, "ok motorola x7 pro specs since u asked \U0001f4f1\n- out 12 oct 2023\n- 204g")
    assert "motorola" in f["ent_added"].detail, f["ent_added"]
