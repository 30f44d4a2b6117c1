"""The repository: finding addendum.toml and reading it as a typed schema that reports every error at once."""

from __future__ import annotations

import contextlib
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from addendum.errors import ConfigError
from addendum.files import read_repository_file
from addendum.ids import LANGUAGE_PATTERN

CONFIG_NAME = "addendum.toml"
# addendum.toml holds a few dozen settings; anything this large is not one.
CONFIG_MAX_BYTES = 100_000
# Deeper than any policy or setting needs, and shallow enough that no code walking a value runs out of stack.
TOML_MAX_DEPTH = 16
# TOML integers are 64-bit (toml.io: "an error must be thrown" for any other).
TOML_INT_RANGE = range(-2**63, 2**63)


@dataclass(frozen=True)
class Option:
    key: str
    type: type
    default: Any
    doc: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    # The value may also be a table of language → value ([notify.from_name] en = "…", nl = "…").
    per_language: bool = False


# Every key addendum.toml accepts; `addendum config --help`-style docs and error messages come from here.
SCHEMA: tuple[Option, ...] = (
    Option("archive.base_url", str, "", "Public URL of the archive (history/), used for links in notices."),
    Option("archive.jobs", int, 0, "Worker processes for `addendum archive` (0: one per core).", minimum=0, maximum=1024),
    Option("archive.signing_key", str, "",
           "SSH private key (outside the repository, never tracked) that signs history/manifest.json "
           "(ssh-keygen -Y sign, namespace addendum) into manifest.json.sig; empty: the archive is not signed."),
    Option("archive.allowed_signers", str, "allowed_signers",
           "File in the repository, committed, of the keys whose signatures `verify` accepts (ssh-keygen's "
           "allowed_signers format: PRINCIPAL namespaces=\"addendum\" KEY)."),
    Option("evidence.tsa_url", str, "",
           "RFC 3161 time-stamping authority (e.g. an eIDAS qualified TSA); `publish` and `archive` ask it for a "
           "token over each ledger entry and the manifest; empty: nothing is timestamped."),
    Option("evidence.tsa_ca_file", str, "",
           "PEM file of the CA certificates the TSA's tokens chain to (commit it: `verify` checks every token against it)."),
    Option("evidence.tsa_crl", str, "",
           "PEM file of the CA's certificate revocation list (CRL), in the repository: `verify` refuses a token whose "
           "TSA certificate it revokes; empty: revocation is not checked."),
    Option("evidence.tsa_timeout", float, 20.0, "Seconds a request to the TSA may take in all.", minimum=0.001, maximum=3600),
    Option("state.database", str, ".addendum/state.db", "SQLite file for subscribers and the outbox (never tracked by git)."),
    Option("retention.erased_records_days", int, 3650,
           "Days the pseudonymised notice records of a forgotten person are kept (GDPR Art. 17(3)(e), for legal "
           "claims) before `addendum retention run` purges them; choose it with counsel, after the limitation period.",
           minimum=1, maximum=36_500),
    Option("notify.from_address", str, "", "Sender address of change notices."),
    Option("notify.from_name", str, "",
           "Sender display name of change notices: one name, or a table of names by language code (under "
           "[notify.from_name]: en, nl, …); a language without one gets the default language's.", per_language=True),
    Option("notify.reply_to", str, "", "Reply-To address of change notices (default: the controller's e-mail)."),
    Option("notify.unsubscribe_url", str, "", "HTTPS URL of the one-click unsubscribe (RFC 8058); {token} in it is replaced by the token, e.g. "
           "https://example.org/unsubscribe/{token} (what `addendum serve --public` answers); without it, ?token=… is added."),
    Option("notify.unsubscribe_mailto", str, "", "Address that unsubscribes the sender of a mail to it."),
    Option("notify.list_id", str, "", "List-Id of the subscription list, e.g. policy-changes.example.org."),
    Option("notify.rate_per_second", float, 50.0, "Messages sent per second at most (0: no limit).", minimum=0),
    Option("notify.key_file", str, ".addendum/notify-keys",
           "File (mode 0600, created when missing) of the keys for unsubscribe tokens and erasure hashes; "
           "the environment variable ADDENDUM_NOTIFY_KEYS takes precedence."),
    Option("notify.max_attempts", int, 8, "Attempts per message before a temporary failure counts as failed.",
           minimum=1, maximum=1000),
    Option("notify.retry_delay", float, 300.0, "Seconds before the first retry; doubled at each attempt, with jitter.",
           minimum=0, maximum=86_400),
    Option("notify.error_window", int, 20, "How many recent attempts the error rate is measured over.",
           minimum=1, maximum=1_000_000),
    Option("notify.error_threshold", float, 0.5, "Pause the run when this share of the recent attempts failed.",
           minimum=0, maximum=1),
    Option("notify.message_deadline", float, 120.0,
           "Seconds one message may take in all, however slowly the server answers; past it the message is "
           "`unknown` if it was sent, else retried."),
    Option("notify.heartbeat_interval", float, 10.0,
           "Seconds between renewals of the sending lease; a sender on another host is taken over after three "
           "intervals without one, a stopped one on this host after one, a dead one at once."),
    Option("notify.claim_batch", int, 50,
           "Notices a sender claims at a time from the outbox; a sender that dies holds up no more than these."),
    Option("notify.return_path", str, "",
           "Envelope sender for bounces, e.g. bounces@example.org: each notice goes out from bounces+TAG@example.org "
           "(VERP), which `addendum bounces import` matches back to it (default: the sender address)."),
    Option("notify.bounce_limit", int, 1,
           "Hard bounces (or complaints) after which an address is suppressed: no more notices go to it."),
    Option("notify.dkim.domain", str, "", "DKIM signing domain (d=), e.g. example.org; empty: notices are not signed."),
    Option("notify.dkim.selector", str, "", "DKIM selector (s=): the key is published at SELECTOR._domainkey.DOMAIN."),
    Option("notify.dkim.key_file", str, "", "PEM file (mode 0600, never tracked) of the DKIM private key."),
    Option("notify.smtp.host", str, "localhost", "SMTP server (environment: ADDENDUM_SMTP_HOST)."),
    Option("notify.smtp.port", int, 25, "SMTP port (environment: ADDENDUM_SMTP_PORT).", minimum=1, maximum=65_535),
    Option("notify.smtp.security", str, "starttls", "Transport security.", ("starttls", "tls", "none")),
    Option("notify.smtp.user", str, "", "SMTP user name (environment: ADDENDUM_SMTP_USER); the password only from the environment."),
    Option("notify.smtp.timeout", float, 30.0, "Seconds every socket operation may take.", minimum=0.001, maximum=86_400),
    Option("notify.smtp.password_file", str, "",
           "File (mode 0600) holding the SMTP password; ADDENDUM_SMTP_PASSWORD takes precedence."),
    Option("notify.smtp.connections", int, 1, "SMTP connections used side by side, each reused for many messages.",
           minimum=1, maximum=1000),
    Option("webhooks.secret_file", str, ".addendum/webhook-secrets",
           "File (mode 0600, never tracked) of the webhook signing secrets; ADDENDUM_WEBHOOK_SECRETS takes precedence."),
    Option("webhooks.timeout", float, 10.0, "Seconds a webhook request may wait to connect, and for each read.",
           minimum=0.001, maximum=3_600),
    Option("webhooks.deadline", float, 30.0, "Seconds one webhook request may take in all, however slowly the receiver answers.",
           minimum=0.001, maximum=3_600),
    Option("webhooks.response_bytes", int, 65_536, "Bytes of a receiver's answer read at most; the rest is not read.",
           minimum=1, maximum=2**31),
    Option("webhooks.max_attempts", int, 12, "Attempts per delivery before a temporary failure counts as failed.",
           minimum=1, maximum=1000),
    Option("webhooks.retry_delay", float, 30.0, "Seconds before a delivery's first retry; doubled at each attempt, with jitter.",
           minimum=0, maximum=86_400),
    Option("webhooks.rotation_overlap", float, 86_400.0,
           "Seconds a rotated-out secret keeps signing next to the new one (receivers switch within it).", minimum=0),
    Option("webhooks.delivery_time", float, 10.0,
           "Seconds publish and notify spend delivering the events they emit; the rest waits for `webhooks deliver`.",
           minimum=0, maximum=3_600),
    Option("webhooks.tick_interval", float, 60.0,
           "Seconds between the rounds of `addendum serve`'s background task (due events, deliveries); 0: none.",
           minimum=0, maximum=86_400),
    # Sizes no policy reaches; past them the input is refused before the work that grows with it.
    Option("limits.file_bytes", int, 1_000_000, "Largest policy file (policy.toml or a Markdown file), in bytes.",
           minimum=1, maximum=2**31),
    Option("limits.heading_chars", int, 500, "Longest heading line (`## Heading {#id}`), in characters.", minimum=1, maximum=2**31),
    Option("limits.sections", int, 2_000, "Most sections in one Markdown file.", minimum=1, maximum=2**31),
    Option("limits.placeholder_chars", int, 100_000,
           "Most characters the placeholders of one section may produce, and most steps (loop turns) they may take.",
           minimum=1, maximum=2**31),
)


