"""Cold-process cost of `capibara check` and `capibara compile` against the
cheapest possible TOML load.

Anchor: a `python -c` process that imports tomllib and msgspec and loads the
same file. Goal (issues 2, 4 and 14): `capibara check configs/production/tpu_v4.toml`,
`capibara compile ... --target cpu -o -` and the same compile writing a plan file
(`-o DIR/tpu_v4.plan.json`, in a temporary folder) each at most 2x that. `python -c
pass` is printed as the floor every process pays. All commands run
interleaved, N times each; medians and the ratios are printed, of wall time
and of the CPU time (user + system) each process used, which a busy shared
machine disturbs far less than wall time.

    python benchmarks/cold_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/production/tpu_v4.toml"


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    capibara = str(Path(sys.executable).with_name("capibara"))
    commands = {
        "anchor: python -c tomllib+msgspec": [
            sys.executable, "-c",
            f"import tomllib, msgspec; tomllib.load(open({CONFIG!r}, 'rb'))"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "capibara check": [capibara, "check", "--no-env", CONFIG],
        "capibara compile": [capibara, "compile", CONFIG, "--target", "cpu", "-o", "-"],
        "capibara compile -o FILE": [capibara, "compile", CONFIG, "--target", "cpu", "-o",
                                     str(Path(tempfile.mkdtemp()) / "tpu_v4.plan.json")],
    }
    # An installed wheel has bytecode; a checkout run with PYTHONDONTWRITEBYTECODE=1
    # (as this machine sets) would recompile every module in every process instead.
    import compileall

    compileall.compile_dir(str(ROOT / "capibara"), quiet=1)
    for cmd in commands.values():  # warm the page cache
        timed(cmd)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            samples[name].append(timed(cmd))
    wall = {name: statistics.median(w for w, _ in s) for name, s in samples.items()}
    cpu = {name: statistics.median(c for _, c in s) for name, s in samples.items()}
    anchor = "anchor: python -c tomllib+msgspec"
    for name in commands:
        print(f"{name:36s} wall {wall[name] * 1e3:6.1f} ms {wall[name] / wall[anchor]:5.2f}x   "
              f"cpu {cpu[name] * 1e3:6.1f} ms {cpu[name] / cpu[anchor]:5.2f}x anchor")
    print()
    for name in ("capibara check", "capibara compile", "capibara compile -o FILE"):
        print(f"{name} / anchor = {wall[name] / wall[anchor]:.2f}x wall, "
              f"{cpu[name] / cpu[anchor]:.2f}x cpu (goal <= 2.0x)")

if __name__ == "__main__":
    main()
