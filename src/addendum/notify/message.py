"""Change-notice e-mails: rendered once per site × language × audience, then completed for each recipient."""

from __future__ import annotations

import hashlib
import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from addendum import paths
from addendum.config import Repo, for_language
from addendum.errors import NotifyError
from addendum.i18n import Words
from addendum.notify.content import NoticeContent, SettingProblem, settings_error
from addendum.notify.subscribers import normalise_address
from addendum.notify.tokens import Keyring, unsubscribe_token
from addendum.policy.model import Policy
from addendum.templates import long_date, render_template, strings

MAX_LINE = 998  # RFC 5322: octets per line, CRLF excluded
# Serialised without folding below the hard limit: folding a long unsubscribe URL at 78 would turn it into
# encoded-words that mail clients cannot use as a link.
WIRE = SMTP.clone(max_line_length=MAX_LINE)
SUBSCRIBER = "subscriber"
TOKEN_FIELD = "{token}"  # where notify.unsubscribe_url takes the token; without it, the URL gets ?token=…


@dataclass(frozen=True)
class Sender:
    """Who notices come from, and the subscription list's headers (RFC 2369 / RFC 8058)."""

    address: Address
    reply_to: Address | None
    list_id: str
    unsubscribe_url: str
    unsubscribe_mailto: str

    @property
    def domain(self) -> str:
        return self.address.domain


@dataclass(frozen=True)
class Recipient:
    uid: str
    email: str
    name: str
    language: str
    site_id: str
    audience: str


@dataclass(frozen=True)
class BuiltMessage:
    message_id: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def _addresses(repo: Repo, policy: Policy) -> dict[str, str]:
    """The addresses of [notify] by key, as set; the sender falls back to the controller's e-mail."""
    return {"notify.from_address": str(repo.setting("notify.from_address") or policy.controller.email),
            "notify.reply_to": str(repo.setting("notify.reply_to") or ""),
            "notify.unsubscribe_mailto": str(repo.setting("notify.unsubscribe_mailto") or "")}


def sender_problems(repo: Repo, policy: Policy) -> list[SettingProblem]:
    """Every [notify] sender setting that is invalid; the sender's address is needed even when not set."""
    problems = []
    for key, value in _addresses(repo, policy).items():
        if not value and key != "notify.from_address":
            continue
        try:
            normalise_address(value)
        except ValueError as exc:
            given = str(exc) if value else "is not set, and the controller has no e-mail"
            problems.append(SettingProblem(key, given, f'set [notify] {key.split(".", 1)[1]} = "…" to a valid address'))
    url = str(repo.setting("notify.unsubscribe_url") or "")
    parts = urlsplit(url)
    if url and (parts.scheme != "https" or not parts.netloc or parts.fragment
                or any(ch.isspace() or not ch.isprintable() or ord(ch) > 126 for ch in url)):
        problems.append(SettingProblem("notify.unsubscribe_url", f"{url!r} is not a plain https URL",
                                       "RFC 8058 one-click unsubscribe needs an https URL, e.g. https://example.org/unsubscribe/{token}"))
    return problems


def sender_for(repo: Repo, policy: Policy) -> Sender:
    """The sender from [notify] settings; the controller's name and e-mail where they are not set. Every invalid
    setting is reported in one ConfigError."""
    problems = sender_problems(repo, policy)
    if problems:
        raise settings_error(problems)
    addresses = {key: normalise_address(value) if value else "" for key, value in _addresses(repo, policy).items()}
    # The name of the default language: each notice names its sender in its own language (NoticeContent.sender_name).
    name, _ = for_language(repo.setting("notify.from_name"), policy.default_language, policy.default_language)
    address = Address(display_name=str(name or policy.controller.name), addr_spec=addresses["notify.from_address"])
    return Sender(
        address=address,
        reply_to=Address(addr_spec=addresses["notify.reply_to"]) if addresses["notify.reply_to"] else None,
        list_id=str(repo.setting("notify.list_id") or f"{policy.id}-changes.{address.domain}"),
        unsubscribe_url=str(repo.setting("notify.unsubscribe_url") or ""),
        unsubscribe_mailto=addresses["notify.unsubscribe_mailto"],
    )


