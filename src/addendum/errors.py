"""The one error hierarchy, and the problems a check reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding about a policy: what is wrong, where, and how to fix it."""

    severity: Severity
    file: str
    line: int
    message: str
    hint: str = ""
    section: str = ""
    rule: str = ""

    @property
    def where(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else self.file
        return f"{place}: {self.section}" if self.section else place

    def format(self) -> str:
        text = f"{self.severity}: {self.where}: {self.message}"
        return f"{text}\n  {self.hint}" if self.hint else text

    def as_json(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "section": self.section,
            "rule": self.rule,
            "message": self.message,
            "hint": self.hint,
        }


class AddendumError(Exception):
    """Base of every error the library raises on purpose; the CLI turns it into a clean message."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        text = f"error: {self.message}"
        return f"{text}\n  {self.hint}" if self.hint else text


class UsageError(AddendumError):
    """A command was asked for something that cannot be: an unknown site, a malformed id."""


class ConfigError(AddendumError):
    """The repository's addendum.toml, or the repository itself, cannot be used."""


class PolicyFormatError(AddendumError):
    """A policy's files cannot be loaded; carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"]
        super().__init__(f"{len(errors)} error(s) in the policy files")
        self.problems = problems

    def format(self) -> str:
        return "\n".join(p.format() for p in self.problems if p.severity == "error")


class LimitError(AddendumError):
    """An input is larger than [limits] in addendum.toml allows: refused before the work that would grow with it."""

    def __init__(self, file: str, line: int, message: str, hint: str) -> None:
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}", hint)
        self.file = file
        self.line = line


class HistoryError(AddendumError):
    """Git, the ledger or a published version cannot answer what was asked."""


class RenderError(AddendumError):
    """A template or the PDF engine failed to produce a document."""


class NotifyError(AddendumError):
    """Subscribers, the outbox or the SMTP server refused to go on."""


class FieldError(UsageError):
    """One field of a request or a row is wrong: carries the field's name, for an answer that points at it."""

    def __init__(self, field: str, message: str, hint: str = "") -> None:
        super().__init__(message, hint)
        self.field = field


class SealError(AddendumError):
    """A signature or a trusted timestamp cannot be made: the key, ssh-keygen, openssl or the time-stamping authority refused."""
