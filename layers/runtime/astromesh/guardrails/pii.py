"""``pii_detection``: find personal data and secrets; redact them (default) or block.

YAML: ``action: redact | block`` and optionally ``entities`` (default: all):

==============  ============================================================  ==================
entity          how it is recognised                                          placeholder
==============  ============================================================  ==================
``email``       an address with a dotted domain and a TLD                     ``[EMAIL]``
``phone``       ``phonenumbers`` (valid numbers only) written in international  ``[PHONE]``
                form (``+44 20 ...`` or ``0044 20 ...``); national forms too
                when a ``default_region`` is given
``credit_card`` 13-19 digits (spaces or dashes allowed), a card network's      ``[CREDIT_CARD]``
                first digit, and a valid Luhn checksum
``iban``        country code, check digits and BBAN passing ISO 13616's        ``[IBAN]``
                mod-97 check and the country's format (``python-stdnum``)
``ssn``         US SSN written ``AAA-GG-SSSS`` with a valid area, group and    ``[SSN]``
                serial (never-issued and advertised numbers refused)
``ip_address``  IPv4 and IPv6 addresses that parse as such (IPv6 with at least  ``[IP_ADDRESS]``
                one decimal digit, so ``a::b`` scopes in code are left alone)
``secret``      AWS access key ids (``AKIA...``) and secret keys in             ``[SECRET]``
                assignments, GitHub, Slack, Stripe, OpenAI and Google API
                keys, JWTs and PEM private keys
==============  ============================================================  ==================

Checksums are what keep ordinary numbers out: an order number that fails Luhn is not a
card, a string shaped like an IBAN whose mod-97 fails is not one, and a date is never a
phone number (phones need their international prefix unless a region is configured).
Where two findings overlap, the more specific wins (a secret over an e-mail over an IBAN
over a card over an SSN over an IP over a phone).

``phonenumbers`` and ``python-stdnum`` come with the ``guardrails`` extra; they are imported
when a guardrail that needs them is built, and a missing one is a configuration error that
says what to install.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from astromesh.errors import ConfigurationError
from astromesh.guardrails.base import Guardrail, Side, Verdict

if TYPE_CHECKING:
    from astromesh.runs.state import RunState


class Entity(StrEnum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    CREDIT_CARD = "CREDIT_CARD"
    IBAN = "IBAN"
    SSN = "SSN"
    IP_ADDRESS = "IP_ADDRESS"
    SECRET = "SECRET"

    @property
    def placeholder(self) -> str:
        return f"[{self.value}]"


_PRIORITY = [
    Entity.SECRET,
    Entity.EMAIL,
    Entity.IBAN,
    Entity.CREDIT_CARD,
    Entity.SSN,
    Entity.IP_ADDRESS,
    Entity.PHONE,
]

ENTITY_NAMES: dict[str, Entity] = {
    "email": Entity.EMAIL,
    "email_address": Entity.EMAIL,
    "phone": Entity.PHONE,
    "phone_number": Entity.PHONE,
    "credit_card": Entity.CREDIT_CARD,
    "card": Entity.CREDIT_CARD,
    "iban": Entity.IBAN,
    "ssn": Entity.SSN,
    "us_ssn": Entity.SSN,
    "ip": Entity.IP_ADDRESS,
    "ip_address": Entity.IP_ADDRESS,
    "secret": Entity.SECRET,
    "secrets": Entity.SECRET,
    "api_key": Entity.SECRET,
    "aws_key": Entity.SECRET,
}
"""YAML ``entities`` names (case-insensitive) and what they select."""


@dataclass(frozen=True, slots=True)
class Finding:
    start: int
    end: int
    entity: Entity


def parse_entities(names: Iterable[str] | None) -> frozenset[Entity]:
    """The entities selected by YAML ``entities`` (all when ``None``).

    Raises:
        ConfigurationError: an unknown name (with the known ones).
    """
    if names is None:
        return frozenset(Entity)
    chosen = set()
    for name in names:
        key = name.strip().lower()
        if key not in ENTITY_NAMES:
            known = ", ".join(sorted({e.value.lower() for e in Entity}))
            raise ConfigurationError(
                f"pii_detection: unknown entity {name!r}; known entities: {known}"
            )
        chosen.add(ENTITY_NAMES[key])
    return frozenset(chosen)


# -- detectors: each returns the spans of one entity ---------------------------------------

_EMAIL_RE = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
)
_CARD_RE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
_IBAN_RE = re.compile(r"(?<![A-Z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_SSN_RE = re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])")
_IPV4_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6_RE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})(?![\w:]|\.\w)"
)
_IDD_RE = re.compile(r"(?<![\d+])00(?=[1-9])")
_SECRET_RES = [
    re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[0-9A-Z]{16}\b"),
    re.compile(
        r"(?i)\baws_?secret_?access_?key\b[\"']?\s*[:=]\s*[\"']?(?P<value>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
    ),
    re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255}\b"),
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,255}\b"),
    re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+"),
    re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}\b"),
    re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    re.compile(
        r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]+?-----END (?:[A-Z]+ )*PRIVATE KEY-----"
    ),
]
_CARD_FIRST_DIGITS = frozenset("23456")


def _emails(text: str) -> Iterable[tuple[int, int]]:
    return ((m.start(), m.end()) for m in _EMAIL_RE.finditer(text))


def _secrets(text: str) -> Iterable[tuple[int, int]]:
    for pattern in _SECRET_RES:
        for m in pattern.finditer(text):
            group = "value" if "value" in pattern.groupindex else 0
            yield m.start(group), m.end(group)


def _ssns(text: str) -> Iterable[tuple[int, int]]:
    from stdnum.us import ssn

    return ((m.start(), m.end()) for m in _SSN_RE.finditer(text) if ssn.is_valid(m.group()))


def _cards(text: str) -> Iterable[tuple[int, int]]:
    from stdnum import luhn

    for m in _CARD_RE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and digits[0] in _CARD_FIRST_DIGITS and luhn.is_valid(digits):
            yield m.start(), m.end()


def _ibans(text: str) -> Iterable[tuple[int, int]]:
    """Candidates are shortened character by character until one validates, so trailing
    upper-case words or digits written after an IBAN do not hide it."""
    from stdnum import iban

    for m in _IBAN_RE.finditer(text):
        raw = m.group()
        for end in range(len(raw), 14, -1):
            if raw[end - 1] == " ":
                continue
            if iban.is_valid(raw[:end]):
                yield m.start(), m.start() + end
                break


def _ips(text: str) -> Iterable[tuple[int, int]]:
    for pattern in (_IPV4_RE, _IPV6_RE):
        for m in pattern.finditer(text):
            candidate = m.group()
            if pattern is _IPV6_RE and not re.search(r"\d", candidate):
                continue  # "a::b" is a valid address but far likelier a C++ or Ruby scope
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                continue
            yield m.start(), m.end()


def _phones(default_region: str | None) -> Callable[[str], Iterable[tuple[int, int]]]:
    import phonenumbers

    def find(text: str) -> Iterable[tuple[int, int]]:
        # "0044 20 ..." -> " +44 20 ...": same length, so spans map back unchanged.
        shadow = _IDD_RE.sub(" +", text)
        for match in phonenumbers.PhoneNumberMatcher(
            shadow, default_region, leniency=phonenumbers.Leniency.VALID
        ):
            start = match.start
            if shadow[start] == "+" and text[start] == "0" and start > 0:
                start -= 1  # the IDD "00" we rewrote
            yield start, match.end

    return find


class PiiDetector:
    """Finds the selected entities in text (used by the guardrail; usable on its own).

    Raises:
        ConfigurationError: an entity's library (``phonenumbers``, ``python-stdnum``) is
            not installed.
    """

    def __init__(
        self, entities: Iterable[Entity] | None = None, *, default_region: str | None = None
    ) -> None:
        self.entities = frozenset(entities) if entities is not None else frozenset(Entity)
        self._detectors: dict[Entity, Callable[[str], Iterable[tuple[int, int]]]] = {}
        for entity in self.entities:
            self._detectors[entity] = self._detector(entity, default_region)

    @staticmethod
    def _detector(
        entity: Entity, default_region: str | None
    ) -> Callable[[str], Iterable[tuple[int, int]]]:
        try:
            if entity is Entity.PHONE:
                return _phones(default_region)
            if entity in (Entity.CREDIT_CARD, Entity.IBAN, Entity.SSN):
                import stdnum  # noqa: F401 - fail at build time, not on the first message
        except ImportError as exc:
            raise ConfigurationError(
                f"pii_detection of {entity.value} needs the '{exc.name}' package: "
                "pip install 'astromesh[guardrails]'"
            ) from None
        return {
            Entity.EMAIL: _emails,
            Entity.CREDIT_CARD: _cards,
            Entity.IBAN: _ibans,
            Entity.SSN: _ssns,
            Entity.IP_ADDRESS: _ips,
            Entity.SECRET: _secrets,
        }[entity]

    def find(self, text: str) -> list[Finding]:
        """Non-overlapping findings in text order; on overlap the more specific entity wins."""
        found = [
            Finding(start, end, entity)
            for entity, detect in self._detectors.items()
            for start, end in detect(text)
            if end > start
        ]
        found.sort(key=lambda f: (_PRIORITY.index(f.entity), -(f.end - f.start), f.start))
        kept: list[Finding] = []
        for finding in found:
            if all(finding.end <= k.start or finding.start >= k.end for k in kept):
                kept.append(finding)
        return sorted(kept, key=lambda f: f.start)

    def redact(self, text: str) -> tuple[str, list[Finding]]:
        """``text`` with each finding replaced by its typed placeholder."""
        findings = self.find(text)
        out: list[str] = []
        last = 0
        for finding in findings:
            out.append(text[last : finding.start])
            out.append(finding.entity.placeholder)
            last = finding.end
        out.append(text[last:])
        return "".join(out), findings


class PiiGuardrail(Guardrail):
    """Redacts (or blocks on) personal data and secrets.

    Args:
        action: ``redact`` replaces findings with placeholders; ``block`` refuses the text.
        entities: which entities to look for (default: all).
        default_region: ISO country code under which national phone formats are read
            (``"US"`` finds ``(415) 555-2671``); ``None`` finds international forms only,
            which keeps ordinary numbers from being taken for phones.
    """

    type: ClassVar[str] = "pii_detection"

    def __init__(
        self,
        *,
        action: str = "redact",
        entities: Iterable[Entity] | None = None,
        default_region: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.action = action
        self.detector = PiiDetector(entities, default_region=default_region)

    @classmethod
    def from_config(cls, cfg: Any, **kwargs: Any) -> PiiGuardrail:
        return cls(action=cfg.action, entities=parse_entities(cfg.entities), **kwargs)

    async def check(self, text: str, run: RunState | None, side: Side) -> Verdict:
        redacted, findings = self.detector.redact(text)
        if not findings:
            return Verdict.allow(self.name)
        counts = dict(Counter(f.entity.value for f in findings))
        summary = ", ".join(f"{kind} x{n}" for kind, n in sorted(counts.items()))
        if self.action == "block":
            kinds = ", ".join(sorted(k.lower().replace("_", " ") for k in counts))
            subject = side.subject
            return Verdict.block(
                self.name,
                f"personal data found: {summary}",
                message=f"{subject} contains personal data ({kinds}) and was blocked.",
                findings=counts,
            )
        return Verdict.redact(self.name, redacted, f"redacted {summary}", counts)
