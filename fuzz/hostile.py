"""Hostile inputs, measured: each must finish or be refused with a diagnostic within
seconds and without exhausting memory.

    python fuzz/hostile.py            # every case, one fresh process each
    python fuzz/hostile.py keys-100k  # one case
    python fuzz/hostile.py --runtime  # the kernel cache raced, damaged and emptied
    python fuzz/hostile.py --front    # special files, sizes, output targets, escaping (bounded)

Each case runs in its own process, so its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own; the table shows
the seconds the case took after imports, its peak RSS and the peak after
imports alone (the baseline), and what capibara said. The cheap cases are
also asserted in ``tests/test_hostile_inputs.py``; the ``plan-*`` cases (special
files, size, nesting, resealed plans) run under an address-space limit and are
asserted in ``tests/plan/``.
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


# --------------------------------------------------------------------------- plan files
#
# Plan files that are not plans: special files, a 1 GB file, deep nesting, and
# resealed plans (a correct digest over values no compiler writes). Each is
# loaded with ``load_plan_file`` in a fresh process under a memory limit
# (PLAN_MEMORY_LIMIT), and the outcome names the bound that stopped it.

PLAN_MEMORY_LIMIT = 1 << 30


def _plan_special(kind: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / f"{kind}.plan.json"
        if kind == "dev-zero":
            path.symlink_to("/dev/zero")
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "1gb":
            with open(path, "wb") as handle:  # sparse: costs no disk
                handle.truncate(1 << 30)
        return path
    return make


def _plan_bytes(data: Callable[[], bytes]) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / "case.plan.json"
        path.write_bytes(data())
        return path
    return make


def _nested(depth: int) -> Callable[[], bytes]:
    def data() -> bytes:
        from capibara.testing.plans import nested_plan_bytes

        return nested_plan_bytes(depth)
    return data


def _resealed(name: str) -> Callable[[], bytes]:
    def data() -> bytes:
        from capibara.testing.plans import HOSTILE, resealed_bytes, small_plan

        return resealed_bytes(HOSTILE[name].change(small_plan()))
    return data


def _load_plan(path: Path) -> str:
    """Load ``path`` as a plan (JAX-free); which code refused it, and at which bound."""
    from capibara.diagnostics import ConfigError
    from capibara.plan import MAX_PLAN_BYTES, MAX_PLAN_DEPTH, load_plan_file

    bounds = {"R106": "regular files only", "R110": "value domains", "R111": "kernel contracts",
              "R112": "cross-references"}
    try:
        load_plan_file(path)
    except ConfigError as error:
        met = []
        for d in error.diagnostics:
            if d.code == "R107":
                met.append(f"size bound {MAX_PLAN_BYTES >> 20} MiB" if "too large" in d.message
                           else f"depth bound {MAX_PLAN_DEPTH}")
            else:
                met.append(bounds.get(d.code, "?"))
        codes = sorted({d.code for d in error.diagnostics})
        return f"refused {', '.join(codes)} ({'; '.join(sorted(set(met)))})"
    return "loaded"


def _plan_cases() -> dict[str, tuple[Callable[[Path], Path], str]]:
    from capibara.testing.plans import HOSTILE

    cases = {
        "plan-dev-zero": (_plan_special("dev-zero"), "a plan path that links to /dev/zero"),
        "plan-fifo": (_plan_special("fifo"), "a FIFO with no writer as a plan"),
        "plan-1gb": (_plan_special("1gb"), "a 1 GB (sparse) file as a plan"),
        "plan-nested-1000": (_plan_bytes(_nested(1000)), "a 2 KB plan nested 1000 deep"),
        "plan-nested-1m": (_plan_bytes(_nested(1_000_000)), "a 2 MB plan nested a million deep"),
    }
    for name, case in HOSTILE.items():
        cases[f"plan-resealed-{name}"] = (_plan_bytes(_resealed(name)), f"resealed: {case.what}")
    return cases


def measure_plan(name: str) -> dict:
    """Run plan case ``name`` in this process under the memory limit."""
    import shutil

    sys.path.insert(0, str(ROOT))
    resource.setrlimit(resource.RLIMIT_AS, (PLAN_MEMORY_LIMIT * 4, PLAN_MEMORY_LIMIT * 4))
    import capibara.plan.codec  # noqa: F401  (imports are not the case's cost)
    import capibara.plan.validate  # noqa: F401

    make, _ = _plan_cases()[name]
    folder = Path(tempfile.mkdtemp(prefix="hostile-plan-"))
    try:
        path = make(folder)
        size = path.lstat().st_size if path.is_symlink() or not path.exists() else path.stat().st_size
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        outcome = _load_plan(path)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if peak - baseline > PLAN_MEMORY_LIMIT / MB:
        outcome += f"; over the {PLAN_MEMORY_LIMIT >> 20} MiB budget"
    return {"case": name, "outcome": outcome, "seconds": round(seconds, 3),
            "peak_rss_mib": round(peak, 1), "baseline_rss_mib": round(baseline, 1), "bytes": size}


def measure(name: str) -> dict:
    """Run case ``name`` in this process: outcome, seconds, peak and baseline RSS (MiB)."""
    if name.startswith("plan-"):
        return measure_plan(name)
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
    if argv[:1] == ["--measure-front"]:
        print(json.dumps(measure_front(argv[1])))
        return 0
    if argv[:1] == ["--front"]:
        return main_front(argv[1:])
    if argv[:1] == ["--measure-runtime"]:
        print(json.dumps(measure_runtime(argv[1])))
        return 0
    if argv[:1] == ["--runtime"]:
        return main_runtime(argv[1:])
    sys.path.insert(0, str(ROOT))
    names = argv or [*CASES, *_plan_cases()]
    print(f"{'case':<36} {'input':>9} {'seconds':>8} {'peak RSS':>9} {'baseline':>9}  outcome")
    failed = False
    for name in names:
        row = run_isolated(name)
        failed |= row["seconds"] is None
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.2f}"
        peak = "-" if row["peak_rss_mib"] is None else f"{row['peak_rss_mib']:.0f} MiB"
        base = "-" if row["baseline_rss_mib"] is None else f"{row['baseline_rss_mib']:.0f} MiB"
        size = "-" if row.get("bytes") is None else f"{row['bytes'] / MB:.1f} MB"
        print(f"{name:<36} {size:>9} {seconds:>8} {peak:>9} {base:>9}  {row['outcome']}",
              flush=True)
    return 1 if failed else 0



# --------------------------------------------------------------------------- special files, sizes, escaping
#
#     python fuzz/hostile.py --front             # every case below, one fresh process each
#     python fuzz/hostile.py --front fifo-config # one case
#
# Each case runs `capibara` in a fresh interpreter under an address-space limit
# (RLIMIT_AS) and a wall-clock timeout: a FIFO that blocked a reader, or a
# device read whole, would meet one of the two bounds instead of passing.

FRONT_MEMORY_LIMIT_MIB = 2048
FRONT_TIMEOUT_SECONDS = 30
HOSTILE_KEY = "\\u001b]0;pwned\\u0007\\u001b[2J\\u009b31m\\u202e"


def _cli(*argv: str) -> tuple[int, str]:
    """``capibara ARGV`` in this process: exit status and everything it printed."""
    import contextlib
    import io

    from capibara.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(list(argv), out=out)
    return status, out.getvalue() + err.getvalue()


def _codes(status: int, text: str) -> str:
    import re

    codes = sorted(set(re.findall(r"(?:error|warning)\[([A-Z][0-9]+)\]", text)))
    return f"exit {status}: {', '.join(codes) or text.strip().splitlines()[-1:]}"


def _front_fifo_config(folder: Path) -> str:
    os.mkfifo(folder / "pipe.toml")
    return _codes(*_cli("check", "--no-env", str(folder / "pipe.toml")))


def _front_fifo_migrate(folder: Path) -> str:
    os.mkfifo(folder / "pipe.toml")
    return _codes(*_cli("migrate", "--write", str(folder / "pipe.toml")))


def _front_dev_zero(folder: Path) -> str:
    return _codes(*_cli("check", "--no-env", "/dev/zero"))


def _front_sparse_1gib(folder: Path) -> str:
    with open(folder / "huge.toml", "wb") as handle:
        handle.truncate(1 << 30)
    return _codes(*_cli("check", "--no-env", str(folder / "huge.toml")))


def _front_symlink_loop(folder: Path) -> str:
    (folder / "a.toml").symlink_to(folder / "b.toml")
    (folder / "b.toml").symlink_to(folder / "a.toml")
    status, text = _cli("check", "--no-env", str(folder / "a.toml"))
    return _codes(status, text) + (" (a loop)" if "symbolic link loop" in text else " (NOT a loop)")


def _front_output_special(folder: Path) -> str:
    """`compile -o` at a FIFO and at /dev/null; /dev/null only through the check, so that a
    regression run as root could not replace the machine's /dev/null."""
    import stat

    from capibara.cli.plan import output_refusal

    config = folder / "c.toml"
    config.write_text("[model]\nhidden_size = 512\nnum_layers = 6\nnum_heads = 8\n")
    os.mkfifo(folder / "pipe.json")
    outcome = _codes(*_cli("compile", "--no-env", str(config), "--target", "cpu",
                           "-o", str(folder / "pipe.json")))
    kept = stat.S_ISFIFO(os.lstat(folder / "pipe.json").st_mode)
    refusal = output_refusal("/dev/null", [str(config)])
    return (outcome + ("; FIFO kept" if kept else "; FIFO REPLACED")
            + f"; /dev/null: {refusal.code if refusal else 'NOT REFUSED'}")


