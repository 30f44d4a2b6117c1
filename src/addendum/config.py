"""The repository: finding addendum.toml and reading it as a typed schema that reports every error at once."""

from __future__ import annotations

import contextlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from addendum.errors import ConfigError
from addendum.files import read_repository_file

CONFIG_NAME = "addendum.toml"


@dataclass(frozen=True)
class Option:
    key: str
    type: type
    default: Any
    doc: str
    choices: tuple[str, ...] = ()


# Every key addendum.toml accepts; `addendum config --help`-style docs and error messages come from here.
SCHEMA: tuple[Option, ...] = (
    Option("archive.base_url", str, "", "Public URL of the archive (history/), used for links in notices."),
    Option("archive.jobs", int, 0, "Worker processes for `addendum archive` (0: one per core)."),
    Option("state.database", str, ".addendum/state.db", "SQLite file for subscribers and the outbox (never tracked by git)."),
    Option("notify.from_address", str, "", "Sender address of change notices."),
    Option("notify.from_name", str, "", "Sender display name of change notices."),
    Option("notify.reply_to", str, "", "Reply-To address of change notices (default: the controller's e-mail)."),
    Option("notify.unsubscribe_url", str, "", "HTTPS URL of the one-click unsubscribe (RFC 8058); {token} in it is replaced by the token, e.g. "
           "https://example.org/unsubscribe/{token} (what `addendum serve --public` answers); without it, ?token=… is added."),
    Option("notify.unsubscribe_mailto", str, "", "Address that unsubscribes the sender of a mail to it."),
    Option("notify.list_id", str, "", "List-Id of the subscription list, e.g. policy-changes.example.org."),
    Option("notify.rate_per_second", float, 50.0, "Messages sent per second at most (0: no limit)."),
    Option("notify.key_file", str, ".addendum/notify-keys",
           "File (mode 0600, created when missing) of the keys for unsubscribe tokens and erasure hashes; "
           "the environment variable ADDENDUM_NOTIFY_KEYS takes precedence."),
    Option("notify.max_attempts", int, 8, "Attempts per message before a temporary failure counts as failed."),
    Option("notify.retry_delay", float, 300.0, "Seconds before the first retry; doubled at each attempt, with jitter."),
    Option("notify.error_window", int, 20, "How many recent attempts the error rate is measured over."),
    Option("notify.error_threshold", float, 0.5, "Pause the run when this share of the recent attempts failed."),
    Option("notify.message_deadline", float, 120.0,
           "Seconds one message may take in all, however slowly the server answers; past it the message is "
           "`unknown` if it was sent, else retried."),
    Option("notify.heartbeat_interval", float, 10.0,
           "Seconds between renewals of the sending lease; a sender on another host is taken over after three "
           "intervals without one, a stopped one on this host after one, a dead one at once."),
    Option("notify.smtp.host", str, "localhost", "SMTP server (environment: ADDENDUM_SMTP_HOST)."),
    Option("notify.smtp.port", int, 25, "SMTP port (environment: ADDENDUM_SMTP_PORT)."),
    Option("notify.smtp.security", str, "starttls", "Transport security.", ("starttls", "tls", "none")),
    Option("notify.smtp.user", str, "", "SMTP user name (environment: ADDENDUM_SMTP_USER); the password only from the environment."),
    Option("notify.smtp.timeout", float, 30.0, "Seconds every socket operation may take."),
    Option("notify.smtp.password_file", str, "",
           "File (mode 0600) holding the SMTP password; ADDENDUM_SMTP_PASSWORD takes precedence."),
    Option("notify.smtp.connections", int, 1, "SMTP connections used side by side, each reused for many messages."),
)


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


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _coerce(option: Option, value: Any) -> tuple[Any, str]:
    """The value converted to the option's type, or an error message."""
    expected = option.type
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return None, f"expected {expected.__name__}, got {value!r}"
    if option.choices and value not in option.choices:
        return None, f"expected one of {', '.join(option.choices)}, got {value!r}"
    return value, ""


def parse_settings(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Validate a parsed addendum.toml against SCHEMA; every problem is reported in one ConfigError."""
    known = {option.key: option for option in SCHEMA}
    settings = {option.key: option.default for option in SCHEMA}
    errors = []
    for key, value in sorted(_flatten(data).items()):
        option = known.get(key)
        if option is None:
            errors.append(f"{source}: unknown key '{key}'")
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
        data = tomllib.loads(read_repository_file(root, config_file).decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{CONFIG_NAME}: {exc}", "fix the TOML syntax at that line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_file}: cannot be read: {exc}", "it must be a readable UTF-8 text file") from None
    return Repo(root=root, settings=parse_settings(data, CONFIG_NAME))