def unsubscribe_link(url: str, token: str) -> str:
    """The one-click link of one recipient: `{token}` in notify.unsubscribe_url is replaced by the token
    (https://example.org/unsubscribe/{token}, what `addendum serve` answers); a URL without it gets ?token=…"""
    if TOKEN_FIELD in url:
        return url.replace(TOKEN_FIELD, token)
    return f"{url}{'&' if '?' in url else '?'}token={token}"


def message_id_for(version_id: str, subscriber_uid: str, site_id: str, domain: str) -> str:
    """The same Message-ID for the same notice to the same person, however often it is built."""
    digest = hashlib.sha256(f"{version_id}\x00{subscriber_uid}\x00{site_id}".encode()).hexdigest()[:32]
    return f"<{digest}.{version_id.replace('@', '.')}@{domain}>"


@dataclass
class _Variant:
    """A notice serialised once with slots for what differs per recipient; `fast` unless lines would grow too long."""

    pieces: list[bytes]  # the serialised notice cut at its slots: text, slot name, text, slot name, …, text
    fast: bool
    slot_lines: list[tuple[int, dict[str, int]]] = field(default_factory=list)  # per line with slots: other bytes, slots
    parts: tuple[str, str, str] = ("", "", "")  # subject, text, html with slots, for the per-recipient path


# What a To header may hold unquoted and unencoded: atext (RFC 5322 3.2.3) in the name, a dot-atom address.
ATEXT = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~")
HEADER_LINE = 78  # RFC 5322: a header line longer than this is folded


def _dot_atom(text: str) -> bool:
    return all(part and ATEXT.issuperset(part) for part in text.split("."))


def to_header(name: str, address: str) -> bytes:
    """The To header line for one recipient: written directly when it is a plain name and address that fit on one
    line (the bytes the stdlib would write), else folded and encoded by the stdlib."""
    local, at, domain = address.rpartition("@")
    words = name.split(" ")
    if at and _dot_atom(local) and _dot_atom(domain) and all(word and ATEXT.issuperset(word) for word in words):
        line = f"To: {name} <{address}>\r\n" if name else f"To: {address}\r\n"
        if len(line) - 2 <= HEADER_LINE:
            return line.encode("ascii")
    return WIRE.fold_binary("To", WIRE.header_store_parse("To", Address(display_name=name, addr_spec=address))[1])


def _cut(data: bytes, names: dict[bytes, str]) -> list[bytes]:
    """`data` cut at every slot marker: text, slot name, text, …, text (no marker begins another, so one matches at a place)."""
    pieces: list[bytes] = []
    start = 0
    while True:
        found = [(at, marker) for marker in names if (at := data.find(marker, start)) >= 0]
        if not found:
            return [*pieces, data[start:]]
        at, marker = min(found)
        pieces += [data[start:at], names[marker].encode()]
        start = at + len(marker)


