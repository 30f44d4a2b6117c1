"""What tests share: small policies, one git identity, git and CLI runners, hostile text and resolved fixtures."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
import traceback
from collections.abc import Callable
from pathlib import Path

import tomli_w
from babel.messages.pofile import read_po
from click.testing import CliRunner, Result
from hypothesis import strategies as st

from addendum import i18n
from addendum.cli import cli
from addendum.policy.model import Location, load_policy_files
from addendum.policy.resolve import ResolvedPolicy, ResolvedSection, resolve

# The one identity of every test repository's commits (and of the library's own git calls in tests).
# Commits are dated before every published date the tests give (publish refuses a published date earlier than the
# commit it publishes unless --backdate); a test that needs another date sets it (git_at).
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "Test Editor", "GIT_AUTHOR_EMAIL": "editor@example.org",
                "GIT_COMMITTER_NAME": "Test Editor", "GIT_COMMITTER_EMAIL": "editor@example.org",
                "GIT_AUTHOR_DATE": "2018-01-01T12:00:00+00:00", "GIT_COMMITTER_DATE": "2018-01-01T12:00:00+00:00"}

MINIMAL_POLICY_TOML = """\
id = "terms"
default_language = "en"
languages = ["en", "nl"]
default_site = "main"

[title]
en = "Terms"
nl = "Voorwaarden"

[controller]
name = "Example BV"
address = "Main Street 1, 1000 Brussels"
email = "privacy@example.org"

[sites.main]
name = "Main"
contact = { email = "privacy@example.org" }

[sites.shop]
name = "Shop"
contact = { email = "shop@example.org" }
"""

MINIMAL_EN = """\
Intro text.

## Scope {#scope}

These terms apply to {{ site.name }}.

## Contact {#contact}

Write to {{ site.contact.email }}.
"""

MINIMAL_NL = """\
Inleiding.

## Toepassing {#scope}

Deze voorwaarden gelden voor {{ site.name }}.

## Contact {#contact}

Schrijf naar {{ site.contact.email }}.
"""


def run_script(folder: Path, source: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Run `source` as a Python script in a fresh interpreter (for what only a whole process shows: forks, exit)."""
    script = folder / "script.py"
    script.write_text(source, encoding="utf-8")
    return subprocess.run([sys.executable, str(script)], env={**os.environ, **environment}, capture_output=True, text=True,
                          timeout=60, check=False)


def git_in(root: Path, *args: str) -> str:
    """Run git in `root` (tests build real repositories; the library reaches git only through history.py)."""
    env = {**os.environ, **GIT_IDENTITY}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout


def invoke_ok(*args: str | Path) -> Result:
    """Invoke the CLI and fail with its output and traceback unless it exits 0."""
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)
    if result.exit_code != 0:
        tb = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info and result.exception else ""
        raise AssertionError(f"addendum {' '.join(map(str, args))}: exit {result.exit_code}\n{result.output}\n{tb}")
    return result


def publish_terms(root: Path, n: int) -> None:
    """Publish version n of `terms`: after the first, §scope gains the sentence "Revision n." in en and nl."""
    if n > 1:
        for language, line in (("en", "These terms apply to {{ site.name }}."), ("nl", "Deze voorwaarden gelden voor {{ site.name }}.")):
            path = root / "policies" / "terms" / f"{language}.md"
            text = path.read_text(encoding="utf-8")
            path.write_text(re.sub(f"^{re.escape(line)}.*$", f"{line} Revision {n}.", text, count=1, flags=re.MULTILINE), encoding="utf-8")
        git_in(root, "commit", "-q", "-am", f"Revision {n}")
    invoke_ok("--repo", root, "publish", "terms", "--effective", f"2024-{n:02d}-01", "--published", f"2023-{n:02d}-01",
               "--summary", f"Version {n}.", "--summary-nl", f"Versie {n}.", "--material")


