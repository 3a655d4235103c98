"""The kernel benchmarks: runs every ``benchmarks/kernels_*.py`` in turn and prints each one's output.

Each script runs in its own process (the same interpreter), one after the
other so they do not compete for the cores, and its output is printed under a
header naming it. The scripts have no quick mode: each runs at its DESIGN.md
§5 shape. ``--rounds`` (which every script takes) is passed through when
given; naming families runs only those.

    .venv/bin/python benchmarks/kernels.py [--rounds N] [attention conv ...]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def kernel_scripts() -> dict[str, Path]:
    """family -> its benchmark script, e.g. ``"vq" -> benchmarks/kernels_vq.py``."""
    return {path.stem.removeprefix("kernels_"): path for path in sorted(HERE.glob("kernels_*.py"))}


def main() -> int:
    scripts = kernel_scripts()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("families", nargs="*", metavar="family", help=f"any of: {', '.join(scripts)} (default: all)")
    parser.add_argument("--rounds", type=int, help="timed rounds, passed to every script (default: each script's own)")
    args = parser.parse_args()
    unknown = [name for name in args.families if name not in scripts]
    if unknown:
        parser.error(f"unknown kernel families: {', '.join(unknown)} (known: {', '.join(scripts)})")
    extra = [] if args.rounds is None else ["--rounds", str(args.rounds)]

    failed = []
    for family in args.families or list(scripts):
        path = scripts[family]
        print(f"=== {family}: {path.relative_to(HERE.parent)} {' '.join(extra)}".rstrip(), flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(path), *extra], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        print(done.stdout, end="" if done.stdout.endswith("\n") or not done.stdout else "\n")
        status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        print(f"--- {family}: {status}, {time.perf_counter() - start:.0f} s", flush=True)
        print(flush=True)
        if done.returncode != 0:
            failed.append(family)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