class MessageFactory:
    """Builds each recipient's notice: templates rendered once per variant, the recipient's details filled in."""

    def __init__(self, repo: Repo, sender: Sender, keyring: Keyring, content: Callable[[str, str], NoticeContent],
                 when: datetime, attach_redline: bool = False) -> None:
        self.repo, self.sender, self.keyring, self.content = repo, sender, keyring, content
        self.when, self.attach_redline = when, attach_redline
        nonce = secrets.token_hex(6)
        # Slot markers survive Jinja's escaping and 8-bit transfer encoding untouched; the nonce keeps text out.
        self.slots = {name: f"addendum{nonce}{name}" for name in
                      ("tgreeting", "temail", "turl", "hgreeting", "hemail", "hurl", "token", "mid")}
        self._variants: dict[tuple[str, str, str], _Variant] = {}
        self._strings: dict[str, Words] = {}

    def t(self, language: str) -> Words:
        if language not in self._strings:
            self._strings[language] = strings(language, self.repo.templates_dir)
        return self._strings[language]

    def _render(self, content: NoticeContent, audience: str, values: dict[str, str]) -> tuple[str, str, str]:
        t = self.t(content.language)
        subject = t.gettext("%(site)s: changes to our %(title)s from %(date)s", site=content.site_name, title=content.title,
                            date=long_date(content.effective, content.locale))
        sender = self._from(content)
        context: dict[str, Any] = {"notice": content, "audience": audience, "t": t, "subject": subject,
                                   "sender": {"name": sender.display_name, "address": sender.addr_spec}}
        names = [f"notice-{content.policy_id}", "notice"]
        text = render_template([f"{n}.txt" for n in names], {**context, "recipient": {
            "greeting": values["tgreeting"], "email": values["temail"], "unsubscribe_url": values["turl"]}}, self.repo.templates_dir)
        page = render_template([f"{n}.html" for n in names], {**context, "recipient": {
            "greeting": values["hgreeting"], "email": values["hemail"], "unsubscribe_url": values["hurl"]}}, self.repo.templates_dir)
        return subject, text, page

    def _from(self, content: NoticeContent) -> Address:
        """The sender in the notice's language: [sites.X] sender_name, else [notify] from_name, else the controller;
        a name beyond ASCII goes out as an RFC 2047 encoded word (headerregistry.Address)."""
        return Address(display_name=content.sender_name, addr_spec=self.sender.address.addr_spec) if content.sender_name \
            else self.sender.address

    def _compose(self, content: NoticeContent, audience: str, parts: tuple[str, str, str], cte: str | None,
                 to: Address | None, message_id: str, token: str) -> EmailMessage:
        subject, text, page = parts
        message = EmailMessage(policy=SMTP)
        if to is not None:
            message["To"] = to
        message["Message-ID"] = message_id
        message["From"] = self._from(content)
        if content.reply_to:
            message["Reply-To"] = Address(addr_spec=content.reply_to)
        elif self.sender.reply_to is not None:
            message["Reply-To"] = self.sender.reply_to
        message["Subject"] = subject
        message["Date"] = format_datetime(self.when)
        message["Auto-Submitted"] = "auto-generated"
        if audience == SUBSCRIBER:
            message["List-Id"] = f"{content.title} <{self.sender.list_id}>"
            links = [f"<{self._unsubscribe_url(token)}>"]
            if self.sender.unsubscribe_mailto:
                links.append(f"<mailto:{self.sender.unsubscribe_mailto}?subject=unsubscribe%20{token}>")
            message["List-Unsubscribe"] = ", ".join(links)
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(text, cte=cte)
        message.add_alternative(page, subtype="html", cte=cte)
        if self.attach_redline:
            name, pdf = self._redline(content)
            message.add_attachment(pdf, maintype="application", subtype="pdf", filename=name)
        for part in message.walk():
            if part is not message:
                del part["MIME-Version"]  # the stdlib copies it into parts it creates; it belongs at the top only
        message["Content-Language"] = content.language  # after the body: setting content clears Content-* headers
        return message

    def _unsubscribe_url(self, token: str) -> str:
        return unsubscribe_link(self.sender.unsubscribe_url, token)

    def _redline(self, content: NoticeContent) -> tuple[str, bytes]:
        slug = content.version_id.split("@", 1)[1]
        path = self.repo.history_dir / paths.redline_pdf(content.policy_id, slug, content.site_id, content.language)
        if not path.is_file():
            raise NotifyError(f"no redline PDF at {path.relative_to(self.repo.root)}",
                              f"build the archive first: addendum archive {content.policy_id}")
        return f"redline-{content.policy_id}-{slug}-{content.site_id}-{content.language}.pdf", path.read_bytes()

    def _variant(self, site_id: str, language: str, audience: str) -> _Variant:
        key = (site_id, language, audience)
        if key not in self._variants:
            content = self.content(site_id, language)
            if audience == SUBSCRIBER and not self.sender.unsubscribe_url:
                raise NotifyError("notify.unsubscribe_url is not set: notices to the subscriber audience need a one-click "
                                  "unsubscribe link", 'set [notify] unsubscribe_url = "https://…" in addendum.toml')
            parts = self._render(content, audience, self.slots)
            token_slot, mid_slot = self.slots["token"], f"<{self.slots['mid']}@{self.sender.domain}>"
            data = self._compose(content, audience, parts, "8bit", None, mid_slot, token_slot).as_bytes(policy=WIRE)
            names = {marker.encode(): name for name, marker in self.slots.items()}
            variant = _Variant(_cut(data, names), True, parts=parts)
            for line in data.split(b"\r\n"):
                counts = {name: line.count(marker) for marker, name in names.items() if marker in line}
                if counts:
                    variant.slot_lines.append((len(line) - sum(len(self.slots[s]) * n for s, n in counts.items()), counts))
                elif len(line) > MAX_LINE:
                    variant.fast = False
            self._variants[key] = variant
        return self._variants[key]

    def _values(self, recipient: Recipient, language: str) -> dict[str, str]:
        t = self.t(language)
        greeting = t.gettext("Dear %(name)s,", name=recipient.name) if recipient.name else t.gettext("Hello,")
        url = self._unsubscribe_url(self._token(recipient)) if recipient.audience == SUBSCRIBER else ""
        return {"tgreeting": greeting, "temail": recipient.email, "turl": url,
                "hgreeting": html.escape(greeting), "hemail": html.escape(recipient.email), "hurl": html.escape(url)}

    def _token(self, recipient: Recipient) -> str:
        return unsubscribe_token(self.keyring, recipient.uid) if recipient.audience == SUBSCRIBER else ""

    def build(self, recipient: Recipient, language: str) -> BuiltMessage:
        """The complete message for one recipient, in `language` (the policy's language nearest to theirs)."""
        variant = self._variant(recipient.site_id, language, recipient.audience)
        message_id = message_id_for(self.content(recipient.site_id, language).version_id, recipient.uid,
                                    recipient.site_id, self.sender.domain)
        values = self._values(recipient, language)
        values.update(token=self._token(recipient), mid=message_id[1:message_id.rindex("@")])
        filled = {name: value.encode() for name, value in values.items()}
        fits = all(base + sum(len(filled[name]) * n for name, n in counts.items()) <= MAX_LINE
                   for base, counts in variant.slot_lines)
        if not (variant.fast and fits):
            to = Address(display_name=recipient.name, addr_spec=recipient.email)
            return BuiltMessage(message_id, self._slow(recipient, language, variant, values, to, message_id))
        pieces = variant.pieces[:]
        for at in range(1, len(pieces), 2):
            pieces[at] = filled[pieces[at].decode()]
        pieces[0] = to_header(recipient.name, recipient.email) + pieces[0]
        return BuiltMessage(message_id, b"".join(pieces))

    def _slow(self, recipient: Recipient, language: str, variant: _Variant, values: dict[str, str], to: Address,
              message_id: str) -> bytes:
        """A message whose lines are too long for 8-bit transfer: built whole, so the stdlib picks QP or base64."""
        subject, text, page = variant.parts
        for name in ("greeting", "email", "url"):
            text = text.replace(self.slots["t" + name], values["t" + name])
            page = page.replace(self.slots["h" + name], values["h" + name])
        content = self.content(recipient.site_id, language)
        return self._compose(content, recipient.audience, (subject, text, page), None, to, message_id,
                             values["token"]).as_bytes(policy=WIRE)
