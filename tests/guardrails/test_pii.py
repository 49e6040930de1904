"""PII detection: a table of what must be found (and how it is redacted) and what must not
(near-misses with bad checksums, ordinary numbers, dates, times, versions)."""

from __future__ import annotations

import pytest

from astromesh.errors import ConfigurationError
from astromesh.guardrails.base import Action, Side
from astromesh.guardrails.pii import Entity, PiiDetector, PiiGuardrail, parse_entities

FOUND = [
    # e-mail
    ("write to ana.lopez@example.com today", "write to [EMAIL] today"),
    ("Mail: j.doe+news@mail.example.co.uk.", "Mail: [EMAIL]."),
    ("<ops_team@sub-domain.example.io>", "<[EMAIL]>"),
    # phone numbers, international forms
    ("call +1 415-555-2671 now", "call [PHONE] now"),
    ("UK office: +44 20 7946 0958", "UK office: [PHONE]"),
    ("móvil +34 612 345 678", "móvil [PHONE]"),
    ("Berlin +49 30 901820", "Berlin [PHONE]"),
    ("ring 0044 20 7946 0958 please", "ring [PHONE] please"),
    ("tel:+33142685300", "tel:[PHONE]"),
    ("India +91 98765 43210", "India [PHONE]"),
    # credit cards (Luhn-valid)
    ("card 4111 1111 1111 1111 exp 12/27", "card [CREDIT_CARD] exp 12/27"),
    ("MC 5500-0000-0000-0004", "MC [CREDIT_CARD]"),
    ("amex 378282246310005", "amex [CREDIT_CARD]"),
    ("visa:4012888888881881.", "visa:[CREDIT_CARD]."),
    # IBAN (mod-97 valid)
    ("pay to DE89 3704 0044 0532 0130 00", "pay to [IBAN]"),
    ("IBAN GB82WEST12345698765432, thanks", "IBAN [IBAN], thanks"),
    ("FR14 2004 1010 0505 0001 3M02 606 THANKS", "[IBAN] THANKS"),
    ("ES9121000418450200051332", "[IBAN]"),
    # US SSN
    ("SSN 536-90-4399", "SSN [SSN]"),
    ("ssn: 123-45-6789.", "ssn: [SSN]."),
    # IP addresses
    ("server at 192.168.1.10 is down", "server at [IP_ADDRESS] is down"),
    ("from 8.8.8.8.", "from [IP_ADDRESS]."),
    ("v6 2001:db8::ff00:42:8329 seen", "v6 [IP_ADDRESS] seen"),
    ("loopback ::1 only", "loopback [IP_ADDRESS] only"),
    ("mapped ::ffff:10.0.0.1", "mapped [IP_ADDRESS]"),
    # secrets
    ("key AKIAIOSFODNN7EXAMPLE in env", "key [SECRET] in env"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = [SECRET]",
    ),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "token [SECRET]"),
    ("slack xoxb-1234567890-abcdefghijkl", "slack [SECRET]"),
    ("stripe sk_live_abcdefghijklmnop1234", "stripe [SECRET]"),
    ("openai sk-proj-abcdefghijklmnopqrstuvwxyz12", "openai [SECRET]"),
    ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "google [SECRET]"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefghijkXYZ",
        "jwt [SECRET]",
    ),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY----- ok",
        "[SECRET] ok",
    ),
    # several at once
    (
        "Ana (ana@x.org, +1 415-555-2671) paid with 4111111111111111",
        "Ana ([EMAIL], [PHONE]) paid with [CREDIT_CARD]",
    ),
]

NOT_FOUND = [
    "bad card 4111 1111 1111 1112",  # fails Luhn
    "order 1234 5678 9012 3456",  # fails Luhn
    "0000 0000 0000 0000 is not a card",  # Luhn-valid, no network starts with 0
    "DE89 3704 0044 0532 0130 01",  # IBAN checksum wrong
    "GB00WEST12345698765432",  # IBAN check digits wrong
    "SSN 000-12-3456",  # area 000 never issued
    "SSN 666-12-3456",  # area 666 never issued
    "078-05-1120 is the famous wallet-card SSN",  # blacklisted
    "meeting on 2024-05-01 at 10:30:00",
    "invoice 12/05/2024, total 1,234,567.89 EUR",
    "call 555-1234 or 4155552671",  # national forms: no region configured
    "order number 987654321012",
    "version 1.2.3 and 3.14159",
    "release 1.2.3.4.5",
    "999.1.1.1 is not an address",
    "std::vector<int> and a::b",
    "the ratio is 3:2:1",
    "user@localhost has no domain",
    "zip 94105, room 42, year 1999",
    "sk-short",
    "AKIA-not-a-key",
    "Ticket #2024-0042-7781",
]


@pytest.fixture(scope="module")
def detector():
    return PiiDetector()


@pytest.mark.parametrize(("text", "redacted"), FOUND)
def test_each_entity_is_found_and_redacted(detector, text, redacted):
    assert detector.redact(text)[0] == redacted


@pytest.mark.parametrize("text", NOT_FOUND)
def test_near_misses_and_ordinary_numbers_are_left_alone(detector, text):
    assert detector.redact(text) == (text, [])


def test_the_table_is_large_enough():
    assert len(FOUND) + len(NOT_FOUND) >= 40


def test_national_phone_formats_with_a_default_region():
    us = PiiDetector({Entity.PHONE}, default_region="US")
    assert us.redact("call (415) 555-2671 or 415.555.2671")[0] == "call [PHONE] or [PHONE]"


def test_entities_restrict_what_is_looked_for():
    only_email = PiiDetector(parse_entities(["Email"]))
    text = "ana@example.com 4111 1111 1111 1111"
    assert only_email.redact(text)[0] == "[EMAIL] 4111 1111 1111 1111"
    assert parse_entities(["ip", "api_key", "phone_number"]) == {
        Entity.IP_ADDRESS,
        Entity.SECRET,
        Entity.PHONE,
    }
    with pytest.raises(ConfigurationError, match="unknown entity 'passport'"):
        parse_entities(["passport"])


async def test_redact_mode_returns_the_redacted_text_and_counts():
    verdict = await PiiGuardrail().check("a@b.io and c@d.io, +44 20 7946 0958", None, Side.INPUT)
    assert verdict.action is Action.REDACT
    assert verdict.text == "[EMAIL] and [EMAIL], [PHONE]"
    assert verdict.findings == {"EMAIL": 2, "PHONE": 1}
    assert verdict.reason == "redacted EMAIL x2, PHONE x1"


async def test_block_mode_blocks_without_repeating_the_data():
    verdict = await PiiGuardrail(action="block").check(
        "my card is 4111 1111 1111 1111", None, Side.INPUT
    )
    assert verdict.action is Action.BLOCK
    assert verdict.text is None
    assert "4111" not in verdict.reason and "4111" not in verdict.user_message(Side.INPUT)
    assert verdict.user_message(Side.INPUT) == (
        "Your message contains personal data (credit card) and was blocked."
    )


async def test_clean_text_is_allowed():
    verdict = await PiiGuardrail().check("What's the weather in Paris?", None, Side.OUTPUT)
    assert verdict.action is Action.ALLOW and verdict.text is None