def _front_output_is_input(folder: Path) -> str:
    config = folder / "c.toml"
    text = "[model]\nhidden_size = 512\nnum_layers = 6\nnum_heads = 8\n"
    config.write_text(text)
    outcome = _codes(*_cli("compile", "--no-env", str(config), "--target", "cpu", "-o", str(config)))
    return outcome + ("; config kept" if config.read_text() == text else "; config LOST")


def _front_hostile_keys(folder: Path) -> str:
    config = folder / f"x{chr(27)}]0;t{chr(7)}.toml"
    lines = [f'"{HOSTILE_KEY}{i}" = {i}\n' for i in range(10_000)]
    config.write_text("[model]\n" + "".join(lines))
    status, text = _cli("check", "--no-env", str(config))
    raw = sum(text.count(c) for c in ("\x1b", "\x07", "\x9b", "\u202e"))
    return f"{_codes(status, text)}; {len(text)} characters printed, {raw} raw control characters"


#: name -> (the case, what it is)
FRONT_CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    "fifo-config": (_front_fifo_config, "a named pipe with no writer as the config"),
    "fifo-migrate": (_front_fifo_migrate, "a named pipe as `migrate --write` target"),
    "dev-zero-config": (_front_dev_zero, "/dev/zero as the config"),
    "sparse-1gib-config": (_front_sparse_1gib, "a 1 GiB (sparse) config file"),
    "symlink-loop-config": (_front_symlink_loop, "a config that is a symlink loop"),
    "output-special": (_front_output_special, "`compile -o` at a FIFO and at /dev/null"),
    "output-is-input": (_front_output_is_input, "`compile c.toml -o c.toml`"),
    "hostile-keys-10k": (_front_hostile_keys, "10,000 keys and a file name holding "
                                              "terminal control sequences"),
}


