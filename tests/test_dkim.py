"""DKIM: every notice sent is signed over the headers mailbox providers require, and verifies with dkimpy against the
published key (served through dkimpy's DNS hook); a key file others could read, or a missing setting, is refused."""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import dkim
from click.testing import Result

from tests_support import set_config

VERSION = "privacy@2020-09-01"
SIGNED = ["from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe", "list-unsubscribe-post"]


def make_key(folder: Path) -> tuple[Path, bytes]:
    """A fresh 2048-bit RSA key (mode 0600) and its DNS TXT record."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    key.chmod(0o600)
    public = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                            capture_output=True).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dns(record: bytes, name: bytes = b"notices._domainkey.example.org.") -> Callable[..., bytes | None]:
    def lookup(asked: bytes, timeout: int = 5) -> bytes | None:
        return record if asked == name else None

    return lookup


def configure(repo: Path, key: Path) -> None:
    set_config(repo, {"notify.dkim": {"domain": "example.org", "selector": "notices", "key_file": str(key)}})


def subscribe(run: Callable[..., Result], repo: Path) -> None:
    (repo.parent / "people.csv").write_text("email,name,language,sites,audience\n"
                                            "ann@example.net,Ann,en,selentic,subscriber\n"
                                            "bob@example.net,Bob,nl,cavallo,account\n", encoding="utf-8")
    run("--repo", repo, "subscribers", "import", repo.parent / "people.csv")


def test_every_notice_is_signed_over_the_required_headers_and_verifies(run, notify_repo, smtp):
    key, record = make_key(notify_repo.parent / "keys")
    configure(notify_repo, key)
    subscribe(run, notify_repo)
    run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version", "--canary", "team@example.org")
    assert len(smtp.handler.received) == 4  # two canaries (subscriber and account variants) and two notices
    for item in smtp.handler.received:
        assert item.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org;")
        signature = item.message["DKIM-Signature"]
        signed = re.search(r"\bh=([^;]+);", " ".join(signature.split()))[1].replace(" ", "").split(":")
        assert signed == SIGNED, signature
        assert "s=notices" in signature
        assert dkim.verify(item.data, dnsfunc=dns(record)), item.recipients
    subscriber = next(item for item in smtp.handler.received if item.recipients == ["ann@example.net"])
    assert subscriber.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Changing a signed header breaks the signature: here, the unsubscribe link.
    tampered = re.sub(rb"(List-Unsubscribe: <https://example.org/unsubscribe/)", rb"\1x", subscriber.data)
    assert tampered != subscriber.data and not dkim.verify(tampered, dnsfunc=dns(record))
    # An account holder's notice has no List-Id: signed as absent, so it cannot be added on the way.
    account = next(item for item in smtp.handler.received if item.recipients == ["bob@example.net"])
    assert account.message["List-Id"] is None
    added = account.data.replace(b"\r\n\r\n", b"\r\nList-Id: <spam.example.com>\r\n\r\n", 1)
    assert not dkim.verify(added, dnsfunc=dns(record))


def test_a_readable_key_or_a_missing_setting_is_refused_before_sending(run, notify_repo, smtp):
    key, _ = make_key(notify_repo.parent / "keys")
    subscribe(run, notify_repo)
    key.chmod(0o644)
    configure(notify_repo, key)
    refused = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version", expect=2)
    assert f"notify.dkim: DKIM key file {key} can be read by others (mode 0644)" in refused.stderr
    key.chmod(0o600)
    set_config(notify_repo, {"notify.dkim": {"selector": ""}})
    refused = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version", expect=2)
    assert "notify.dkim: notify.dkim.domain is set, but notify.dkim.selector is not" in refused.stderr
    key.write_text("not a key\n", encoding="utf-8")
    set_config(notify_repo, {"notify.dkim": {"selector": "notices"}})
    refused = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version", expect=2)
    assert f"the DKIM key file {key} holds no usable RSA private key" in refused.stderr
    assert not smtp.handler.received
