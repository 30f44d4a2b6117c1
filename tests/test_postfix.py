"""Through a real MTA: our sender → Debian's Postfix (its own configuration folder, loopback only, PIPELINING on, a low
smtpd_client_message_rate_limit) → an aiosmtpd sink as its relayhost. Postfix's 4xx under the rate limit is a retry;
an unknown local user gives a real bounce, which Postfix sends to the notice's VERP return path, and which
`addendum bounces import` reads (mbox and Maildir) and records: the notice ends `bounced` in `addendum notices`."""

from __future__ import annotations

import mailbox
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from smtp_server import SmtpServer, free_port
from tests_support import set_config

VERSION = "privacy@2020-09-01"
LOCAL_DOMAIN = "mail.example.com"  # Postfix delivers it locally: an unknown user there bounces
UNKNOWN = f"no-such-person@{LOCAL_DOMAIN}"
PEOPLE = [f"p{n}@example.net" for n in range(6)]
RATE_LIMIT = 5  # messages per client per anvil time unit
TIME_UNIT = 4  # seconds


def _master_cf(port: int) -> str:
    """Debian's master.cf with smtpd on 127.0.0.1:port only and no chroot (the queue is a temporary folder)."""
    source = next(path for path in (Path("/etc/postfix/master.cf"), Path("/usr/share/postfix/master.cf.dist")) if path.is_file())
    lines = []
    for line in source.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if line and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
            if fields[:2] == ["smtp", "inet"]:
                fields[0] = f"127.0.0.1:{port}"
            fields[4] = "n"
            line = " ".join(fields)
        lines.append(line)
    return "\n".join(lines) + "\n"