@dataclass(frozen=True)
class Limits:
    """The [limits] settings: the largest input Addendum works on (each error names the key that raises it)."""

    file_bytes: int
    heading_chars: int
    sections: int
    placeholder_chars: int

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> Limits:
        return cls(**{name: settings[f"limits.{name}"] for name in cls.__dataclass_fields__})

    @staticmethod
    def hint(name: str) -> str:
        return f"raise it with [limits] {name} = … in {CONFIG_NAME}"


DEFAULT_LIMITS = Limits.from_settings({option.key: option.default for option in SCHEMA})


def shown(value: Any, width: int = 60) -> str:
    """A value for an error message: short whatever its size or depth (the repr of a deep list or of a huge
    integer fails, and one of a long string buries the message)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * width:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, str):
        return repr(value) if len(value) <= width else repr(value[:width]) + f"… ({len(value):,} characters)"
    if isinstance(value, (dict, list)):
        if width < 10:
            return "{…}" if isinstance(value, dict) else "[…]"
        items = list(value.items() if isinstance(value, dict) else value)
        parts = [f"{shown(k, width // 3)}: {shown(v, width // 3)}" if isinstance(value, dict) else shown(v, width // 3)
                 for v in items[:3] for k, v in [v if isinstance(value, dict) else (None, v)]]
        inner = ", ".join(parts) + (", …" if len(items) > 3 else "")
        return "{" + inner + "}" if isinstance(value, dict) else "[" + inner + "]"
    text = repr(value)
    return text if len(text) <= width else text[:width] + "…"


def shown_key(key: str) -> str:
    """A dotted key for an error message, without quotes: control characters escaped, at most 80 characters."""
    text = repr(key)[1:-1]
    return text if len(text) <= 80 else text[:80] + "…"


class TomlProblem(ValueError):
    """A TOML text that tomllib cannot or should not turn into values; `line` 0 when unknown."""

    def __init__(self, message: str, line: int = 0, key: str = "") -> None:
        super().__init__(message)
        self.message, self.line, self.key = message, line, key


def _bracket_depth_line(text: str) -> int:
    """The first line where brackets nest past TOML_MAX_DEPTH (counted roughly, strings included): where to look."""
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        for char in line:
            depth += 1 if char in "[{" else -1 if char in "]}" else 0
            if depth > TOML_MAX_DEPTH:
                return number
    return 0


def _long_number_line(text: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if any(len(run) > 4000 for run in re.findall(r"[0-9_]+", line)):
            return number
    return 0


def parse_toml(text: str) -> dict[str, Any]:
    """TOML text as values, refusing what the parser or later code cannot handle: values nested deeper than
    TOML_MAX_DEPTH and integers beyond 64 bits. Raises tomllib.TOMLDecodeError for syntax, TomlProblem for these."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise
    except RecursionError:
        raise TomlProblem(f"values nested more than {TOML_MAX_DEPTH} levels deep", _bracket_depth_line(text)) from None
    except ValueError:  # int() refuses decimal integers of more than 4300 digits
        raise TomlProblem("an integer with thousands of digits; TOML integers are 64-bit", _long_number_line(text)) from None
    pending: list[tuple[str, Any, int]] = [(key, value, 1) for key, value in data.items()]
    while pending:
        key, value, depth = pending.pop()
        if depth > TOML_MAX_DEPTH:
            raise TomlProblem(f"'{shown_key(key)}' is nested more than {TOML_MAX_DEPTH} levels deep", key=key)
        if isinstance(value, int) and not isinstance(value, bool) and value not in TOML_INT_RANGE:
            raise TomlProblem(f"'{shown_key(key)}' is {shown(value)}, outside the 64-bit range of TOML integers", key=key)
        if isinstance(value, dict):
            pending.extend((f"{key}.{k}", v, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            pending.extend((f"{key}[{i}]", v, depth + 1) for i, v in enumerate(value))
    return data


@dataclass(frozen=True)
class Repo:
    """A policy repository: the folder that holds addendum.toml, and its settings."""

    root: Path
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def policies_dir(self) -> Path:
        return self.root / "policies"

    @property
    def history_dir(self) -> Path:
        return self.root / "history"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    def setting(self, key: str) -> Any:
        return self.settings[key]

    def path(self, configured: str | Path) -> Path:
        """A file a setting names: as given when absolute, else inside the repository."""
        return self.root / configured

    @property
    def limits(self) -> Limits:
        return Limits.from_settings({**{o.key: o.default for o in SCHEMA}, **self.settings})

    def policy_ids(self) -> list[str]:
        if not self.policies_dir.is_dir():
            return []
        return sorted(p.name for p in self.policies_dir.iterdir() if (p / "policy.toml").is_file())


def find_root(start: Path) -> Path:
    """The nearest folder at or above `start` that holds addendum.toml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ConfigError(
        f"no {CONFIG_NAME} in {start} or any folder above it",
        "run this inside a policy repository, pass --repo PATH, or create one with `addendum init`",
    )


def _flatten(table: dict[str, Any], prefix: str = "", tables: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Dotted keys and their values; the keys in `tables` keep a table as their value (a per-language option)."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in tables:
            flat.update(_flatten(value, dotted + ".", tables))
        else:
            flat[dotted] = value
    return flat


def _number(bound: float) -> str:
    return f"{int(bound):,}" if bound == int(bound) else f"{bound:g}"


def _coerce_per_language(option: Option, table: dict[str, Any]) -> tuple[Any, list[str]]:
    """A per-language table checked entry by entry: each error message names its own key ('notify.from_name.nl')."""
    errors, values = [], {}
    for language, value in table.items():
        key = f"config value '{option.key}.{shown_key(language)}'"
        if not LANGUAGE_PATTERN.fullmatch(language):
            errors.append(f"{key}: {shown(language)} is not a language code; expected one like en, nl or pt-BR")
            continue
        coerced, message = _coerce(replace(option, per_language=False), value)
        if not message and isinstance(coerced, str) and any(not ch.isprintable() for ch in coerced):
            message = f"{shown(coerced)} holds a line break or control character; write it on one line"
        if message:
            errors.append(f"{key}: {message}")
        else:
            values[language] = coerced
    return values, errors


def for_language(value: Any, language: str, default_language: str) -> tuple[Any, bool]:
    """A per-language setting's value for `language`, and whether it fell back: a plain value serves every language;
    a table gives its own entry, else the default language's (fell back), else None (fell back)."""
    if not isinstance(value, dict):
        return value, False
    if language in value:
        return value[language], False
    return value.get(default_language), True


def _coerce(option: Option, value: Any) -> tuple[Any, str]:
    """The value converted to the option's type, or an error message."""
    expected = option.type
    if expected is float and isinstance(value, int) and not isinstance(value, bool) and value in TOML_INT_RANGE:
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return None, f"expected {expected.__name__}, got {shown(value)}"
    if option.choices and value not in option.choices:
        return None, f"expected one of {', '.join(option.choices)}, got {shown(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return None, f"expected a finite number, got {value!r}"
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if number is not None and (option.minimum is not None and number < option.minimum
                               or option.maximum is not None and number > option.maximum):
        bounds = [f"at least {_number(option.minimum)}"] if option.minimum is not None else []
        bounds += [f"at most {_number(option.maximum)}"] if option.maximum is not None else []
        return None, f"expected {' and '.join(bounds)}, got {shown(value)}"
    return value, ""


def parse_settings(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Validate a parsed addendum.toml against SCHEMA; every problem is reported in one ConfigError."""
    known = {option.key: option for option in SCHEMA}
    settings = {option.key: option.default for option in SCHEMA}
    errors = []
    tables = frozenset(option.key for option in SCHEMA if option.per_language)
    for key, value in sorted(_flatten(data, tables=tables).items()):
        option = known.get(key)
        if option is None:
            errors.append(f"{source}: unknown key '{shown_key(key)}'")
            continue
        if option.per_language and isinstance(value, dict):
            table, problems = _coerce_per_language(option, value)
            errors.extend(f"{source}: {problem}" for problem in problems)
            settings[key] = table
            continue
        coerced, message = _coerce(option, value)
        if message:
            errors.append(f"{source}: config value '{key}': {message}")
        else:
            settings[key] = coerced
    for option in SCHEMA:
        env = "ADDENDUM_" + option.key.removeprefix("notify.").replace(".", "_").upper()
        if option.key.startswith("notify.smtp.") and env in os.environ:
            raw = os.environ[env]
            typed: Any = raw
            with contextlib.suppress(ValueError):
                typed = option.type(raw)
            coerced, message = _coerce(option, typed)
            if message:
                errors.append(f"environment {env}: {message}")
            else:
                settings[option.key] = coerced
    if errors:
        raise ConfigError(
            "\n  ".join(errors) if len(errors) > 1 else errors[0],
            "the keys addendum.toml accepts are listed in the README under 'Configuration'",
        )
    return settings


def open_repo(path: Path | None = None) -> Repo:
    root = path.resolve() if path is not None else find_root(Path.cwd())
    config_file = root / CONFIG_NAME
    if not config_file.is_file():
        raise ConfigError(f"{root} is not a policy repository: it has no {CONFIG_NAME}", "create one with `addendum init`")
    try:
        if config_file.stat().st_size > CONFIG_MAX_BYTES:
            raise ConfigError(f"{CONFIG_NAME} is {config_file.stat().st_size:,} bytes; a configuration is at most {CONFIG_MAX_BYTES:,}",
                              f"{CONFIG_NAME} holds only the settings listed by `addendum help config`")
        data = parse_toml(read_repository_file(root, config_file).decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_NAME}: {exc}", "fix the TOML syntax at that line") from None
    except TomlProblem as exc:
        where = f"{CONFIG_NAME}:{exc.line}" if exc.line else CONFIG_NAME
        raise ConfigError(f"{where}: {exc.message}", "settings are plain values in a table or two") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_file}: cannot be read: {exc}", "it must be a readable UTF-8 text file") from None
    return Repo(root=root, settings=parse_settings(data, CONFIG_NAME))
