"""Real office software for the .docx tests: LibreOffice headless (Accept All / Reject All by a Basic macro) and pandoc.

LibreOffice runs in a throw-away profile made once per test session: its first start (which writes the profile)
is done on its own with --terminate_after_init, then our macro library is written into the profile. One soffice
runs at a time (a file lock shared by every test process on the machine, since a second instance on the same
profile would hand its work to the first and exit), every call has a timeout, and on a timeout the whole process
group is killed so that no soffice.bin is left behind. A stale `.lock` left by a killed run is removed first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

SOFFICE_TIMEOUT = 180.0
PANDOC_TIMEOUT = 60.0
MACHINE_LOCK = Path(tempfile.gettempdir()) / "addendum-soffice.lock"

# The macro: for each line "mode<TAB>input<TAB>output" of the job file, open the document hidden (no repair),
# accept or reject every tracked change, and save it as .docx; write "ok <redlines left>" or "error <message>" per
# job to the result file. "open" only opens and saves, to prove the package loads. (The macro does not count the
# redlines: the Redlines collection of LibreOffice 7.4 aborts the process when enumerated after Accept All; the saved
# file is read instead.)
MACRO = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE script:module PUBLIC "-//OpenOffice.org//DTD OfficeDocument 1.0//EN" "module.dtd">
<script:module xmlns:script="http://openoffice.org/2000/script" script:name="Addendum" script:language="StarBasic">
Sub RunJobs(jobFile As String, resultFile As String)
  Dim inNo As Integer, outNo As Integer, line As String, parts() As String
  Dim answer As String
  inNo = FreeFile()
  Open jobFile For Input As #inNo
  Do While Not EOF(inNo)
    Line Input #inNo, line
    If Len(line) &gt; 0 Then
      parts = Split(line, Chr(9))
      answer = RunJob(parts(0), parts(1), parts(2))
      outNo = FreeFile()
      Open resultFile For Append As #outNo
      Print #outNo, answer
      Close #outNo
    End If
  Loop
  Close #inNo
End Sub

Function RunJob(mode As String, inPath As String, outPath As String) As String
  On Error GoTo Failed
  Dim loadArgs(1) As New com.sun.star.beans.PropertyValue
  loadArgs(0).Name = "Hidden" : loadArgs(0).Value = True
  loadArgs(1).Name = "RepairPackage" : loadArgs(1).Value = False
  Dim doc As Object
  doc = StarDesktop.loadComponentFromURL(ConvertToURL(inPath), "_blank", 0, loadArgs())
  If IsNull(doc) Then
    RunJob = "error cannot open"
    Exit Function
  End If
  Dim helper As Object
  helper = createUnoService("com.sun.star.frame.DispatchHelper")
  If mode = "accept" Then
    helper.executeDispatch(doc.CurrentController.Frame, ".uno:AcceptAllTrackedChanges", "", 0, Array())
  ElseIf mode = "reject" Then
    helper.executeDispatch(doc.CurrentController.Frame, ".uno:RejectAllTrackedChanges", "", 0, Array())
  End If
  Dim saveArgs(0) As New com.sun.star.beans.PropertyValue
  saveArgs(0).Name = "FilterName" : saveArgs(0).Value = "MS Word 2007 XML"
  doc.storeToURL(ConvertToURL(outPath), saveArgs())
  RunJob = "ok"
  doc.close(True)
  Exit Function
Failed:
  RunJob = "error " &amp; Err &amp; " " &amp; Error$ &amp; " line " &amp; Erl
End Function
</script:module>
"""
SCRIPT_XLB = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE library:library PUBLIC "-//OpenOffice.org//DTD OfficeDocument 1.0//EN" "library.dtd">
<library:library xmlns:library="http://openoffice.org/2000/library" library:name="Standard" library:readonly="false" library:passwordprotected="false">
 <library:element library:name="Module1"/>
 <library:element library:name="Addendum"/>
