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
    # a share of ten, a star rating, an isotope, a spaced "m" of millions, a sievert conversion, a snake_case key
    ("70% of guest nights were by foreign guests.", "Seven in ten guest nights were by foreign guests."),
    ("Star rating: 4/5.", "It earns 4 of 5 stars."),
    ("The fuel holds less than 20% U-235.", "The fuel holds less than 20% uranium-235."),
    ("In 2022, 41 million sets were sold.", "2022: 41 m sets sold."),
    ("The flight adds 0.005 mSv.", "The flight adds 5 µSv."),
    ("Occupancy in 2023 was 74%.", "occupancy_2023: 74%"),
    ("No worker has exceeded 5 mSv in a single year.", "No worker went above 5 mSv in any single year."),
    ("Inversions: 0. Top speed: 80 km/h.", "It never turns riders upside down and tops out at 80 km/h."),
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
    ("60% of guest nights were by foreign guests.", "Seven in ten guest nights were by foreign guests."),
    ("Star rating: 4/5.", "It earns 3 of 5 stars."),
    ("The fuel holds less than 20% U-235.", "The fuel holds less than 20% uranium-238."),
    ("In 2022, 41 million sets were sold.", "2022: 14 m sets sold."),
    ("The flight adds 0.005 mSv.", "The flight adds 50 µSv."),
    ("Occupancy in 2023 was 74%.", "occupancy_2022: 74%"),
])
def test_changed_readings_are_caught(a, b):
    assert compare(a, b).missing


def test_bare_scale_word_is_still_no_number():
    # "the millions of people" states no number
    assert not compare("the millions of people", "many people").missing
