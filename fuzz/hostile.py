"""Hostile inputs, measured: each must finish or be refused with a diagnostic within
seconds and without exhausting memory.

    python fuzz/hostile.py            # every case, one fresh process each
    python fuzz/hostile.py keys-100k  # one case

Each case runs in its own process, so its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own; the table shows
the seconds the case took after imports, its peak RSS and the peak after
imports alone (the baseline), and what capibara said. The cheap cases are
also asserted in ``tests/test_hostile_inputs.py``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20


def _write(parts) -> Path:
    """A temp file holding the concatenated ``parts`` (bytes), written piece by piece so
    building a 50 MB input does not itself raise the process's peak memory."""
    handle = tempfile.NamedTemporaryFile("wb", suffix=".toml", delete=False)
    with handle:
        for part in parts:
            handle.write(part)
    return Path(handle.name)


def _compile(path: Path) -> str:
    """Compile one file; what came out (``plan`` or the error codes)."""
    from capibara.compiler.driver import compile_sources

    result = compile_sources([path], target="cpu", env=None)
    if result.plan is not None:
        return "plan"
    codes = [d.code for d in result.diagnostics if d.is_error]
    return f"{len(codes)} errors: " + ", ".join(sorted(set(codes)))


def _loads(path: Path) -> str:
    """Parse a file's text with ``capibara.toml.loads`` (no file size limit)."""
    from capibara import toml
    from capibara.diagnostics import ConfigError

    text = path.read_text(encoding="utf-8")
    try:
        toml.loads(text)
    except ConfigError as error:
        return "refused: " + ", ".join(d.code for d in error.diagnostics)
    return "parsed"


def _lines_50mb():
    line = b"key_0000000 = 1234567890\n"
    yield b"[model]\n"
    chunk = line * 4096
    for _ in range(50 * MB // len(chunk)):
        yield chunk


def _string_10mb():
    yield b'[model]\nmodel_name = "'
    for _ in range(10):
        yield b"x" * MB
    yield b'"\n'


#: name -> (the input's parts, how it is run, what it is)
CASES: dict[str, tuple[Callable[[], object], Callable[[Path], str], str]] = {
    "file-50mb": (_lines_50mb, _compile, "a 50 MB file of key/value lines"),
    "keys-100k": (lambda: [b"[model]\n", "".join(f"k{i}=1\n" for i in range(100_000)).encode()],
                  _compile, "100,000 keys in one table (~0.8 MB), each unknown"),
    "keys-100k-loads": (lambda: ["".join(f"key_{i} = {i}\n" for i in range(100_000)).encode()],
                        _loads, "100,000 keys (~1.7 MB) handed to the parser directly"),
    "nesting-10k-arrays": (lambda: [b"a = " + b"[" * 10_000 + b"]" * 10_000 + b"\n"],
                           _compile, "10,000 nested arrays"),
    "nesting-10k-tables": (lambda: [b"a = " + b"{b = " * 10_000 + b"1" + b"}" * 10_000 + b"\n"],
                           _compile, "10,000 nested inline tables"),
    "nesting-10k-keys": (lambda: [b"a" + b".a" * 9_999 + b" = 1\n[t" + b".t" * 9_999 + b"]\n"],
                         _compile, "a dotted key and a table header of 10,000 parts"),
    "string-10mb-file": (_string_10mb, _compile, "a 10 MB string value in a file"),
    "string-10mb-loads": (_string_10mb, _loads, "a 10 MB string handed to the parser directly"),
}


def measure(name: str) -> dict:
    """Run case ``name`` in this process: outcome, seconds, peak and baseline RSS (MiB)."""
    sys.path.insert(0, str(ROOT))
    import capibara.compiler.driver  # noqa: F401  (imports are not the case's cost)
    import capibara.toml  # noqa: F401

    parts, run, _ = CASES[name]
    path = _write(parts())
    try:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        outcome = run(path)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        path.unlink()
    return {"case": name, "outcome": outcome, "seconds": round(seconds, 3),
            "peak_rss_mib": round(peak, 1), "baseline_rss_mib": round(baseline, 1),
            "bytes": sum(len(p) for p in parts())}


def run_isolated(name: str, timeout: float = 300) -> dict:
    """Measure case ``name`` in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPIBARA_")}
    done = subprocess.run([sys.executable, __file__, "--measure", name], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=ROOT)
    if done.returncode != 0:
        return {"case": name, "outcome": f"CRASH: {done.stderr.strip().splitlines()[-1:]}",
                "seconds": None, "peak_rss_mib": None, "baseline_rss_mib": None}
    return json.loads(done.stdout)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--measure"]:
        print(json.dumps(measure(argv[1])))
        return 0
    names = argv or list(CASES)
    print(f"{'case':<20} {'input':>9} {'seconds':>8} {'peak RSS':>9} {'baseline':>9}  outcome")
    failed = False
    for name in names:
        row = run_isolated(name)
        failed |= row["seconds"] is None
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.2f}"
        peak = "-" if row["peak_rss_mib"] is None else f"{row['peak_rss_mib']:.0f} MiB"
        base = "-" if row["baseline_rss_mib"] is None else f"{row['baseline_rss_mib']:.0f} MiB"
        size = "-" if row.get("bytes") is None else f"{row['bytes'] / MB:.1f} MB"
        print(f"{name:<20} {size:>9} {seconds:>8} {peak:>9} {base:>9}  {row['outcome']}",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