def leave_shop_contact_pending(root: Path) -> None:
    """The terms' shop site without its contact e-mail yet: its texts show a value to be provided (not committed)."""
    policy = root / "policies" / "terms" / "policy.toml"
    policy.write_text(policy.read_text(encoding="utf-8").replace('contact = { email = "shop@example.org" }', 'pending = ["contact.email"]'),
                      encoding="utf-8")


def set_config(root: Path, tables: dict[str, dict[str, object]]) -> None:
    """Merge settings into a repository's addendum.toml."""
    path = root / "addendum.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    for table, values in tables.items():
        node = data
        for part in table.split("."):
            node = node.setdefault(part, {})
        node.update(values)
    path.write_text(tomli_w.dumps(data), encoding="utf-8")


HOSTILE = ["<script>alert(1)</script>", "</ins>", "<del>", "&amp;", "&", '"', "'", "’", "“quoted”", "😀", "👍🏽",
           "\u202e", "\u2066", "\u200b", "\u00ad", "\x1b[31m", "\r\n", "\r", "\n", "\n\n", " ", "  ", "\t", "word", "Word",
           "e-mail", "3.5", "35", "cafe\u0301", "café", "中文", "ﬁ", "{{ x }}", "-", ".", ",", "privacy", "shield"]
hostile_text = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=4)), max_size=30).map("".join)


def section(section_id: str, heading: str, text: str, level: int = 2, path: tuple[str, ...] | None = None) -> ResolvedSection:
    return ResolvedSection(section_id, heading, level, path or (section_id,), text, "en", False, False,
                           Location("policies/terms/en.md", 1))


def policy_of(*sections: ResolvedSection, title: str = "Terms") -> ResolvedPolicy:
    return ResolvedPolicy("terms", title, "main", "Main", "en", "en_GB", tuple(sections))


def resolved(markdown: str) -> ResolvedPolicy:
    files = {"policy.toml": MINIMAL_POLICY_TOML, "en.md": markdown, "nl.md": MINIMAL_NL}
    return resolve(load_policy_files("terms", files, "policies/terms"), "main", "en")


MOVED_AND_EDITED_OLD = """\
## Collection {#collection}

### Newsletter {#newsletter}

We store your name and e-mail address in MailChimp.

### Invoices {#invoices}

We share invoice details with Moneybird.

## Sharing {#sharing}

We do not sell your data.
"""

MOVED_AND_EDITED_NEW = """\
## Collection {#collection}

### Invoices {#invoices}

We share invoice details with Moneybird and our accountant.

### Newsletter {#newsletter}

We store your name and e-mail address in MailChimp.

## Sharing {#sharing}

We do not sell your data.
"""


# The policy folder of the `terms` repositories the fixtures build.
POLICY_DIR = Path("policies") / "terms"


class Served:
    """`addendum serve` in its own process on an ephemeral port of 127.0.0.1; stopped by Ctrl+C (SIGINT), or killed."""

    def __init__(self, root: Path, *args: str, timeout: float = 30.0) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "addendum", "--repo", str(root), "serve", "--port", "0", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while not any(line.startswith("  GET") and "/history/" in line for line in self.lines):
            assert time.monotonic() < deadline, f"addendum serve did not start: {self.lines}"
            line = self.process.stdout.readline()
            assert line, f"addendum serve exited: {self.process.wait(5)} {self.process.stderr.read() if self.process.stderr else ''}"
            self.lines.append(line.rstrip("\n"))
        self.base = re.search(r"http://127\.0\.0\.1:\d+", "\n".join(self.lines))[0]  # type: ignore[index]
        login = next((line.split()[1] for line in self.lines if line.startswith("workspace: ")), None)
        self.login_url = login

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


# Product words in the catalogues: a field of a message, and what a reader of one language must not see in English.
FIELD = re.compile(r"%\(\w+\)[sd]")


def message_key(message_id: str | tuple[str, ...], context: str | None) -> tuple[str | None, str]:
    return context, message_id if isinstance(message_id, str) else message_id[0]


def catalogue(language: str) -> dict[tuple[str | None, str], object]:
    path = i18n.catalogue_path(i18n.LOCALE_DIR, language)
    with path.open("rb") as file:
        return {message_key(m.id, m.context): m for m in read_po(file) if m.id}


