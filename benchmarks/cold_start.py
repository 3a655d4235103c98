"""Cold-process cost of `capibara check` and `capibara compile` against the
cheapest possible TOML load.

Anchor: a `python -c` process that imports tomllib and msgspec and loads the
same file. Goal (issues 2 and 4): `capibara check configs/production/tpu_v4.toml`
and `capibara compile ... --target cpu -o -` each at most 2x that. `python -c
pass` is printed as the floor every process pays. All commands run
interleaved, N times each; medians and the ratios are printed.

    python benchmarks/cold_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/production/tpu_v4.toml"


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


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
    }
    # An installed wheel has bytecode; a checkout run with PYTHONDONTWRITEBYTECODE=1
    # (as this machine sets) would recompile every module in every process instead.
    import compileall

    compileall.compile_dir(str(ROOT / "capibara"), quiet=1)
    for cmd in commands.values():  # warm the page cache
        timed(cmd)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            samples[name].append(timed(cmd))
    medians = {name: statistics.median(s) for name, s in samples.items()}
    anchor = medians["anchor: python -c tomllib+msgspec"]
    for name, median in medians.items():
        print(f"{name:40s} median {median * 1e3:7.1f} ms   {median / anchor:5.2f}x anchor")
    print()
    for name in ("capibara check", "capibara compile"):
        print(f"{name} / anchor = {medians[name] / anchor:.2f}x (goal <= 2.0x)")


if __name__ == "__main__":
    main()