def measure_front(name: str) -> dict:
    """Run front case ``name`` in this process (under the caller's limits)."""
    sys.path.insert(0, str(ROOT))
    import capibara.cli.app  # noqa: F401  (imports are not the case's cost)
    import capibara.compiler.driver  # noqa: F401

    run, _ = FRONT_CASES[name]
    with tempfile.TemporaryDirectory() as folder:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        outcome = run(Path(folder))
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": name, "outcome": outcome, "seconds": round(seconds, 3),
            "peak_rss_mib": round(peak, 1), "baseline_rss_mib": round(baseline, 1)}


def run_front_isolated(name: str) -> dict:
    """Measure front case ``name`` in a fresh interpreter under the memory and time bounds."""
    limit = FRONT_MEMORY_LIMIT_MIB * MB

    def bound() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPIBARA_")}
    try:
        done = subprocess.run([sys.executable, __file__, "--measure-front", name],
                              capture_output=True, text=True, timeout=FRONT_TIMEOUT_SECONDS,
                              env=env, cwd=ROOT, preexec_fn=bound)
    except subprocess.TimeoutExpired:
        return {"case": name, "outcome": f"HUNG: met the {FRONT_TIMEOUT_SECONDS} s bound",
                "seconds": None}
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:]
        return {"case": name, "outcome": f"CRASH (exit {done.returncode}, memory bound "
                                          f"{FRONT_MEMORY_LIMIT_MIB} MiB?): {last}", "seconds": None}
    return json.loads(done.stdout)


