"""Start-up: whole-process wall time of everyday `addendum` commands on the shipped example repository.

Runs alone (`.venv/bin/python benchmarks/bench_cli.py`) or from benchmarks/run.py (`python benchmarks/run.py cli`,
`make bench BENCH=cli`). Each command runs as the user runs it: the `addendum` console script next to the venv's
python (falling back to `python -m addendum`), in the repository root, stdout and stderr captured. All commands run
in one interleaved run: a warm-up round that is not counted, then ROUNDS rounds of every command once each (the
order rotated per round), so machine noise hits all of them alike. Each row: median and fastest of ROUNDS runs, the
ratio of the median to the floor, `python -c "import click, jinja2, markdown_it"` (what any CLI of ours must pay).
Targets: `--help` ≤ 1.3× the floor; `check`, `diff` and `log` ≤ 2×. `log` on a repository it has run in before reads
the suggested classes it worked out then from the user's cache folder (here one of the benchmark's own, as
XDG_CACHE_HOME); its first run, which works them out, is shown too, without a target (the cache is emptied before
each of its runs). `git diff --no-index --word-diff` of the same
two versions is shown for reference, without a target. Below the table: the five largest cumulative imports of
`addendum --help` (`python -X importtime`), and whether it imports weasyprint, sqlalchemy, git or fontTools.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROUNDS = 11
TIMEOUT = 60.0  # seconds one command may take before it is reported as an error
PROJECT = Path(__file__).resolve().parents[1]  # the shipped example repository: policies/privacy, history/
CACHE_HOME = Path(tempfile.gettempdir()) / f"addendum-bench-cli-{os.getpid()}"  # the commands' XDG_CACHE_HOME
OLD, NEW = "2018-05-19", "2020-09-01"
HEAVY = ("weasyprint", "sqlalchemy", "git", "fontTools")  # none of these is needed to print --help


@dataclass
class Command:
    name: str
    argv: list[str]
    target: float | None = None  # ratio of the median to the floor's median
    allowed: tuple[int, ...] = (0,)  # exit codes that are not errors
    before: Callable[[], None] | None = None  # run before each timed run, untimed
    times: list[float] = field(default_factory=list)
    error: str = ""


def addendum_argv() -> list[str]:
    """The console script a user runs, next to this python; `python -m addendum` when it is not installed."""
    script = Path(sys.executable).parent / "addendum"
    return [str(script)] if script.is_file() and os.access(script, os.X_OK) else [sys.executable, "-m", "addendum"]


def environment() -> dict[str, str]:
    """The same for every command, the floor included: bytecode is read where it exists and written where it does not,
    as for an installed package (whose bytecode pip compiled), whatever PYTHONDONTWRITEBYTECODE the caller has."""
    env = dict(os.environ, XDG_CACHE_HOME=str(CACHE_HOME))
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def compile_package() -> None:
    """Compile the addendum package the console script imports (it runs this python), as installing it would, so that
    no timed run pays for compiling."""
    probe = subprocess.run([sys.executable, "-c", "import addendum, os; print(os.path.dirname(addendum.__file__))"],
                           cwd=PROJECT, env=environment(), capture_output=True, text=True, check=False)
    if probe.returncode == 0 and probe.stdout.strip():
        subprocess.run([sys.executable, "-m", "compileall", "-q", probe.stdout.strip()], env=environment(),
                       capture_output=True, check=False)


def forget_suggestions() -> None:
    """`log` keeps the suggested classes it works out in the cache folder: without them, it works them out."""
    shutil.rmtree(CACHE_HOME / "addendum" / "suggestions", ignore_errors=True)


def commands() -> list[Command]:
    cli = addendum_argv()
    found = [
        Command("floor: python -c 'import click, jinja2, markdown_it'",
                [sys.executable, "-c", "import click, jinja2, markdown_it"]),
        Command("addendum --help", [*cli, "--help"], 1.3),
        Command("addendum check privacy", [*cli, "check", "privacy"], 2.0),
        Command(f"addendum diff privacy privacy@{OLD} privacy@{NEW} --site selentic --lang en",
                [*cli, "diff", "privacy", f"privacy@{OLD}", f"privacy@{NEW}", "--site", "selentic", "--lang", "en"],
                2.0, allowed=(0, 1)),  # 1: there are changes
        Command("addendum log privacy", [*cli, "log", "privacy"], 2.0),
        Command("(first run) addendum log privacy, nothing cached", [*cli, "log", "privacy"], before=forget_suggestions),
    ]
    git = shutil.which("git")
    old_file, new_file = (Path("history") / "privacy" / day / "source" / "en.md" for day in (OLD, NEW))
    if git and (PROJECT / old_file).is_file() and (PROJECT / new_file).is_file():
        found.append(Command("(reference) git diff --no-index --word-diff",
                             [git, "diff", "--no-index", "--word-diff", str(old_file), str(new_file)],
                             allowed=(0, 1)))
    return found


def last_line(stderr: bytes) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines() or ["(no output on stderr)"]
    return lines[-1][:100]


def run_once(command: Command, env: dict[str, str]) -> None:
    """One timed run; an exit code not allowed, or a timeout, marks the command as an error (and stops timing it)."""
    if command.error:
        return
    if command.before is not None:
        command.before()
    started = time.perf_counter()
    try:
        result = subprocess.run(command.argv, cwd=PROJECT, env=env, capture_output=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        command.error = f"ERROR: timed out after {TIMEOUT:.0f} s"
        return
    except OSError as error:
        command.error = f"ERROR: {error}"
        return
    elapsed = time.perf_counter() - started
    # Python exits 1 on an uncaught exception too: an allowed non-zero code counts only with output and no traceback.
    crashed = b"Traceback (most recent call last)" in result.stderr
    if result.returncode not in command.allowed or crashed or (result.returncode and not result.stdout.strip()):
        command.error = f"ERROR: exit {result.returncode}: {last_line(result.stderr)}"
        return
    command.times.append(elapsed)


def measure(rows: list[Command], rounds: int = ROUNDS) -> None:
    env = environment()
    for number in range(rounds + 1):  # round 0 is the warm-up: file-system cache, .pyc files
        shift = number % len(rows)
        for command in rows[shift:] + rows[:shift]:
            run_once(command, env)
        if number == 0:
            for command in rows:
                command.times.clear()


def table(rows: list[Command]) -> None:
    floor = rows[0]
    base = statistics.median(floor.times) if floor.times and not floor.error else None
    width = max(len(c.name) for c in rows)
    print(f"{'command':<{width}}  {'median':>9}  {'min':>9}  {'vs floor':>8}  {'target':>7}  verdict")
    for command in rows:
        if command.error:
            print(f"{command.name:<{width}}  {'':>9}  {'':>9}  {'':>8}  "
                  f"{'' if command.target is None else f'≤ {command.target}×':>7}  {command.error}")
            continue
        median = statistics.median(command.times)
        ratio = median / base if base else None
        target = "" if command.target is None else f"≤ {command.target}×"
        verdict = ""
        if command.target is not None:
            verdict = "n/a (no floor)" if ratio is None else "MET" if ratio <= command.target else "MISSED"
        ratio_text = "" if ratio is None else f"{ratio:.2f}×"
        print(f"{command.name:<{width}}  {median * 1000:>6.0f} ms  {min(command.times) * 1000:>6.0f} ms  "
              f"{ratio_text:>8}  {target:>7}  {verdict}", flush=True)


def import_profile() -> None:
    """`addendum --help` under `python -X importtime`: the five largest cumulative imports, and any heavy package."""
    cli = addendum_argv()
    argv = [sys.executable, "-X", "importtime", *(cli if cli[0] != sys.executable else cli[1:]), "--help"]
    try:
        result = subprocess.run(argv, cwd=PROJECT, env=environment(), capture_output=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        print(f"\nimport profile of `addendum --help`: timed out after {TIMEOUT:.0f} s")
        return
    entries: list[tuple[str, int, int]] = []  # (module, cumulative µs, nesting depth), in the order printed
    for line in result.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue  # the header line
        name = parts[2].rstrip()
        entries.append((name.strip(), int(parts[1]), (len(name) - len(name.lstrip())) // 2))
    if result.returncode != 0 or not entries:
        print(f"\nimport profile of `addendum --help`: exit {result.returncode}, {len(entries)} imports read: "
              f"{last_line(result.stderr)}")
        return
    top = sorted(entries, key=lambda e: e[1], reverse=True)[:5]
    print("\n`addendum --help` top 5 cumulative imports (python -X importtime): "
          + ", ".join(f"{name} {cumulative / 1000:.0f} ms" for name, cumulative, _ in top))
    # A module is printed after its own imports, so its importer is the next line one level up. A package's cost is
    # the cumulative time of every import into it from outside it (`fontTools` and, later, `fontTools.subset`).
    heavy = []
    for package in HEAVY:
        cost, importers = 0, []
        for index, (name, cumulative, depth) in enumerate(entries):
            if name.split(".")[0] != package:
                continue
            importer = next((n for n, _, d in entries[index + 1:] if d == depth - 1), "")
            if importer.split(".")[0] != package:
                cost += cumulative
                importers += [importer] if importer and importer not in importers else []
        if cost:
            heavy.append(f"{package} {cost / 1000:.0f} ms" + (f" (via {', '.join(importers)})" if importers else ""))
    if heavy:
        print(f"heavy imports in `addendum --help`: {'; '.join(heavy)}  (none is needed to print help)")
    else:
        print(f"heavy imports in `addendum --help`: none of {', '.join(HEAVY)}")


def main() -> None:
    rows = commands()
    cli = addendum_argv()
    print(f"start-up in {PROJECT}: {'console script ' + cli[0] if len(cli) == 1 else ' '.join(cli)}; "
          f"median and min of {ROUNDS} interleaved rounds after a warm-up round, timeout {TIMEOUT:.0f} s each")
    compile_package()
    try:
        measure(rows)
    finally:
        shutil.rmtree(CACHE_HOME, ignore_errors=True)
    table(rows)
    import_profile()


if __name__ == "__main__":
    main()
