"""How fast capibara.toml parses, measured against tomllib in the same run.

    python benchmarks/parse.py [--profile]

Prints the median CPU time (this process's, so that other work on a shared
machine disturbs it less than wall time) of ``capibara.toml.loads`` and
``tomllib.loads``, measured alternately, on
``shared/bench/ml_config.toml`` (121 lines) and on the ~20,000-line file that
``shared/bench/gen_large.py`` builds (generated in a temporary directory),
their ratio (the goal is at most 2.5x), the time per line at two sizes (the
cost should grow linearly), and the one-off cost of a fresh process's first
parse: of a valid text (tomllib's values, the places from capibara.toml.locate)
and of an invalid one (the full parser, which explains the error).
``--profile`` adds where the time goes on the large file.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "bench"
sys.path.insert(0, str(ROOT))

from capibara import toml  # noqa: E402


def seconds(function, text: str) -> float:
    start = time.process_time()
    function(text)
    return time.process_time() - start


def compare(name: str, text: str, repeats: int) -> tuple[float, float]:
    """Median CPU seconds of capibara and tomllib, measured alternately."""
    toml.loads(text)  # build the parser and warm caches outside the timing
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(seconds(toml.loads, text))
        theirs.append(seconds(tomllib.loads, text))
    mine, base = statistics.median(ours), statistics.median(theirs)
    lines = text.count("\n")
    print(f"{name:<28} {lines:>6} lines  capibara {mine * 1e3:8.2f} ms  "
          f"tomllib {base * 1e3:8.2f} ms  ratio {mine / base:5.2f}x")
    return mine, base


def large_text() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("gen_large.py", "ml_config.toml"):
            shutil.copy(BENCH / name, tmp)
        subprocess.run([sys.executable, "gen_large.py"], cwd=tmp, check=True,
                       capture_output=True)
        return (Path(tmp) / "large.toml").read_text(encoding="utf-8")


def build_cost(text: str) -> float:
    """Seconds to import capibara.toml and parse ``text`` (a valid one: tomllib and the
    scan of capibara.toml.locate; an invalid one: the full parser, built or loaded from
    its cache, which explains the error), in a fresh process."""
    script = ("import time; t = time.process_time(); from capibara import toml\n"
              "from capibara.diagnostics import ConfigError\n"
              f"try: toml.loads({text!r})\n"
              "except ConfigError: pass\n"
              "print(time.process_time() - t)")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return float(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", action="store_true", help="profile the large file")
    args = parser.parse_args()

    small = (BENCH / "ml_config.toml").read_text(encoding="utf-8")
    large = large_text()
    # A quarter of the large file, cut at a table boundary, for the scaling check.
    quarter = large[: large.index("\n[exp_", len(large) // 4) + 1]

    print(f"python {sys.version.split()[0]}, median CPU time of alternating runs\n")
    compare("ml_config.toml", small, 500)
    quarter_time, _ = compare("large.toml, first quarter", quarter, 21)
    large_time, _ = compare("large.toml", large, 11)
    per_line_quarter = quarter_time / quarter.count("\n") * 1e6
    per_line_large = large_time / large.count("\n") * 1e6
    print(f"\nper line: {per_line_quarter:.2f} us at {quarter.count(chr(10))} lines, "
          f"{per_line_large:.2f} us at {large.count(chr(10))} lines "
          f"(ratio {per_line_large / per_line_quarter:.2f}; 1.00 is linear)")
    print(f"fresh process, import + first parse: {build_cost('a = 1') * 1e3:.0f} ms CPU; "
          f"of an invalid text (the full parser): {build_cost('a = ') * 1e3:.0f} ms CPU")

    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        toml.loads(large)
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(12)
        print("\n" + out.getvalue())


if __name__ == "__main__":
    main()