def main_front(names: list[str]) -> int:
    names = names or list(FRONT_CASES)
    print(f"bounds: address space {FRONT_MEMORY_LIMIT_MIB} MiB, {FRONT_TIMEOUT_SECONDS} s per case")
    print(f"{'case':<20} {'seconds':>8} {'peak RSS':>9} {'baseline':>9}  outcome")
    failed = False
    for name in names:
        row = run_front_isolated(name)
        failed |= row["seconds"] is None
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.2f}"
        peak = f"{row['peak_rss_mib']:.0f} MiB" if row.get("peak_rss_mib") else "-"
        base = f"{row['baseline_rss_mib']:.0f} MiB" if row.get("baseline_rss_mib") else "-"
        print(f"{name:<20} {seconds:>8} {peak:>9} {base:>9}  {row['outcome']}", flush=True)
    return 1 if failed else 0


# --------------------------------------------------------------------------- the kernel cache, raced
#
#     python fuzz/hostile.py --runtime                   # every case below, one fresh process each
#     python fuzz/hostile.py --runtime race-first-runs   # one case
#
# Each case drives real `capibara run` processes on a tiny plan with its own empty cache,
# in a fresh interpreter under an address-space limit (inherited by the runs it starts) and
# a wall-clock timeout; every run must exit 0 and every kernel's output digest must agree.
# The cases are the ways the pickled-executable cache once broke (NOT_FOUND from then on).

RUNTIME_MEMORY_LIMIT_MIB = 8192  # XLA reserves address space well beyond what it touches
RUNTIME_TIMEOUT_SECONDS = 600
RUNTIME_PLAN = ("model.hidden_size=32", "model.num_layers=1", "model.num_heads=1",
                "model.max_seq_length=16", "deployment.batch_size=1", "model.vocab_size=64",
                "vector_quantization.enabled=false", "sparsity.enabled=false",
                'performance.compile_mode="conservative"')


def _runtime_plan(folder: Path) -> Path:
    from capibara.compiler.driver import compile_sources
    from capibara.plan import write_plan_file

    result = compile_sources([ROOT / "configs/development/development.toml"], target="cpu",
                             env=None, overrides=RUNTIME_PLAN)
    path = folder / "tiny.plan.json"
    write_plan_file(result.plan, path)
    return path


def _start_run(plan: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "capibara", "run", str(plan)], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> tuple[int, tuple[str, ...], str]:
    out, err = process.communicate()
    digests = tuple(line.split()[0] + " " + line.split()[-1] for line in out.splitlines()
                    if " out " in line)
    return process.returncode, digests, (err.strip().splitlines() or [""])[-1]


def _verdict(runs: list[tuple[int, tuple[str, ...], str]]) -> str:
    failed = [f"exit {status}: {last}" for status, _, last in runs if status != 0]
    if failed:
        return f"FAILED: {failed[0]}"
    if len({digests for _, digests, _ in runs}) != 1:
        return "FAILED: the runs computed different outputs"
    return f"{len(runs)} runs exit 0, {len(runs[0][1])} kernels, one output each"


def _exports(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.parent.name == "exports" and not p.is_dir()]


def _runtime_race_first_runs(folder: Path) -> str:
    """Two first runs at the same instant (one host of a jax.distributed launch), then a third."""
    plan, cache = _runtime_plan(folder), folder / "cache"
    pair = [_start_run(plan, cache), _start_run(plan, cache)]
    runs = [_finish(p) for p in pair]
    return _verdict(runs + [_finish(_start_run(plan, cache))])


