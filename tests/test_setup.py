"""scripts/check-system, which `make demo`, `make test` and .ci/run start with: quiet when the Debian packages are
there, and, for a user who may not install them, a stop within seconds that names the one apt-get line to run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check-system"
NOBODY = 65534
MISSING = "addendum-no-such-package"
INSTALLED = "dpkg"  # essential: installed on every Debian system
INSTALL_LINE = re.compile(r"(?:^\s*|sudo |&& )apt-get install -y --no-install-recommends (.+)$", re.MULTILINE)

DEBIAN = shutil.which("dpkg-query") is not None and shutil.which("apt-get") is not None
on_debian = pytest.mark.skipif(not DEBIAN, reason="needs dpkg-query and apt-get (Debian)")


def _may_install() -> bool:
    """Would the script install for the user running the tests (root, or password-less sudo)?"""
    if os.geteuid() == 0:
        return True
    sudo = shutil.which("sudo")
    return sudo is not None and subprocess.run([sudo, "-n", "true"], capture_output=True, timeout=10).returncode == 0


# As root the script runs as `nobody`; a user without password-less sudo runs it as themselves. Only a
# non-root user with password-less sudo cannot be a user who may not install.
AS_UNPRIVILEGED: dict[str, Any] | None = (
    {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else (None if _may_install() else {}))
unprivileged = pytest.mark.skipif(AS_UNPRIVILEGED is None, reason="not root, and password-less sudo: cannot run as a user who may not install")


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder `nobody` can read (pytest's tmp_path is private to root), holding a copy of the script."""
    path = Path(tempfile.mkdtemp(prefix="addendum-setup-"))
    path.chmod(0o755)
    shutil.copy2(SCRIPT, path / "check-system")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def check_system(folder: Path, packages: str, *args: str, **environment: str) -> tuple[subprocess.CompletedProcess[str], float]:
    listing = folder / "packages.txt"
    listing.write_text(packages, encoding="utf-8")
    listing.chmod(0o644)
    env = {**os.environ, "ADDENDUM_SYSTEM_PACKAGES": str(listing), **environment}
    env.pop("ADDENDUM_SYSTEM_CHECK", None)
    started = time.monotonic()
    result = subprocess.run([shutil.which("bash") or "/bin/bash", str(folder / "check-system"), *args], cwd=folder, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10, **(AS_UNPRIVILEGED or {}))
    return result, time.monotonic() - started


@on_debian
@unprivileged
def test_a_user_who_may_not_install_is_stopped_at_once_with_the_line_to_run(folder):
    result, seconds = check_system(folder, f"# a comment\n{INSTALLED}   # installed\n\n{MISSING}\n")
    assert result.returncode == 1, result
    assert seconds < 10
    lines = INSTALL_LINE.findall(result.stdout + result.stderr)
    assert lines == [MISSING], result.stderr  # the missing package, and not the installed one
    assert f"missing Debian packages: {MISSING}\n" in result.stderr


@on_debian
@unprivileged
def test_nothing_missing_is_quiet_and_quick(folder):
    result, seconds = check_system(folder, f"{INSTALLED} bash\n# {MISSING} is only named in a comment\ncoreutils")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert seconds < 5


@on_debian
@unprivileged
@pytest.mark.skipif(not Path("/usr/bin/python3").exists(), reason="needs Debian's /usr/bin/python3")
def test_a_python_without_ensurepip_asks_for_its_venv_package(folder):
    fake = folder / "python-without-venv"  # Debian's python3 as it is without python3-venv: no ensurepip
    fake.write_text('#!/bin/sh\ncase "$*" in *ensurepip*) exit 1;; esac\nexec /usr/bin/python3 "$@"\n', encoding="utf-8")
    fake.chmod(0o755)
    version = subprocess.run(["/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    result, _ = check_system(folder, f"{INSTALLED}\n", "--python", str(fake))
    if tuple(map(int, version.split("."))) < (3, 11):
        assert result.returncode == 1 and "needs Python 3.11 or newer" in result.stderr
    else:
        assert result.returncode == 1, result
        assert INSTALL_LINE.findall(result.stderr) == [f"python{version}-venv"]


def test_without_dpkg_it_names_what_is_needed(folder):
    empty = folder / "empty-path"  # no dpkg-query, no apt-get, no sudo: as on a machine that is not Debian
    empty.mkdir(mode=0o755)
    result, seconds = check_system(folder, f"{INSTALLED}\n{MISSING} # why\n", PATH=str(empty))
    assert result.returncode == 1, result
    assert f"needs these Debian packages or their equivalents: {INSTALLED} {MISSING}\n" in result.stderr
    assert "ADDENDUM_SYSTEM_CHECK=skip" in result.stderr


def test_the_shipped_list_holds_the_packages_the_tests_need():
    names = [word for line in (ROOT / "scripts" / "system-packages.txt").read_text(encoding="utf-8").splitlines()
             for word in line.split("#", 1)[0].split()]
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9+.-]+", name) for name in names), names
    assert len(names) == len(set(names))
    assert {"git", "libharfbuzz-subset0", "chromium", "chromium-driver", "postgresql"} <= set(names)
    assert os.access(SCRIPT, os.X_OK)
    # The list is the one place: .ci/run names no packages of its own.
    assert "apt-get install" not in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
