"""Materiality: whether a section change is formatting, editorial or material, and the evidence for it."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Any, Literal, get_args
from urllib.parse import unquote

from babel import Locale

from addendum.errors import ConfigError
from addendum.ids import LANGUAGE_PATTERN
from addendum.policy.markup import markdown
from addendum.policy.model import Policy
from addendum.policy.resolve import normalise

Level = Literal["none", "formatting", "editorial", "material"]
LEVELS: tuple[Level, ...] = ("none", "formatting", "editorial", "material")
ChangeKind = Literal["added", "removed", "modified", "moved", "renamed", "unchanged"]
CHANGE_KINDS: frozenset[str] = frozenset(get_args(ChangeKind))

# WP260 rev.01 ¶29–31: changes to these are the ones readers must be told about before they apply.
DEFAULT_MATERIAL_TAGS = ("controller", "purposes", "legal-basis", "recipients", "transfers", "retention", "rights", "complaint")

FORMATTING_ONLY = "changes only punctuation/whitespace/case/quotes/markup"

MATERIALITY_KEYS: dict[str, str] = {
    "material_tags": "Section tags that make any change of wording material (replaces the default list).",
    "extra_terms": "Per language, terms whose addition or removal is material, e.g. { en = [\"cookie wall\"] }.",
    "ignore_terms": "Text that never counts as evidence, e.g. the controller's own name.",
    "organisations": "Names recognised as organisations, in addition to the built-in list of processors.",
    "added_removed_sections_material": "Whether adding or removing a section is material (default true).",
}


def max_level(levels: Iterable[Level]) -> Level:
    """The highest of the levels (none < formatting < editorial < material); "none" for no levels."""
    return max(levels, key=LEVELS.index, default="none")


@dataclass(frozen=True)
class SectionEdit:
    """One section's change between two versions, as materiality needs it; texts are Markdown, "" when absent."""

    ref: str
    section_id: str
    kinds: frozenset[str]
    old_text: str = ""
    new_text: str = ""
    old_heading: str = ""
    new_heading: str = ""
    tags: tuple[str, ...] = ()
    language: str = "en"

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - CHANGE_KINDS
        if unknown:
            raise ValueError(f"unknown change kind(s) {sorted(unknown)} for {self.ref}; known: {sorted(CHANGE_KINDS)}")


@dataclass(frozen=True)
class Classification:
    """A suggested level and the reasons for it, each reading "<level>: <§ref> <evidence>"."""

    level: Level
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rules:
    """What counts as material for one policy; the defaults need no configuration."""

    material_tags: tuple[str, ...] = DEFAULT_MATERIAL_TAGS
    extra_terms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ignore_terms: tuple[str, ...] = ()
    organisations: tuple[str, ...] = ()
    added_removed_sections_material: bool = True


DEFAULT_RULES = Rules()


# ---------------------------------------------------------------------------------------------------------
# Vocabulary. Built-in lists cover English and Dutch and apply to every language: Dutch policies often
# use English terms ("Privacy Shield", "cookies"), and the words of one language rarely occur in the other.

KNOWN_ORGANISATIONS = (
    "Google", "Google Analytics", "Google Tag Manager", "Google Ads", "Google Maps", "Google Fonts", "Google Cloud",
    "YouTube", "DoubleClick", "AdSense", "Facebook", "Meta", "Instagram", "WhatsApp", "LinkedIn", "Twitter",
    "TikTok", "Pinterest", "Snapchat", "Microsoft", "Microsoft Clarity", "Bing", "Azure", "Apple", "Amazon",
    "Amazon Web Services", "AWS", "Cloudflare", "Akamai", "Fastly", "MailChimp", "Intuit", "Sendinblue", "Brevo",
    "Mailgun", "SendGrid", "Mailjet", "Twilio", "Campaign Monitor", "ActiveCampaign", "Klaviyo", "HubSpot",
    "Salesforce", "Zendesk", "Intercom", "Freshdesk", "Hotjar", "Matomo", "Plausible", "Mixpanel", "FullStory",
    "Smartlook", "Crazy Egg", "Optimizely", "Sentry", "Bugsnag", "Datadog", "New Relic", "Moneybird",
    "Exact Online", "Teamleader", "Mollie", "Stripe", "PayPal", "Adyen", "Klarna", "Worldline", "Bancontact",
    "Shopify", "WooCommerce", "WordPress", "Wix", "Squarespace", "Typeform", "SurveyMonkey", "Calendly", "Slack",
    "Dropbox", "Vimeo", "Disqus", "UserReport", "Getsitecontrol", "Trustpilot", "Zapier", "Airtable", "GitHub",
    "GitLab", "Vercel", "Netlify", "Heroku", "DigitalOcean", "OVHcloud", "OVH", "Hetzner", "Combell", "TransIP",
    "PostNL", "DHL", "FedEx", "Sendcloud", "Cookiebot", "OneTrust", "Usercentrics", "Didomi", "Criteo",
    "Taboola", "Outbrain",
)

