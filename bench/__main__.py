"""`make bench`: run every benchmark module of this folder (or those named: `python -m bench matcher`)."""

import importlib
import pkgutil
import sys
from pathlib import Path


def main(names: list[str]) -> None:
    available = sorted(
        m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_")
    )
    chosen = [n for n in available if not names or n.removeprefix("bench_") in names]
    for name in chosen:
        print(f"=== {name}", flush=True)
        importlib.import_module(f"bench.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
