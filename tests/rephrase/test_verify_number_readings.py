"""Number readings a careful reader agrees with: clock times and amounts in words, pre-decimal money, idioms."""
import pytest

from rephrase.verify.numbers import compare


def labels(qs):
    return [q.label() for q in qs]


@pytest.mark.parametrize("a,b", [
    ("It fell at about 09:20 local time, they said.", "It fell at around twenty past nine local time, they said."),
    ("no device is known from the following 1,000 years.", "no device is known from the thousand years that followed."),
    ("A dinner cost 7s 6d in 1960.", "A dinner cost seven shillings and sixpence in 1960."),
    ("A dinner cost 7s. 6d. then.", "A dinner cost 7 shillings and 6 pence then."),
    ("A ticket cost 2s 6d.", "A ticket cost half a crown."),
    ("Clinics stayed open 24 hours a day.", "Clinics were open around the clock."),
])
def test_equivalent_readings_match(a, b):
    d = compare(a, b)
    assert not d.missing and not d.extra, (labels(d.missing), labels(d.extra))


@pytest.mark.parametrize("a,b", [
    # guards: a changed time, count, amount or duration is still caught
    ("It fell at about 09:20 local time.", "It fell at around ten past nine local time."),
    ("from the following 100 years.", "from the thousand years that followed."),
    ("A dinner cost 7s 6d in 1960.", "A dinner cost seven shillings and ninepence in 1960."),
    ("A dinner cost 7s 6d in 1960.", "A dinner cost seven shillings in 1960."),
    ("Clinics stayed open 12 hours a day.", "Clinics were open around the clock."),
])
def test_changed_readings_are_caught(a, b):
    assert compare(a, b).missing


def test_bare_scale_word_is_still_no_number():
    # "the millions of people" states no number
    assert not compare("the millions of people", "many people").missing