def english_fragments(language: str) -> list[str]:
    """The English text of every message whose translation differs: its words between the fields. A word the
    language's catalogue itself uses (a loanword such as "Commit" in German) is not counted as English."""
    fragments = set()
    messages = catalogue(language).values()
    own = " ".join(s for m in messages for s in (m.string if isinstance(m.string, tuple) else (m.string,))).casefold()  # type: ignore[attr-defined]
    for message in messages:
        ids = message.id if isinstance(message.id, tuple) else (message.id,)  # type: ignore[attr-defined]
        for text in ids:
            pieces = FIELD.split(text)
            for fragment in pieces:
                fragment = fragment.strip(" ,.:;()“”")
                # One word between fields ("section" of "(section %(position)s …)") is too common to tell.
                whole = len(pieces) == 1 or " " in fragment
                if whole and len(fragment) >= 4 and re.search("[A-Za-z]{3}", fragment) and fragment.casefold() not in own:
                    fragments.add(fragment)
    return sorted(fragments, key=len, reverse=True)


def readable(text: str) -> str:
    """What a reader sees of a page, and its attribute values: tag names, comments and style sheets removed."""
    text = re.sub(r"<style>.*?</style>|<!--.*?-->|\s(class|id|href|rel|type|hreflang|lang|datetime|content|name)=\"[^\"]*\"", " ", text, flags=re.DOTALL)
    return re.sub(r"</?[a-zA-Z][\w-]*|\s[\w-]+=|/?>", " ", text)


def assert_no_english(text: str, language: str, where: str) -> None:
    text = readable(text)
    leaked = [f for f in english_fragments(language) if re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)]
    assert not leaked, f"{where} ({language}) has English product words: {leaked}"


class WebhookReceiver:
    """A webhook receiver on 127.0.0.1 (ephemeral port, own thread) that verifies every delivery with the independent
    `standardwebhooks` package. `behave(n)` decides the n-th request's fate (1-based): "ok", an HTTP status to answer,
    "drop" (close without answering) or a number of seconds to stall before answering. Verified deliveries it answered
    with 2xx are in `delivered` (webhook-id, payload), every verification failure in `rejected`."""

    def __init__(self, *secrets: str, behave: Callable[[int], object] = lambda n: "ok") -> None:
        import http.server
        import json
        import threading

        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        self.secrets = list(secrets)
        self.behave = behave
        self.requests = 0
        self.delivered: list[tuple[str, dict[str, object]]] = []
        self.rejected: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.retry_after = ""  # sent with every answer that is not 2xx, when set
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    receiver.requests += 1
                    n = receiver.requests
                    receiver.headers.append(headers)
                fate = receiver.behave(n)
                if fate == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fate == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if isinstance(fate, float):
                    time.sleep(fate)
                if isinstance(fate, int) and not isinstance(fate, bool):
                    self._answer(fate, b"not now")
                    return
                payload = None
                problems = []
                for secret in receiver.secrets:
                    try:
                        payload = Webhook(secret).verify(body, headers)
                        break
                    except WebhookVerificationError as exc:
                        problems.append(str(exc))
                if payload is None:
                    with receiver.lock:
                        receiver.rejected.append("; ".join(problems))
                    self._answer(400, json.dumps(problems).encode())
                    return
                with receiver.lock:
                    receiver.delivered.append((headers["webhook-id"], payload))
                self._answer(200, b"ok")

            def _answer(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    if receiver.retry_after and status >= 300:
                        self.send_header("Retry-After", receiver.retry_after)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the sender gave up (its deadline) while this one stalled

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def ids(self) -> list[str]:
        with self.lock:
            return [message_id for message_id, _ in self.delivered]

def every_value(url: str) -> list[str]:
    """Every value in every table of the state store, as lower-case text (bytes decoded)."""
    from sqlalchemy import create_engine, select

    from addendum.notify.store import metadata

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            values = [value for table in metadata.sorted_tables for row in connection.execute(select(table)) for value in row]
    finally:
        engine.dispose()
    return [(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)).lower() for v in values]

