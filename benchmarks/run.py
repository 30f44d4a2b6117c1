"""`make bench`: run every benchmarks/bench_*.py in one process, each printing its own table.

`python benchmarks/run.py cli diff` (or `make bench BENCH="cli diff"`) runs only bench_cli.py and bench_diff.py.
"""

from __future__ import annotations

import importlib.util
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def selected(names: list[str]) -> list[Path]:
    """The benchmarks named (`cli`, `bench_cli` or `bench_cli.py`), in the order given; all of them when none is."""
    found = {path.stem.removeprefix("bench_"): path for path in sorted(HERE.glob("bench_*.py"))}
    if not names:
        return list(found.values())
    wanted = [Path(name).name.removesuffix(".py").removeprefix("bench_") for name in names]
    unknown = [name for name in wanted if name not in found]
    if unknown:
        raise SystemExit(f"no benchmark named {', '.join(unknown)}; there are: {', '.join(found)}")
    return [found[name] for name in dict.fromkeys(wanted)]


def main(names: list[str] | None = None) -> None:
    sys.path.insert(0, str(HERE))
    failed = []
    for path in selected(sys.argv[1:] if names is None else names):
        print(f"\n=== {path.stem} ===", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module  # as an import would: dataclasses, pickling and typing look the module up here
        started = time.perf_counter()
        try:
            spec.loader.exec_module(module)
            module.main()
        except Exception:  # one broken benchmark must not hide the others' tables
            traceback.print_exc()
            failed.append(path.stem)
        print(f"({path.stem}: {time.perf_counter() - started:.1f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
