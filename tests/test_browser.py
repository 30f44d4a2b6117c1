"""The archive in a real browser: headless Chromium opens the index from disk, follows every link, sees no error."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urlparse

import pytest

# Debian names it chromium, Ubuntu chromium-browser; scripts/check-system installs it for `make test`.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium (not found: run scripts/check-system)"
TIMEOUT = 30.0
HTML_SUFFIXES = (".html",)


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe: fd 3 carries commands in, fd 4 replies out."""

    def __init__(self, profile: Path) -> None:
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()

        def wire() -> None:  # in the child, before exec: the protocol's fixed descriptors
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
             "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4), preexec_fn=wire, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=self.session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": 1100, "height": 1400, "deviceScaleFactor": 1, "mobile": False},
                  session=self.session)

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._replies], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(raw))

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, event: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._message(deadline))

    def open(self, url: str) -> list[str]:
        """Load a page; the errors its console showed (CSP violations, failed loads, exceptions)."""
        self.events = []
        self.call("Page.navigate", {"url": url}, session=self.session)
        self.wait_for("Page.loadEventFired")
        self.evaluate("0")  # a round trip, so messages logged during load have arrived
        errors = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
                errors.append(f"{params['entry'].get('source')}: {params['entry']['text']}")
            elif event.get("method") == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"]))
            elif event.get("method") == "Runtime.exceptionThrown":
                errors.append("exception: " + params["exceptionDetails"].get("text", ""))
        return errors

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session)
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        shot = self.call("Page.captureScreenshot", {"format": "png"}, session=self.session)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        os.close(self._replies)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path / "profile")
    try:
        yield chromium
    finally:
        chromium.close()


LINKS = "JSON.stringify(Array.from(document.querySelectorAll('a[href]'), a => a.href))"
IDS = "JSON.stringify(Array.from(document.querySelectorAll('[id]'), e => e.id))"


def crawl(browser: Chromium, start: Path, root: Path) -> dict[str, Any]:
    """Open `start`, then every page it links to inside `root`, recursively; check every link and fragment."""
    pages: dict[str, list[str]] = {}  # file path -> ids on the page
    errors: dict[str, list[str]] = {}
    broken: list[str] = []
    fragments: list[tuple[str, str, str]] = []  # (from page, target file, fragment)
    external: set[str] = set()
    files: set[str] = set()
    queue = [start.resolve().as_uri()]
    while queue:
        url = queue.pop()
        path = unquote(urlparse(url).path)
        if path in pages:
            continue
        console = browser.open(url)
        if console:
            errors[path] = console
        pages[path] = json.loads(browser.evaluate(IDS))
        for href in json.loads(browser.evaluate(LINKS)):
            target, fragment = urldefrag(href)
            parsed = urlparse(target)
            if parsed.scheme in ("http", "https", "mailto"):
                external.add(target)
                continue
            if parsed.scheme != "file":
                broken.append(f"{path} -> {href} (not a file link)")
                continue
            target_path = unquote(parsed.path)
            if not Path(target_path).is_file():
                broken.append(f"{path} -> {href}")
                continue
            if not Path(target_path).resolve().is_relative_to(root.resolve()):
                broken.append(f"{path} -> {href} (outside the archive)")
                continue
            files.add(target_path)
            if fragment:
                fragments.append((path, target_path, fragment))
            if target_path.endswith(HTML_SUFFIXES) and target_path not in pages:
                queue.append(Path(target_path).as_uri())
    missing = [f"{page} -> {target}#{fragment}" for page, target, fragment in fragments
               if target in pages and fragment not in pages[target]]
    return {"pages": pages, "errors": errors, "broken": broken + missing, "external": external, "files": files}


def test_the_archive_opens_from_disk_and_every_link_works(browser: Chromium, shipped_archive: Path, tmp_path: Path) -> None:
    history = shipped_archive / "history"
    index = history / "privacy" / "index.html"
    result = crawl(browser, index, history)
    assert result["broken"] == []
    assert result["errors"] == {}
    version_pages = [p for p in result["pages"] if p.endswith("/index.html") and "/privacy/20" in p]
    manifest = json.loads((history / "manifest.json").read_text(encoding="utf-8"))
    archived_pages = [p for p, e in manifest["files"].items() if e.get("kind") == "page"]
    assert len(version_pages) == len(archived_pages) >= 12  # every version × site × language was reached by a link
    reached = {Path(p).relative_to(history).as_posix() for p in result["files"]}
    assert {p for p, e in manifest["files"].items() if e.get("kind") in ("pdf", "json", "redline", "redline-pdf")} <= reached
    browser.open(index.as_uri())
    title = browser.evaluate("document.title")
    assert "Privacy policy" in title
    browser.screenshot(tmp_path / "archive-index.png")
    assert (tmp_path / "archive-index.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_version_page_shows_its_banner_and_bundled_fonts(browser: Chromium, shipped_archive: Path, tmp_path: Path) -> None:
    page = shipped_archive / "history" / "privacy" / "2018-05-19" / "selentic" / "nl" / "index.html"
    assert browser.open(page.as_uri()) == []
    banner = browser.evaluate("document.querySelector('.archive-banner').innerText")
    assert "privacy@2018-05-19" in banner and "19 mei 2018" in banner
    # The embedded bundled serif (DejaVu Serif, as "Addendum Serif"), not a system font, renders the text.
    assert browser.evaluate("document.fonts.check('16px \"Addendum Serif\"')") is True
    assert browser.evaluate("[...document.fonts].filter(f => f.status === 'loaded').length") >= 1
    browser.screenshot(tmp_path / "version-page.png")


def test_the_check_catches_console_errors_and_broken_links(browser: Chromium, tmp_path: Path) -> None:
    site = tmp_path / "bad"
    site.mkdir()
    (site / "index.html").write_text(
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">"
        "<title>bad</title></head><body><script>document.title = 'ran'</script>"
        "<a href=\"missing.html\">gone</a> <a href=\"other.html#nowhere\">other</a></body></html>", encoding="utf-8")
    (site / "other.html").write_text("<!DOCTYPE html><title>other</title><p id=\"somewhere\">x</p>", encoding="utf-8")
    result = crawl(browser, site / "index.html", site)
    assert any("Content Security Policy" in e for e in result["errors"][str(site / "index.html")])
    assert result["errors"].keys() == {str(site / "index.html")}
    browser.open((site / "index.html").as_uri())
    assert browser.evaluate("document.title") == "bad"  # the policy blocked the script
    assert any(b.endswith("missing.html") for b in result["broken"])
    assert any(b.endswith("other.html#nowhere") for b in result["broken"])