def _runtime_race_staggered(folder: Path) -> str:
    """Two first runs one second apart: the second finds the first's entries half made."""
    plan, cache = _runtime_plan(folder), folder / "cache"
    first = _start_run(plan, cache)
    time.sleep(1.0)
    second = _start_run(plan, cache)
    runs = [_finish(first), _finish(second)]
    return _verdict(runs + [_finish(_start_run(plan, cache))])


def _runtime_damaged_entries(folder: Path) -> str:
    """Every entry cut in half, then two more runs (the repair, and the one after it)."""
    plan, cache = _runtime_plan(folder), folder / "cache"
    runs = [_finish(_start_run(plan, cache))]
    for entry in _exports(cache):
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    runs += [_finish(_start_run(plan, cache)), _finish(_start_run(plan, cache))]
    return _verdict(runs)


def _runtime_removed_entries(folder: Path) -> str:
    """Every entry removed while JAX's own cache keeps the compiled kernels."""
    plan, cache = _runtime_plan(folder), folder / "cache"
    runs = [_finish(_start_run(plan, cache))]
    for entry in _exports(cache):
        entry.unlink()
    runs += [_finish(_start_run(plan, cache)), _finish(_start_run(plan, cache))]
    return _verdict(runs)


def _runtime_fifo_entries(folder: Path) -> str:
    """Every entry replaced by a FIFO, which would block a reader that opened it plainly."""
    plan, cache = _runtime_plan(folder), folder / "cache"
    runs = [_finish(_start_run(plan, cache))]
    for entry in _exports(cache):
        entry.unlink()
        os.mkfifo(entry)
    runs.append(_finish(_start_run(plan, cache)))
    return _verdict(runs)


RUNTIME_CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    "race-first-runs": (_runtime_race_first_runs, "two first runs at once, then a third"),
    "race-staggered": (_runtime_race_staggered, "two first runs 1 s apart, then a third"),
    "damaged-entries": (_runtime_damaged_entries, "every entry truncated; two more runs"),
    "removed-entries": (_runtime_removed_entries, "every entry removed, JAX's cache kept"),
    "fifo-entries": (_runtime_fifo_entries, "every entry a FIFO"),
}


def measure_runtime(name: str) -> dict:
    """Run runtime case ``name`` in this process; the peak RSS is of the runs it started."""
    sys.path.insert(0, str(ROOT))
    run, _ = RUNTIME_CASES[name]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        outcome = run(Path(folder))
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"case": name, "outcome": outcome, "seconds": round(seconds, 3),
            "peak_rss_mib": round(peak, 1)}


def run_runtime_isolated(name: str) -> dict:
    """Measure runtime case ``name`` in a fresh interpreter under the memory and time bounds."""
    limit = RUNTIME_MEMORY_LIMIT_MIB * MB

    def bound() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPIBARA_")}
    try:
        done = subprocess.run([sys.executable, __file__, "--measure-runtime", name],
                              capture_output=True, text=True, timeout=RUNTIME_TIMEOUT_SECONDS,
                              env=env, cwd=ROOT, preexec_fn=bound)
    except subprocess.TimeoutExpired:
        return {"case": name, "outcome": f"HUNG: met the {RUNTIME_TIMEOUT_SECONDS} s bound",
                "seconds": None}
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:]
        return {"case": name, "outcome": f"CRASH (exit {done.returncode}, memory bound "
                                          f"{RUNTIME_MEMORY_LIMIT_MIB} MiB?): {last}",
                "seconds": None}
    return json.loads(done.stdout)


def main_runtime(names: list[str]) -> int:
    names = names or list(RUNTIME_CASES)
    print(f"bounds: address space {RUNTIME_MEMORY_LIMIT_MIB} MiB, "
          f"{RUNTIME_TIMEOUT_SECONDS} s per case")
    print(f"{'case':<18} {'seconds':>8} {'peak RSS':>9}  outcome")
    failed = False
    for name in names:
        row = run_runtime_isolated(name)
        failed |= row["seconds"] is None or row["outcome"].startswith("FAILED")
        seconds = "-" if row["seconds"] is None else f"{row['seconds']:.2f}"
        peak = f"{row['peak_rss_mib']:.0f} MiB" if row.get("peak_rss_mib") else "-"
        print(f"{name:<18} {seconds:>8} {peak:>9}  {row['outcome']}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