class Postfix:
    """A private Postfix instance: `postfix -c DIR start`, stopped (and checked gone) on exit."""

    def __init__(self, relay_port: int) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="addendum-postfix-"))
        self.base.chmod(0o755)  # the postfix user must reach its queue
        self.port = free_port()
        self.config = self.base / "conf"
        for name in ("conf", "queue", "data"):
            (self.base / name).mkdir()
        shutil.chown(self.base / "data", "postfix")
        self.log = self.base / "maillog"
        (self.config / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {self.base}/queue
data_directory = {self.base}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mta.example.com
myorigin = $myhostname
mydestination = {LOCAL_DOMAIN}
# Every local recipient is accepted, so an unknown one bounces after the fact (a DSN), not at RCPT.
local_recipient_maps =
alias_maps =
alias_database =
relayhost = [127.0.0.1]:{relay_port}
mynetworks = 127.0.0.0/8
smtpd_client_event_limit_exceptions =
smtpd_client_message_rate_limit = {RATE_LIMIT}
anvil_rate_time_unit = {TIME_UNIT}s
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = {self.log}
maillog_file_prefixes = {self.base}
biff = no
""", encoding="utf-8")
        (self.config / "master.cf").write_text(_master_cf(self.port), encoding="utf-8")

    def postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["postfix", "-c", str(self.config), *args], capture_output=True, text=True, timeout=60,
                              check=False)

    def start(self) -> Postfix:
        done = self.postfix("start")
        assert done.returncode == 0, f"postfix start: {done.stdout}{done.stderr}\n{self.maillog()}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert time.monotonic() < deadline, f"Postfix does not listen on {self.port}:\n{self.maillog()}"
                time.sleep(0.1)

    def maillog(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def master_pid(self) -> int | None:
        path = self.base / "queue" / "pid" / "master.pid"
        try:
            return int(path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.master_pid()
        self.postfix("stop")
        deadline = time.monotonic() + 20
        while pid is not None and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if pid is not None and Path(f"/proc/{pid}").exists():
            os.kill(pid, 9)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def sink() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def postfix(sink: SmtpServer) -> Iterator[Postfix]:
    if shutil.which("postfix") is None:
        pytest.fail("Postfix is not installed (Debian: apt-get install postfix; scripts/check-system installs it)")
    server = Postfix(sink.port).start()
    try:
        yield server
    finally:
        server.stop()
    assert server.master_pid() is None or not Path(f"/proc/{server.master_pid()}").exists()
    with socket.socket() as probe:  # nothing of ours is left listening, and Postfix never took port 25
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0
        assert probe.connect_ex(("127.0.0.1", 25)) != 0 or "master" not in subprocess.run(
            ["ss", "-ltnp", "sport = :25"], capture_output=True, text=True, check=False).stdout


def wait_for(condition, within: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.skipif(os.geteuid() != 0, reason="starting a Postfix instance needs root (CI and `make test` as root run it)")
def test_notices_through_postfix_retry_its_rate_limit_and_a_real_bounce_ends_bounced(run, notify_repo, sink, postfix,
                                                                                    monkeypatch, tmp_path):
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=10) as probe:
        probe.ehlo("probe.example.org")
        assert probe.has_extn("pipelining")  # our sender pipelines MAIL, RCPT and DATA with it
    time.sleep(TIME_UNIT + 0.5)  # the probe counts as a connection, not a message; start with a fresh time unit anyway
    monkeypatch.setenv("ADDENDUM_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ADDENDUM_SMTP_PORT", str(postfix.port))
    monkeypatch.setenv("ADDENDUM_SMTP_SECURITY", "none")
    set_config(notify_repo, {"notify": {"rate_per_second": 0.0, "return_path": "bounces@example.org",
                                        "error_window": 100}})
    lines = ["email,name,language,sites,audience"] + [f"{a},P,en,selentic,account" for a in [*PEOPLE, UNKNOWN]]
    (tmp_path / "people.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run("--repo", notify_repo, "subscribers", "import", tmp_path / "people.csv")

    first = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version", expect=1)
    assert f"this run: sent {RATE_LIMIT}, retry 2, failed 0, unknown 0" in first.stdout, first.stdout
    retried = run("--repo", notify_repo, "notices", "privacy", VERSION, "--state", "retry").stdout
    assert retried.count("450 4.7.1 Error: too much mail from 127.0.0.1") == 2, retried
    time.sleep(TIME_UNIT + 0.5)
    second = run("--repo", notify_repo, "notify", "privacy", VERSION, "--yes", "--late", "--reason", "a test of a past version")
    assert "this run: sent 2, retry 0, failed 0, unknown 0" in second.stdout

    # Postfix relays six notices to the sink and bounces the seventh, to its return path (also relayed to the sink).
    wait_for(lambda: len(sink.handler.received) >= 7, 60, f"not relayed:\n{postfix.maillog()[-3000:]}")
    notices = [item for item in sink.handler.received if item.recipients[0] in PEOPLE]
    reports = [item for item in sink.handler.received if item.recipients[0].startswith("bounces+")]
    assert sorted(item.recipients[0] for item in notices) == sorted(PEOPLE)
    assert all(item.sender.startswith("bounces+") and item.sender.endswith("@example.org") for item in notices)  # VERP
    assert len(reports) == 1 and reports[0].sender in ("", "<>")  # a DSN has the null return path
    dsn = reports[0].message
    assert dsn.get_content_type() == "multipart/report" and dsn.get_param("report-type") == "delivery-status"

    mbox_path, maildir_path = tmp_path / "bounces.mbox", tmp_path / "Maildir"
    box = mailbox.mbox(str(mbox_path))
    box.add(reports[0].data)
    box.add(b"From: someone@example.net\r\nSubject: hello\r\n\r\nnot a report\r\n")
    box.close()
    imported = run("--repo", notify_repo, "bounces", "import", mbox_path)
    assert imported.stdout.startswith(f"{mbox_path}: 2 message(s), 1 report(s): 1 hard bounce(s), 0 delayed or soft, "
                                      "0 complaint(s); 1 other message(s) skipped\n")
    assert f"suppressed: {UNKNOWN} (no more notices go to it)" in imported.stdout
    listing = run("--repo", notify_repo, "notices", "privacy", VERSION, "--state", "bounced").stdout
    [line] = listing.splitlines()
    assert line.startswith("bounced") and UNKNOWN in line and "unknown user" in line, listing
    # The same report again, from a Maildir this time: recorded once.
    folder = mailbox.Maildir(str(maildir_path))
    folder.add(reports[0].data)
    folder.close()
    again = run("--repo", notify_repo, "bounces", "import", maildir_path)
    assert "1 report(s): 0 hard bounce(s), 0 delayed or soft, 0 complaint(s); 1 recorded before" in again.stdout
    totals = run("--repo", notify_repo, "notices", "privacy", VERSION).stderr
    assert totals.strip() == f"{VERSION}: 1 bounced, 6 sent"
