"""`make bench`: run every benchmarks/bench_*.py `main()`, or those whose names contain an argument."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def main(names: list[str]) -> int:
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    chosen = [m for m in modules if not names or any(n in m for n in names)]
    for module in chosen:
        print(f"== {module}", flush=True)
        importlib.import_module(f"benchmarks.{module}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