def _word_list(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that are capitalised for other reasons than naming an organisation: stripped from either end of a
# run of capitalised words (English, then Dutch).
FUNCTION_WORDS = _word_list("""
i we you our your the a an this that these those if when while where who what which how why in on at for with
to of and or but as by from it its they their he she his her all any some each every no not please also only
even like such after before since until unless although because so then there here do does yes dear note
ik wij je jij u jouw uw onze ons de het een dit dat deze die als indien wanneer waar wie wat welke hoe waarom
op bij voor met van aan uit om te tot en maar zoals door naar alle elke geen niet ook enkel alleen zelfs zij
ze hun hij zijn haar er hier daar dan wel nog na sinds tenzij omdat dus daarom hiervoor naast zodat eventueel
""")
# Capitalised words that alone never name an organisation; a run made only of these is not a name.
COMMON_WORDS = _word_list("""
privacy policy policies cookie cookies statement notice terms conditions service services data personal
information regulation general protection right rights article section website websites site framework act
directive law agreement clauses decision customer customers user users account newsletter internet web email
e-mail controller processor european belgian dutch english french german american british international
january february march april may june july august september october november december monday tuesday
wednesday thursday friday saturday sunday update updates contact support team
privacyverklaring privacybeleid cookiebeleid cookieverklaring gegevens persoonsgegevens verordening artikel
wet richtlijn richtlijnen algemene gegevensbescherming nieuwsbrief klant klanten gebruiker gebruikers dienst
diensten europese belgische nederlandse engelse franse duitse amerikaanse nederlands engels frans duits
januari februari maart mei juni juli augustus oktober maandag dinsdag woensdag donderdag vrijdag zaterdag
zondag
gdpr avg rgpd dsgvo ccpa faq url ip id pdf sms html http https ssl tls api vat btw ceo nb ok ps eur usd cet
cest gmt utc am pm tv pc it hr ict
""")
CONNECTORS = frozenset({"of", "van", "der", "den", "von", "de", "du", "la", "le", "del", "di"})
ABBREVIATIONS = frozenset({"eg", "ie", "etc", "bv", "vb", "nr", "no", "st", "mr", "mrs", "ms", "dr", "prof", "inc",
                           "ltd", "co", "corp", "vs", "cf", "incl", "excl", "art", "resp", "ca"})

# Countries come from Babel's territory names in both languages; these are the other ways texts name them.
COUNTRY_VARIANTS: dict[str, tuple[str, ...]] = {
    "US": ("U.S.", "US", "USA", "U.S.A.", "United States of America", "VS", "V.S.", "Verenigde Staten van Amerika"),
    "GB": ("UK", "U.K.", "Great Britain", "Britain", "England", "VK", "Groot-Brittannië", "Engeland"),
    "EU": ("EU", "E.U."),
    "EEA": ("EEA", "European Economic Area", "EER", "Europese Economische Ruimte"),
    "NL": ("Holland",),
    "TR": ("Turkey", "Turkije"),
    "CZ": ("Czech Republic", "Tsjechische Republiek"),
}
# Territory codes that are not places a text sends data to.
NOT_COUNTRIES = frozenset({"001", "EZ", "UN", "ZZ", "QO", "XA", "XB"})

DATA_CATEGORIES: dict[str, tuple[str, ...]] = {
    "e-mail address": ("email address", "e-mail address", "mail address", "e-mailadres", "emailadres", "mailadres"),
    "phone number": ("phone number", "telephone number", "mobile number", "mobile phone number", "telefoonnummer",
                     "gsm-nummer", "gsmnummer", "mobiel nummer"),
    "name": ("first name", "last name", "family name", "surname", "full name", "firstname", "lastname", "voornaam",
             "achternaam", "familienaam", "volledige naam"),
    "birthdate": ("birthdate", "date of birth", "birth date", "birthday", "age", "geboortedatum", "geboortejaar",
                  "verjaardag", "leeftijd"),
    "postal address": ("street address", "postal address", "home address", "billing address", "delivery address",
                       "shipping address", "postadres", "woonadres", "factuuradres", "leveringsadres", "afleveradres",
                       "huisadres"),
    "location": ("location", "geolocation", "location data", "GPS", "locatie", "locatiegegevens", "geolocatie"),
    "IP address": ("IP address", "IP-address", "IP-adres", "IP adres"),
    "payment details": ("payment details", "payment information", "payment data", "credit card", "debit card",
                        "bank account", "bank account number", "IBAN", "betaalgegevens", "betalingsgegevens",
                        "bankrekeningnummer", "rekeningnummer", "bankrekening", "kredietkaart", "creditcard",
                        "bankkaart", "betaalkaart"),
    "health": ("health", "health data", "medical data", "medical records", "gezondheid", "gezondheidsgegevens",
               "medische gegevens"),
    "identity number": ("national identification number", "social security number", "passport", "identity card",
                        "rijksregisternummer", "burgerservicenummer", "BSN", "paspoort", "identiteitskaart"),
    "credentials": ("password", "username", "user name", "wachtwoord", "gebruikersnaam"),
    "device identifier": ("device identifier", "device ID", "advertising ID", "cookie ID", "apparaat-ID"),
    "biometric data": ("biometric data", "fingerprint", "facial recognition", "biometrische gegevens",
                       "vingerafdruk", "gezichtsherkenning"),
    "genetic data": ("genetic data", "genetische gegevens"),
    "religion": ("religion", "religious beliefs", "godsdienst", "religie", "levensbeschouwing"),
    "political opinions": ("political opinions", "politieke opvattingen", "politieke voorkeur"),
    "sexual orientation": ("sexual orientation", "sex life", "seksuele geaardheid", "seksueel gedrag"),
    "ethnic origin": ("racial or ethnic origin", "ethnic origin", "etnische afkomst"),
    "criminal records": ("criminal convictions", "criminal records", "strafrechtelijke gegevens", "strafblad"),
    "trade union membership": ("trade union membership", "vakbondslidmaatschap"),
    "gender": ("gender", "geslacht"),
    "company number": ("VAT number", "company number", "btw-nummer", "ondernemingsnummer", "KBO-nummer"),
    "photos": ("photo", "photograph", "camera images", "voice recording", "foto", "camerabeelden", "spraakopname"),
    "browsing behaviour": ("browsing history", "browsing behaviour", "browsing behavior", "surfgedrag", "klikgedrag"),
}
# Legal bases (GDPR Art. 6) and transfer mechanisms (Art. 45–49), each group one key.
LEGAL_TERMS: dict[str, tuple[str, ...]] = {
    "privacy shield": ("Privacy Shield",),
    "data privacy framework": ("Data Privacy Framework",),
    "safe harbor": ("Safe Harbor", "Safe Harbour"),
    "standard contractual clauses": ("standard contractual clauses", "standard contractual clause", "SCCs", "SCC",
                                     "model clauses", "model contractual clauses", "standaardcontractbepalingen",
                                     "modelcontractbepalingen", "standaardcontractuele bepalingen"),
    "binding corporate rules": ("binding corporate rules", "BCRs", "BCR", "bindende bedrijfsvoorschriften"),
    "adequacy decision": ("adequacy decision", "adequacy decisions", "adequaatheidsbesluit",
                          "adequaatheidsbesluiten", "adequaatheidsbeslissing"),
    "consent": ("consent", "toestemming", "akkoord"),
    "explicit consent": ("explicit consent", "uitdrukkelijke toestemming"),
    "legitimate interest": ("legitimate interest", "legitimate interests", "gerechtvaardigd belang",
                            "gerechtvaardigde belangen", "gerechtvaardigde belang"),
    "contract": ("performance of a contract", "uitvoering van een overeenkomst", "uitvoering van de overeenkomst"),
    "legal obligation": ("legal obligation", "legal obligations", "wettelijke verplichting", "wettelijke verplichtingen"),
    "vital interest": ("vital interest", "vital interests", "vitaal belang", "vitale belangen"),
    "public interest": ("public interest", "public task", "official authority", "algemeen belang", "openbaar gezag"),
    "automated decisions": ("automated decision-making", "automated decision making", "profiling",
                            "geautomatiseerde besluitvorming", "profilering"),
}

NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "eighteen": 18, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90, "hundred": 100,
    "een": 1, "één": 1, "twee": 2, "drie": 3, "vier": 4, "vijf": 5, "zes": 6, "zeven": 7, "acht": 8, "negen": 9,
    "tien": 10, "elf": 11, "twaalf": 12, "vijftien": 15, "achttien": 18, "twintig": 20, "dertig": 30,
    "veertig": 40, "vijftig": 50, "zestig": 60, "negentig": 90, "honderd": 100,
}
TIME_UNITS = {
    "second": "second", "seconds": "second", "minute": "minute", "minutes": "minute", "hour": "hour",
    "hours": "hour", "day": "day", "days": "day", "business day": "business day", "business days": "business day",
    "working day": "business day", "working days": "business day", "week": "week", "weeks": "week",
    "month": "month", "months": "month", "year": "year", "years": "year",
    "seconde": "second", "seconden": "second", "minuut": "minute", "minuten": "minute", "uur": "hour",
    "uren": "hour", "dag": "day", "dagen": "day", "werkdag": "business day", "werkdagen": "business day",
    "weken": "week", "maand": "month", "maanden": "month", "jaar": "year", "jaren": "year",
}
MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|"
          "Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec|januari|februari|maart|mei|juni|juli|augustus|oktober")