</library:library>
"""


class OfficeError(RuntimeError):
    """LibreOffice did not finish, or could not do what it was asked."""


@dataclass(frozen=True)
class Job:
    mode: str  # "accept" | "reject" | "open"
    source: Path
    target: Path


@dataclass(frozen=True)
class Outcome:
    """What the macro said of one job: done, or the error it met."""

    ok: bool
    message: str


def soffice() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


@contextlib.contextmanager
def one_instance() -> Iterator[None]:
    """Hold the machine-wide lock: one soffice of ours at a time, whichever test process started it."""
    with MACHINE_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run soffice in a process group of its own; on a timeout kill the whole group (soffice.bin included)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               stdin=subprocess.DEVNULL)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise OfficeError(f"{command[0]} did not finish within {timeout:.0f} s: {' '.join(command[1:])}") from None
    return subprocess.CompletedProcess(command, process.returncode, out, err)


class Office:
    """A LibreOffice with its own throw-away profile under `folder`."""

    def __init__(self, folder: Path) -> None:
        binary = soffice()
        if binary is None:
            raise OfficeError("LibreOffice (soffice) is not installed: apt-get install libreoffice-writer-nogui")
        self.binary = binary
        self.profile = folder / "profile"
        self.folder = folder
        self._prepared = False

    def _base(self) -> list[str]:
        return [self.binary, "--headless", "--invisible", "--norestore", "--nologo", "--nodefault", "--nolockcheck",
                f"-env:UserInstallation={self.profile.as_uri()}"]

    def _remove_stale_lock(self) -> None:
        (self.profile / ".lock").unlink(missing_ok=True)

    def _prepare(self) -> None:
        if self._prepared:
            return
        self._remove_stale_lock()
        if not (self.profile / "user").is_dir():
            _run([*self._base(), "--terminate_after_init"], SOFFICE_TIMEOUT)
            self._remove_stale_lock()
        basic = self.profile / "user" / "basic" / "Standard"
        basic.mkdir(parents=True, exist_ok=True)
        (basic / "Addendum.xba").write_text(MACRO, encoding="utf-8")
        if not (basic / "Module1.xba").exists():
            (basic / "Module1.xba").write_text(MACRO.replace('script:name="Addendum"', 'script:name="Module1"')
                                               .split("Sub RunJobs")[0] + "</script:module>\n", encoding="utf-8")
        (basic / "script.xlb").write_text(SCRIPT_XLB, encoding="utf-8")
        if not (basic / "dialog.xlb").exists():
            (basic / "dialog.xlb").write_text(
                '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE library:library PUBLIC "-//OpenOffice.org//DTD OfficeDocument 1.0//EN" '
                '"library.dtd">\n<library:library xmlns:library="http://openoffice.org/2000/library" library:name="Standard" '
                'library:readonly="false" library:passwordprotected="false"/>\n', encoding="utf-8")
        self._prepared = True

    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Do every job in one soffice start (each start costs seconds)."""
        with one_instance():
            self._prepare()
            self._remove_stale_lock()
            work = Path(tempfile.mkdtemp(dir=self.folder))
            job_file, result_file = work / "jobs.txt", work / "results.txt"
            job_file.write_text("".join(f"{j.mode}\t{j.source.resolve()}\t{j.target.resolve()}\n" for j in jobs), encoding="utf-8")
            macro = f'macro:///Standard.Addendum.RunJobs("{job_file}","{result_file}")'
            done = _run([*self._base(), macro], SOFFICE_TIMEOUT)
            self._remove_stale_lock()
        if not result_file.is_file():
            raise OfficeError(f"the LibreOffice macro wrote no results (exit {done.returncode}): {done.stderr[-2000:]}")
        outcomes = []
        for line in result_file.read_text(encoding="utf-8", errors="replace").splitlines():
            outcomes.append(Outcome(line.strip() == "ok", line.strip()))
        if len(outcomes) != len(jobs):
            raise OfficeError(f"the LibreOffice macro answered {len(outcomes)} of {len(jobs)} jobs: {done.stderr[-2000:]}")
        return outcomes


# --- reading the text back -------------------------------------------------------------------------------------

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
HEADING_STYLE = re.compile(r"^Heading(\d)$")
REVISION_TAGS = ("ins", "del", "moveFrom", "moveTo", "pPrChange", "rPrChange")


