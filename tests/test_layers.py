"""The pipeline's layers hold: import-linter's contracts pass on the source and fail when a stage reaches upwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """Run the contracts of pyproject.toml over the `addendum` package found under `source_root`."""
    environment = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(PROJECT / "pyproject.toml"), "--no-cache"],
                          cwd=PROJECT, env=environment, capture_output=True, text=True, timeout=120)


def copy_of_source(tmp_path: Path) -> Path:
    shutil.copytree(PROJECT / "src" / "addendum", tmp_path / "addendum", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_contracts_pass_on_the_source() -> None:
    result = lint_imports(PROJECT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_stage_that_imports_the_operations_layer_breaks_the_layers(tmp_path: Path) -> None:
    root = copy_of_source(tmp_path)
    classify = root / "addendum" / "compare" / "classify.py"
    classify.write_text(classify.read_text(encoding="utf-8") + "\nfrom addendum.operations import changes  # noqa\n",
                        encoding="utf-8")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout
    assert "addendum.compare.classify -> addendum.operations.changes" in result.stdout


def test_a_stage_that_imports_git_breaks_the_adapter_contract(tmp_path: Path) -> None:
    root = copy_of_source(tmp_path)
    ledger = root / "addendum" / "history" / "ledger.py"
    ledger.write_text(ledger.read_text(encoding="utf-8") + "\nimport git  # noqa\n", encoding="utf-8")
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout
    assert "Only the history adapter imports git BROKEN" in " ".join(result.stdout.split())