TLDS = ("com|org|net|io|eu|nl|be|de|fr|uk|co|info|biz|app|dev|ai|us|ca|au|ch|at|lu|es|it|se|dk|no|fi|ie|pl|pt|"
        "cz|gov|edu|cloud|shop|tech")

# Evidence kinds, in the order their reasons are listed; value kinds change meaning even when only
# punctuation or case changes ("2.5 years" → "25 years"), so they count for formatting-only edits too.
EVIDENCE_KINDS = ("organisation", "country", "data category", "term", "URL", "e-mail address", "duration", "number")
VALUE_KINDS = frozenset({"URL", "e-mail address", "duration", "number"})
ARTICLE = {"URL": "a", "e-mail address": "an", "duration": "a", "number": "a"}


# ---------------------------------------------------------------------------------------------------------
# Finding evidence in text.

@dataclass(frozen=True)
class _Evidence:
    kind: str
    key: str
    text: str


@dataclass(frozen=True)
class _Matcher:
    """A pattern whose matches claim their text: `kind` None claims it without counting it as evidence."""

    kind: str | None
    pattern: re.Pattern[str]
    key: Callable[[re.Match[str]], tuple[str, str]]  # (comparison key, text shown in the reason)


@dataclass(frozen=True)
class _Token:
    word: str
    start: int
    end: int
    initial: bool  # starts a sentence, so its capital says nothing about it being a name
    joined: bool  # only whitespace (or "&") separates it from the previous token
    after_organisation: bool  # follows a known organisation directly ("Facebook Pixel")


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
                         "\u00a0": " "})
_WHITESPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+(?:['&.-][^\W_]+)*")
_ALNUM_RUN = re.compile(r"[^\W_]+")


def _bounded(alternation: str) -> str:
    return rf"(?<!\w)(?:{alternation})(?!\w)"


def _phrase(phrase: str) -> str:
    """A phrase as a pattern: any whitespace between its words; acronyms match case-sensitively."""
    body = r"\s+".join(re.escape(word) for word in phrase.split())
    return body if phrase.isupper() else f"(?i:{body})"


def _name(name: str) -> str:
    """An organisation's name as a pattern: its first letter as written, the rest in any case."""
    if name.isupper():
        return re.escape(name)
    rest = r"\s+".join(re.escape(word) for word in name[1:].split(" "))
    return re.escape(name[0]) + (f"(?i:{rest})" if rest else "")


def _alternation(phrases: Iterable[str], render: Callable[[str], str]) -> str:
    return "|".join(render(p) for p in sorted(set(phrases), key=lambda p: (-len(p), p)))


def _fold(text: str) -> str:
    return _WHITESPACE.sub(" ", text.translate(_QUOTES)).strip().casefold()


def _alnum_key(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def _as_written(match: re.Match[str]) -> tuple[str, str]:
    return match.group(), match.group()


def _url_key(match: re.Match[str]) -> tuple[str, str]:
    text = match.group().rstrip(".,;:!?'\"")
    bare = re.sub(r"^(?:https?://)?(?:www\.)?", "", text, flags=re.IGNORECASE)
    host, _, path = bare.partition("/")
    return f"{host.lower()}/{unquote(path).rstrip('/')}", text


def _duration_key(match: re.Match[str]) -> tuple[str, str]:
    amount = match["amount"].casefold()
    value = str(NUMBER_WORDS[amount]) if amount in NUMBER_WORDS else amount.replace(",", ".")
    return f"{value} {TIME_UNITS[_fold(match['unit'])]}", match.group()


@lru_cache(maxsize=1)
def _countries() -> dict[str, str]:
    """Country and region names in English and Dutch → territory code."""
    names: dict[str, str] = {}
    for language in ("en", "nl"):
        for code, name in Locale.parse(language).territories.items():
            if code not in NOT_COUNTRIES and name[:1].isupper():
                names[name.translate(_QUOTES)] = code
    for code, variants in COUNTRY_VARIANTS.items():
        names.update(dict.fromkeys(variants, code))
    return names


def _grouped(groups: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    return {_fold(phrase): key for key, phrases in groups.items() for phrase in phrases}


@lru_cache(maxsize=32)
def _matchers(extra_terms: tuple[str, ...], ignore_terms: tuple[str, ...],
              organisations: tuple[str, ...]) -> tuple[_Matcher, ...]:
    """Every pattern, most specific first: a match claims its text, so later patterns cannot reuse it."""
    countries = _countries()
    legal = _grouped(LEGAL_TERMS)
    categories = _grouped(DATA_CATEGORIES)
    units = _alternation(TIME_UNITS, lambda u: r"\s+".join(u.split()))
    amounts = _alternation(NUMBER_WORDS, re.escape)
    known = (*KNOWN_ORGANISATIONS, *organisations)
    matchers = [
        _Matcher(None, re.compile(_bounded(_alternation(ignore_terms, _phrase)) if ignore_terms else r"(?!)"), _as_written),
        _Matcher(None, re.compile(r"\{\{.*?\}\}|\{%.*?%\}"), _as_written),
        # Dates are left out on purpose: "last changed on 19 May 2018" changes with every version.
        _Matcher(None, re.compile(
            rf"(?i)(?<!\w)(?:\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{MONTHS})\.?,?\s+\d{{4}}"
            rf"|(?:{MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|(?:{MONTHS})\s+\d{{4}}"
            r"|\d{4}-\d{2}-\d{2}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4})(?!\w)"), _as_written),
        _Matcher("e-mail address", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
                 lambda m: (m.group().lower(), m.group())),
        _Matcher("URL", re.compile(r"(?i)(?:https?://|www\.)[^\s<>()\[\]{}\"'`]+"), _url_key),
        _Matcher("URL", re.compile(rf"(?<![\w@./-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+(?:{TLDS})"
                                   r"(?![\w-])(?:/[^\s<>()\[\]{}\"'`]*)?"), _url_key),
        _Matcher("term", re.compile(_bounded(_alternation(extra_terms, _phrase)) if extra_terms else r"(?!)"),
                 lambda m: ("extra " + _fold(m.group()), m.group())),
        _Matcher("term", re.compile(_bounded(_alternation(legal, _phrase))),
                 lambda m: (legal[_fold(m.group())], m.group())),
        _Matcher("data category", re.compile(rf"(?<!\w)(?P<term>{_alternation(categories, _phrase)})(?:'s|s|es|en)?(?!\w)"),
                 lambda m: (categories[_fold(m["term"])], m.group())),
        _Matcher("duration", re.compile(rf"(?i)(?<![\w.,])(?P<amount>\d+(?:[.,]\d+)?|{amounts})(?:\s+|-)"
                                        rf"(?:\(\d+\)\s+)?(?P<unit>{units})(?!\w)"), _duration_key),
        _Matcher("organisation", re.compile(rf"(?<!\w)(?P<name>{_alternation(known, _name)})(?:'s|s)?(?!\w)"),
                 lambda m: (_alnum_key(m["name"]), m["name"])),
        _Matcher("country", re.compile(_bounded(_alternation(countries, re.escape))),
                 lambda m: (countries[m.group()], m.group())),
        _Matcher("number", re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*(?!\w)"), _as_written),
    ]
    return tuple(matchers)


def _is_common(word: str) -> bool:
    folded = word.casefold()
    return folded in COMMON_WORDS or folded in FUNCTION_WORDS or folded.split("-")[0] in COMMON_WORDS


def _is_distinctive(word: str) -> bool:
    """CamelCase (MailChimp) or an acronym (AWS): a name even at the start of a sentence."""
    letters = [ch for ch in word if ch.isalpha()]
    return bool(re.search(r"[a-z][A-Z]", word)) or (len(letters) >= 2 and word.isupper())


def _ends_sentence(gap: str, previous: str) -> bool:
    if "\n" in gap or re.search(r"[!?…]", gap):
        return True
    abbreviation = "." in previous or len(previous) == 1 or previous.casefold() in ABBREVIATIONS
    return "." in gap and not abbreviation


def _tokens(text: str, owners: list[str | None], heading: bool) -> list[_Token]:
    tokens: list[_Token] = []
    previous_end, previous_word = 0, ""
    for match in _WORD.finditer(text):
        start, end = match.span()
        gap = text[previous_end:start]
        if any(owners[start:end]):
            tokens.append(_Token("", start, end, False, False, False))  # a claimed span breaks any run of names
        else:
            initial = heading or not previous_word or _ends_sentence(gap, previous_word)
            joined = bool(previous_word) and re.fullmatch(r"\s+|\s*&\s*", gap) is not None
            after = joined and previous_end > 0 and owners[previous_end - 1] == "organisation"
            tokens.append(_Token(match.group(), start, end, initial, joined, after))
        previous_end, previous_word = end, match.group()
    return tokens


def _names(text: str, owners: list[str | None], heading: bool) -> list[tuple[int, _Evidence]]:
    """Organisations no list knows: runs of capitalised words, minus sentence starts and common words.

    In a heading every word counts as a sentence start, because headings are often in Title Case.
    """
    runs: list[list[_Token]] = []
    for token in _tokens(text, owners, heading):
        capital = token.word[:1].isupper()
        continues_run = token.joined and runs and runs[-1] and (capital or token.word.casefold() in CONNECTORS)
        if continues_run:
            runs[-1].append(token)
        else:
            runs.append([token] if capital else [])
    found = []
    for run in runs:
        while run and (run[0].initial and not _is_distinctive(run[0].word) or run[0].word.casefold() in FUNCTION_WORDS):
            run.pop(0)
        while run and (run[-1].word.casefold() in FUNCTION_WORDS or run[-1].word.casefold() in CONNECTORS):
            run.pop()
        if not run or run[0].after_organisation or all(_is_common(t.word) for t in run):
            continue
        name = re.sub(r"'s$", "", text[run[0].start:run[-1].end])
        if sum(ch.isalpha() for ch in name) >= 2:
            found.append((run[0].start, _Evidence("organisation", _alnum_key(name), name)))
    return found


@lru_cache(maxsize=4096)
def _block_evidence(text: str, heading: bool, matchers: tuple[_Matcher, ...]) -> tuple[_Evidence, ...]:
    text = unicodedata.normalize("NFC", text.translate(_QUOTES))
    owners: list[str | None] = [None] * len(text)
    found: list[tuple[int, _Evidence]] = []
    for matcher in matchers:
        for match in matcher.pattern.finditer(text):
            start, end = match.span()
            if start == end or any(owners[start:end]):
                continue
            owners[start:end] = [matcher.kind or "claimed"] * (end - start)
            if matcher.kind is not None:
                key, shown = matcher.key(match)
                found.append((start, _Evidence(matcher.kind, key, shown)))
    found.extend(_names(text, owners, heading))
    return tuple(evidence for _, evidence in sorted(found, key=lambda item: item[0]))


@lru_cache(maxsize=4096)
def _plain(text: str, inline: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Markdown as plain text blocks (markup gone, link text kept) and its link targets."""
    blocks: list[str] = []
    targets: list[str] = []
    tokens = markdown().parseInline(text) if inline else markdown().parse(text)
    for token in tokens:
        if token.type == "inline":
            parts = []
            for child in token.children or ():
                if child.type in ("text", "code_inline"):
                    parts.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    parts.append(" " if child.type == "softbreak" else "\n")
                elif child.type == "link_open":
                    targets.append(unquote(str(child.attrs.get("href", ""))))
            blocks.append("".join(parts))
        elif token.type in ("fence", "code_block"):
            blocks.append(token.content)
    return tuple(blocks), tuple(targets)


def _evidence(heading: str, text: str, rules: Rules, language: str) -> tuple[_Evidence, ...]:
    matchers = _matchers(tuple(rules.extra_terms.get(language, ())), tuple(rules.ignore_terms), tuple(rules.organisations))
    heading_blocks, heading_targets = _plain(heading, inline=True)
    body_blocks, body_targets = _plain(text, inline=False)
    found: list[_Evidence] = []
    for block in heading_blocks:
        found.extend(_block_evidence(block, True, matchers))
    for block in (*body_blocks, *heading_targets, *body_targets):
        found.extend(_block_evidence(block, False, matchers))
    return tuple(found)


def _first_seen(evidence: tuple[_Evidence, ...]) -> dict[tuple[str, str], str]:
    seen: dict[tuple[str, str], str] = {}
    for item in evidence:
        seen.setdefault((item.kind, item.key), item.text)
    return seen


def _evidence_reasons(old: tuple[_Evidence, ...], new: tuple[_Evidence, ...], kinds: Iterable[str]) -> list[str]:
    """What the new text adds or removes, by kind; a single value replaced by another reads as a change."""
    old_first, new_first = _first_seen(old), _first_seen(new)
    wanted = set(kinds)
    reasons = []
    for kind in (k for k in EVIDENCE_KINDS if k in wanted):
        removed = [text for (k, key), text in old_first.items() if k == kind and (k, key) not in new_first]
        added = [text for (k, key), text in new_first.items() if k == kind and (k, key) not in old_first]
        label = "" if kind == "term" else f"{kind} "
        if kind in VALUE_KINDS and len(removed) == len(added) == 1:
            reasons.append(f'changes {ARTICLE[kind]} {kind}: "{removed[0]}" → "{added[0]}"')
            continue
        reasons.extend(f'removes {label}"{text}"' for text in removed)
        reasons.extend(f'adds {label}"{text}"' for text in added)
    return reasons


# ---------------------------------------------------------------------------------------------------------
# Comparing wording.

TextChange = Literal["same", "whitespace", "formatting", "wording"]
TEXT_CHANGES: tuple[TextChange, ...] = ("same", "whitespace", "formatting", "wording")
# Shorter words are left out of typo fixes: "sell" → "tell" or "data" → "date" change what a text says.
TYPO_MIN_LETTERS = 5


@dataclass(frozen=True)
class _Wording:
    change: TextChange
    typos: tuple[tuple[str, str], ...] = ()


def _one_edit_apart(a: str, b: str) -> bool:
    """One letter inserted, deleted, replaced, or two neighbours swapped."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diffs) == 1 or (len(diffs) == 2 and diffs[1] == diffs[0] + 1
                                   and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]])
    short, long = sorted((a, b), key=len)
    common = next((i for i, (x, y) in enumerate(zip(short, long, strict=False)) if x != y), len(short))
    return short[common:] == long[common + 1:]


def _typos(old: str, new: str) -> tuple[tuple[str, str], ...] | None:
    """The misspellings the new text corrects, or None when anything else about its words changed."""
    old_words = list(_ALNUM_RUN.finditer(unicodedata.normalize("NFKC", old)))
    new_words = list(_ALNUM_RUN.finditer(unicodedata.normalize("NFKC", new)))
    matcher = SequenceMatcher(None, [w.group().casefold() for w in old_words],
                              [w.group().casefold() for w in new_words], autojunk=False)
    typos: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        before = "".join(w.group().casefold() for w in old_words[i1:i2])
        after = "".join(w.group().casefold() for w in new_words[j1:j2])
        if before == after:  # words split or joined
            continue
        if not (before.isalpha() and after.isalpha() and min(len(before), len(after)) >= TYPO_MIN_LETTERS
                and _one_edit_apart(before, after)):
            return None
        shown_old = old_words[i1].string[old_words[i1].start():old_words[i2 - 1].end()]
        shown_new = new_words[j1].string[new_words[j1].start():new_words[j2 - 1].end()]
        typos.append((shown_old, shown_new))
    return tuple(dict.fromkeys(typos))


def _compare(old: str, new: str, inline: bool) -> _Wording:
    if old == new:
        return _Wording("same")
    # Decomposed, so a space put between a letter and its accent still reads as whitespace only.
    if unicodedata.normalize("NFD", _WHITESPACE.sub("", old)) == unicodedata.normalize("NFD", _WHITESPACE.sub("", new)):
        return _Wording("whitespace")
    old_plain = " ".join(_plain(old, inline)[0])
    new_plain = " ".join(_plain(new, inline)[0])
    # The raw comparison sees through emphasis and list markers; the plain one through link syntax.
    if _alnum_key(old) == _alnum_key(new) or _alnum_key(old_plain) == _alnum_key(new_plain):
        return _Wording("formatting")
    typos = _typos(old_plain, new_plain)
    if typos is None:
        return _Wording("wording")
    return _Wording("formatting", typos)


# ---------------------------------------------------------------------------------------------------------
# Classifying.

def classify_section(change: SectionEdit, rules: Rules = DEFAULT_RULES) -> Classification:
    """Suggest a level for one section's change, with a reason per piece of evidence (pure: no I/O)."""
    old_heading, new_heading = normalise(change.old_heading), normalise(change.new_heading)
    old_text, new_text = normalise(change.old_text), normalise(change.new_text)
    structural = [kind for kind in ("added", "removed") if kind in change.kinds]
    heading = _compare(old_heading, new_heading, inline=True)
    body = _compare(old_text, new_text, inline=False)
    overall = max(heading.change, body.change, key=TEXT_CHANGES.index)
    reworded = bool(structural) or overall == "wording"
    tags = ", ".join(t for t in dict.fromkeys(change.tags) if t in rules.material_tags)

    found: dict[Level, list[str]] = {level: [] for level in LEVELS}
    structural_level: Level = "material" if rules.added_removed_sections_material else "editorial"
    found[structural_level].extend(f"is {kind}" for kind in structural)
    if reworded and tags:
        found["material"].append(f"is tagged {tags}")
    evidence_kinds = EVIDENCE_KINDS if reworded else VALUE_KINDS if overall == "formatting" else ()
    if evidence_kinds:
        found["material"].extend(_evidence_reasons(_evidence(old_heading, old_text, rules, change.language),
                                                   _evidence(new_heading, new_text, rules, change.language),
                                                   evidence_kinds))
    if not structural:
        if heading.change == "wording":
            found["editorial"].append(f'renames "{old_heading}" → "{new_heading}"')
        if body.change == "wording":
            found["editorial"].append("rewords text")
        if "moved" in change.kinds:
            found["editorial"].append("is moved")
        typos = heading.typos + body.typos
        found["formatting"].extend(f'fixes a typo: "{old}" → "{new}"' for old, new in typos)
        if overall in ("whitespace", "formatting") and not typos:
            found["formatting"].append(FORMATTING_ONLY)
        if found["formatting"] and tags:
            found["formatting"].append(f"is tagged {tags}, but formatting alone is not material")
    level = max_level(lvl for lvl in LEVELS if found[lvl])
    return Classification(level, tuple(f"{level}: {change.ref} {reason}" for reason in dict.fromkeys(found[level])))


def classify_version(classifications: Iterable[Classification]) -> Classification:
    """A version's level is the highest of its changes; reasons are listed highest level first, each once."""
    ordered = sorted(classifications, key=lambda c: -LEVELS.index(c.level))
    reasons = dict.fromkeys(reason for c in ordered for reason in c.reasons)
    return Classification(max_level(c.level for c in ordered), tuple(reasons))


# ---------------------------------------------------------------------------------------------------------
# Configuration.

def rules_from_policy(policy: Policy) -> Rules:
    """The policy's [materiality] table as Rules; every bad key is reported at once, by name."""
    table = policy.settings.get("materiality", {})
    where = policy.config_file
    hint = "[materiality] accepts: " + ", ".join(sorted(MATERIALITY_KEYS))
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: 'materiality' must be a table, got {table!r}", hint)
    errors = [f"{where}: unknown key 'materiality.{key}'" for key in sorted(set(table) - set(MATERIALITY_KEYS))]

    def strings(key: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value):
            return tuple(value)
        errors.append(f"{where}: 'materiality.{key}' must be a list of non-empty strings, got {value!r}")
        return ()

    settings: dict[str, Any] = {}
    for key in ("material_tags", "ignore_terms", "organisations"):
        if key in table:
            settings[key] = strings(key, table[key])
    if "added_removed_sections_material" in table:
        value = table["added_removed_sections_material"]
        if isinstance(value, bool):
            settings["added_removed_sections_material"] = value
        else:
            errors.append(f"{where}: 'materiality.added_removed_sections_material' must be true or false, got {value!r}")
    extra = table.get("extra_terms", {})
    if not isinstance(extra, dict):
        errors.append(f"{where}: 'materiality.extra_terms' must be a table of language = [terms], got {extra!r}")
        extra = {}
    for language in extra:
        if not LANGUAGE_PATTERN.fullmatch(language) or language not in policy.languages:
            errors.append(f"{where}: 'materiality.extra_terms.{language}': the policy has no language {language!r} "
                          f"(its languages: {', '.join(policy.languages)})")
    settings["extra_terms"] = {lang: strings(f"extra_terms.{lang}", terms) for lang, terms in extra.items()}
    if errors:
        raise ConfigError("\n  ".join(errors), hint)
    return Rules(**settings)
