"""Run the project's benchmarks and print one JSON object per line.

Usage: ``python benchmarks/run.py [NAME ...] [--quick] [--list]``

Every ``bench_*.py`` module of this folder is imported; each registers its
benchmarks with ``@benchmark("name")`` (see ``_registry.py``). Without names,
every benchmark runs. The runner reports and does not judge: the exit status is
0 when the benchmarks ran, whatever their ratios; 2 for an unknown name; 1 when
a benchmark raised (its traceback goes to stderr and the others still run).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _registry import Benchmark, registered  # noqa: E402


def discover() -> dict[str, Benchmark]:
    """Import every ``bench_*.py`` module beside this file; return the registry."""
    for module in sorted(HERE.glob("bench_*.py")):
        importlib.import_module(module.stem)
    return registered()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Run benchmarks; print one JSON object per line.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (all if none)")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds in all")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    benchmarks = discover()
    unknown = [name for name in args.names if name not in benchmarks]
    if unknown:
        print(
            f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(benchmarks)}",
            file=sys.stderr,
        )
        return 2
    if args.list:
        width = max((len(name) for name in benchmarks), default=0)
        for name, entry in benchmarks.items():
            print(f"{name:<{width}}  {entry.description}".rstrip())
        return 0
    status = 0
    for name in dict.fromkeys(args.names) or benchmarks:
        try:
            result = benchmarks[name].function(args.quick)
            if result.name != name:
                raise ValueError(f"benchmark {name!r} returned a result named {result.name!r}")
        except Exception:
            print(f"benchmark {name!r} failed:", file=sys.stderr)
            traceback.print_exc()
            status = 1
            continue
        print(json.dumps(result.as_dict()), flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