class TimestampAuthority:
    """A real RFC 3161 time-stamping authority on 127.0.0.1 (an ephemeral port): a CA and a TSA certificate made with
    openssl in `folder` (extendedKeyUsage critical timeStamping), and an HTTP handler answering each query with
    `openssl ts -reply`. `start()` returns it; `stop()` ends the server. `ca_file` is what evidence.tsa_ca_file names;
    `answer` replaces the reply (a test's broken TSA); `requests` counts the queries; while `gate` is set to an unset
    threading.Event, each answer waits for it (a slow TSA)."""

    CONFIG = """\
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {folder}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""

    def __init__(self, folder: Path, name: str = "Test TSA", key: str = "ec") -> None:
        self.folder = folder
        self.name = name
        self.key = key  # the TSA's key type: "ec" (P-256) or "rsa" (2048 bits)
        self.ca_file = folder / "ca.pem"
        self.requests = 0
        self.answer: tuple[int, str, bytes] | None = None
        self.gate: threading.Event | None = None
        self.url = ""
        self._server = None

    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], cwd=self.folder, check=True, capture_output=True, timeout=60)

    def make_certificates(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                      "-out", "ca.pem", "-days", "3650", "-subj", f"/CN={self.name} Root CA",
                      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        key = ("ec", "-pkeyopt", "ec_paramgen_curve:P-256") if self.key == "ec" else ("rsa:2048",)
        self._openssl("req", "-newkey", *key, "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", f"/CN={self.name}")
        (self.folder / "tsa.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                                             "extendedKeyUsage=critical,timeStamping\n", encoding="utf-8")
        self._openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                      "-out", "tsa.pem", "-days", "3650", "-extfile", "tsa.ext")
        (self.folder / "serial").write_text("01\n", encoding="utf-8")
        (self.folder / "tsa.cnf").write_text(self.CONFIG.format(folder=self.folder), encoding="utf-8")

    def revocation_list(self, revoke: bool) -> Path:
        """A CRL the test CA issues now (PEM, in `folder`), revoking the TSA's certificate or nothing."""
        (self.folder / "ca.cnf").write_text(
            f"[ ca ]\ndefault_ca = test_ca\n[ test_ca ]\ndatabase = {self.folder}/index.txt\n"
            f"crlnumber = {self.folder}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\n"
            f"certificate = {self.folder}/ca.pem\nprivate_key = {self.folder}/ca.key\n", encoding="utf-8")
        (self.folder / "index.txt").write_text("", encoding="utf-8")
        (self.folder / "crlnumber").write_text("01\n", encoding="utf-8")
        if revoke:
            self._openssl("ca", "-config", "ca.cnf", "-revoke", "tsa.pem", "-crl_reason", "keyCompromise")
        name = "revoked.crl.pem" if revoke else "empty.crl.pem"
        self._openssl("ca", "-config", "ca.cnf", "-gencrl", "-out", name)
        return self.folder / name

    def reply(self, query: bytes, with_ca: bool = False) -> bytes:
        """openssl's response to `query`; `with_ca` adds the CA's certificate to the token's certificates."""
        import tempfile

        config = self.folder / "tsa.cnf"
        if with_ca:
            config = self.folder / "tsa-with-ca.cnf"
            config.write_text(self.CONFIG.format(folder=self.folder) + "certs = $dir/ca.pem\n", encoding="utf-8")
        with tempfile.TemporaryDirectory(dir=self.folder) as name:
            (Path(name) / "q.tsq").write_bytes(query)
            self._openssl("ts", "-reply", "-config", str(config), "-queryfile", f"{name}/q.tsq", "-out", f"{name}/r.tsr")
            return (Path(name) / "r.tsr").read_bytes()

    def start(self) -> "TimestampAuthority":
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        if not self.ca_file.is_file():
            self.make_certificates()
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                authority.requests += 1
                query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if authority.gate is not None:
                    authority.gate.wait(60)
                status, kind, body = authority.answer or (200, "application/timestamp-reply", authority.reply(query))
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/tsr"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