@dataclass(frozen=True)
class Body:
    """The policy text of a redline as a document holds it: (heading level, heading, text) per section, and what
    revision marks are left."""

    sections: tuple[tuple[int, str, str], ...]
    revisions: int


def _paragraph_text(paragraph: Any) -> str:
    parts = []
    for node in paragraph.iter(f"{W}t", f"{W}tab", f"{W}br", f"{W}delText"):
        if node.tag == f"{W}t":
            parts.append(node.text or "")
        elif node.tag == f"{W}tab":
            parts.append("\t")
        elif node.tag == f"{W}br":
            parts.append("\n")
    return "".join(parts)


def body_of(path: Path, start: str = "addendum_text", end: str = "addendum_signoff") -> Body:
    """The sections between the bookmarks `start` and `end` (the redline's text, without title block and sign-off)."""
    with zipfile.ZipFile(path) as package:
        root = etree.fromstring(package.read("word/document.xml"))
    revisions = sum(len(root.findall(f".//{W}{tag}")) for tag in REVISION_TAGS)
    sections: list[tuple[int, str, list[str]]] = []
    inside = False
    for paragraph in root.iter(f"{W}p"):
        names = {b.get(f"{W}name") for b in paragraph.iter(f"{W}bookmarkStart")}
        if end in names:
            break
        if start in names:
            inside = True
            continue
        if not inside:
            continue
        style = paragraph.find(f"{W}pPr/{W}pStyle")
        match = HEADING_STYLE.match(style.get(f"{W}val") or "") if style is not None else None
        text = _paragraph_text(paragraph)
        if match:
            sections.append((int(match.group(1)), text, []))
        elif text:
            if not sections:
                sections.append((0, "", []))
            sections[-1][2].append(text)
    return Body(tuple((level, heading, "\n\n".join(texts)) for level, heading, texts in sections), revisions)


def _inline_text(inlines: list[Any]) -> str:
    out = []
    for item in inlines:
        kind, content = item["t"], item.get("c")
        if kind == "Str":
            out.append(content)
        elif kind in ("Space", "SoftBreak"):
            out.append(" " if kind == "Space" else "\n")
        elif kind == "LineBreak":
            out.append("\n")
        elif kind in ("Emph", "Strong", "Underline", "Strikeout", "SmallCaps", "Superscript", "Subscript"):
            out.append(_inline_text(content))
        elif kind in ("Span", "Link"):
            out.append(_inline_text(content[1]))
        elif kind == "Quoted":
            quote = "“" if content[0]["t"] == "DoubleQuote" else "‘"
            out.append(quote + _inline_text(content[1]) + ("”" if quote == "“" else "’"))
        elif kind == "Code":
            out.append(content[1])
    return "".join(out)


def pandoc_body(path: Path, changes: str, start: str = "Text with tracked changes", end: str = "Sign-off") -> Body:
    """The same sections as pandoc reads them with --track-changes=accept|reject (whitespace as pandoc keeps it:
    runs of spaces and tabs become one space). Pandoc does not keep bookmark names, so the text is found between
    the headings `start` and `end`."""
    binary = shutil.which("pandoc")
    if binary is None:
        raise OfficeError("pandoc is not installed: apt-get install pandoc")
    done = subprocess.run([binary, f"--track-changes={changes}", "-f", "docx", "-t", "json", str(path)],
                          capture_output=True, text=True, timeout=PANDOC_TIMEOUT, check=False)
    if done.returncode:
        raise OfficeError(f"pandoc failed on {path}: {done.stderr}")
    blocks = json.loads(done.stdout)["blocks"]
    sections: list[tuple[int, str, list[str]]] = []
    inside = False
    for block in blocks:
        if block["t"] == "Header":
            level, _, inlines = block["c"]
            title = _inline_text(inlines)
            if title == end:
                break
            if title == start:
                inside = True
                continue
            if inside:
                sections.append((level, title, []))
        elif inside and block["t"] in ("Para", "Plain"):
            text = _inline_text(block["c"])
            if text:
                if not sections:
                    sections.append((0, "", []))
                sections[-1][2].append(text)
    return Body(tuple((level, heading, "\n\n".join(texts)) for level, heading, texts in sections), 0)
