#!/usr/bin/env python3
"""Writes engine/src/compliance/us_area_codes.tsv: one `NPA<TAB>ST` line per US area code.

The source is libphonenumber's data as shipped by the Python `phonenumbers` package (PyPI):
  - US states and DC: the English geocoding data for country code 1. Most area codes have a
    4-digit prefix `1NPA` naming the state ("Idaho", "Washington State", "Washington D.C."); the
    few that do not (203, 310, 713, 718 ...) only have longer prefixes named "City, ST", whose
    state suffix must then agree.
  - Territories (PR, VI, GU, AS, MP): the numbering plan's leading-digit patterns for those
    regions, because the geocoding data has no English names for them. Their region codes are
    also their USPS codes.
Canada and the Caribbean countries are left out: their numbers are not in the US.

Usage: python3 scripts/gen-us-area-codes.py [--check]
  (pip install phonenumbers first; --check compares with the file instead of writing it.)
"""

import re
import sys
from collections import Counter
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers.geodata import GEOCODE_DATA

OUT = Path(__file__).resolve().parent.parent / "engine/src/compliance/us_area_codes.tsv"

STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH",
    "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN",
    "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA",
    # The geocoding data says "Washington State" to tell it from the capital.
    "Washington State": "WA", "Washington": "WA",
    "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "Washington D.C.": "DC", "District of Columbia": "DC",
}
US_CODES = set(STATES.values())
TERRITORIES = ["PR", "VI", "GU", "AS", "MP"]

# Canadian provinces and territories as the geocoding data spells them (one is misspelt there).
CANADA = {
    "Alberta", "British Columbia", "British Colombia", "Manitoba", "New Brunswick",
    "Newfoundland and Labrador", "Nova Scotia", "Nova Scotia/Prince Edward Island", "Ontario",
    "Prince Edward Island", "Quebec", "Saskatchewan", "Northwest Territories/Nunavut/Yukon",
}
CANADA_CODES = {"AB", "BC", "MB", "NB", "NL", "NS", "ON", "PE", "QC", "SK", "NT", "NU", "YT"}


def state_of_name(name):
    """USPS code for a geocoding name, "CA-" for Canada, None when it names neither."""
    if name in STATES:
        return STATES[name]
    if name in CANADA:
        return "CA-"
    suffix = name.rsplit(", ", 1)
    if len(suffix) == 2:
        if suffix[1] in US_CODES:
            return suffix[1]
        if suffix[1] in CANADA_CODES:
            return "CA-"
    return None


def english_names(prefix):
    return {key: value["en"] for key, value in GEOCODE_DATA.items()
            if key.startswith(prefix) and "en" in value}


def regions_by_leading_digits(problems):
    """Area codes that the numbering plan gives to a NANP region other than US and CA."""
    claimed = {}
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]:
        pattern = PhoneMetadata.metadata_for_region(region).leading_digits
        if not pattern:
            # US and CA: every area code no other region claims.
            continue
        for npa in range(200, 1000):
            if re.fullmatch(f"(?:{pattern})", str(npa)):
                if str(npa) in claimed:
                    problems.append(f"{npa}: claimed by {claimed[str(npa)]} and {region}")
                claimed[str(npa)] = region
    for region in TERRITORIES:
        if region not in claimed.values():
            problems.append(f"{region}: no area code found in the numbering plan")
    return claimed


def states_from_geocoding(claimed, problems):
    table = {}
    for npa in range(200, 1000):
        npa = str(npa)
        names = english_names("1" + npa)
        if npa in claimed or not names:
            continue
        whole = names.get("1" + npa)
        if whole is not None:
            state = state_of_name(whole)
            if state is None:
                problems.append(f"{npa}: cannot tell the state of {whole!r}")
                continue
        else:
            states = Counter(state_of_name(name) for name in names.values())
            if None in states or len(states) != 1:
                problems.append(f"{npa}: its places disagree or are unknown: {dict(states)}")
                continue
            state = next(iter(states))
        if state != "CA-":
            table[npa] = state
    return table


def region_of(npa):
    """The region libphonenumber gives a plausible number in this area code, if any."""
    for exchange in ("2345678", "4567890", "8675309", "3334444"):
        number = phonenumbers.parse(f"+1{npa}{exchange}")
        if phonenumbers.is_valid_number(number):
            return phonenumbers.region_code_for_number(number)
    return None


def build():
    problems = []
    claimed = regions_by_leading_digits(problems)
    table = states_from_geocoding(claimed, problems)
    table.update({npa: region for npa, region in claimed.items() if region in TERRITORIES})
    # Cross-check against the numbering plan: a state's area code must belong to region US.
    for npa, state in sorted(table.items()):
        region = region_of(npa)
        expected = state if state in TERRITORIES else "US"
        if region is not None and region != expected:
            problems.append(f"{npa}: table says {state}, numbering plan says region {region}")
    return table, problems


def render(table):
    lines = [
        "# US area code -> USPS state, DC or territory code. Generated by scripts/gen-us-area-codes.py",
        f"# from phonenumbers {phonenumbers.__version__} (libphonenumber geocoding and numbering data). Do not edit.",
    ]
    lines += [f"{npa}\t{table[npa]}" for npa in sorted(table)]
    return "\n".join(lines) + "\n"


def main():
    table, problems = build()
    for problem in problems:
        print(f"gen-us-area-codes: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    text = render(table)
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            print(f"gen-us-area-codes: {OUT} is out of date", file=sys.stderr)
            sys.exit(1)
        return
    OUT.write_text(text)
    print(f"gen-us-area-codes: wrote {len(table)} area codes to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
