"""The timing harness the kernel benchmarks (``benchmarks/kernels_*.py``) share.

A *candidate* is a no-argument callable that runs one variant to completion
(``blocking`` makes one from a JAX function and its arguments). ``race`` times
a dict of them round-robin: a warm-up call each (compile, fault pages in),
then ``rounds`` rounds in which every candidate runs once, so a noisy
neighbour slows them all alike. It records wall time and process CPU time
(all threads; steadier than wall time on a shared machine).

The scripts then either take ``medians`` and print their own rows, or print
the common table with ``print_speedup_table`` (median and min wall time,
median CPU time, speedups over an anchor).

Importing it re-executes the script with huge pages for XLA's buffers when
they are available and not asked for (see ``capibara.runtime.hugepages``).

This module is imported as ``_harness`` by scripts run as
``python benchmarks/kernels_<family>.py`` (their folder is on ``sys.path``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from capibara.runtime.hugepages import current as huge_pages, reexec_with_huge_pages

# Measure kernels in the memory setting `capibara run` gives them: glibc malloc
# with transparent huge pages (capibara.runtime.hugepages). The anchors run in the same
# process, so they get it too. GLIBC_TUNABLES=glibc.malloc.hugetlb=0 opts out.
reexec_with_huge_pages()
print(f"memory: {huge_pages().detail}")

import jax  # noqa: E402
import numpy as np  # noqa: E402

#: name -> (wall seconds per timed round, CPU seconds per timed round)
Timings = dict[Hashable, tuple[list[float], list[float]]]


def blocking(f: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """A candidate: calls ``f(*args)`` and waits until its result is ready."""
    return lambda: jax.block_until_ready(f(*args))


def time_call(run: Callable[..., Any], *args: Any) -> tuple[float, float]:
    """Wall seconds and process CPU seconds (all threads) of one ``run(*args)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def race(
    candidates: Mapping[Hashable, Callable[..., Any]],
    rounds: int,
    *,
    shuffled: bool = False,
    prepare: Mapping[Hashable, Callable[[], tuple]] | None = None,
) -> Timings:
    """Round-robin timing of ``candidates`` after one warm-up call each.

    ``shuffled``: run the candidates in a fresh (seeded, so repeatable) order
    each round rather than in dict order: a run right after a big one (an XLA
    anchor that frees ~1 GiB) pays for the allocator's aftermath.

    ``prepare``: name -> a callable returning the arguments for that
    candidate's next call, made outside the timing (e.g. a fresh buffer to
    donate); the candidate is then called with them. Candidates without an
    entry get no arguments.
    """
    prepare = prepare or {}
    no_arguments = tuple

    def arguments(name):
        return prepare.get(name, no_arguments)()

    for name, run in candidates.items():
        run(*arguments(name))
    times: Timings = {name: ([], []) for name in candidates}
    order = list(candidates)
    permutation = np.random.default_rng(0).permutation
    for _ in range(rounds):
        names = [order[i] for i in permutation(len(order))] if shuffled else order
        for name in names:
            wall, cpu = time_call(candidates[name], *arguments(name))
            times[name][0].append(wall)
            times[name][1].append(cpu)
    return times


def medians(times: Timings) -> dict[Hashable, tuple[float, float]]:
    """name -> (median wall seconds, median CPU seconds)."""
    return {name: (float(np.median(wall)), float(np.median(cpu))) for name, (wall, cpu) in times.items()}


def print_speedup_table(times: Timings, anchor: Hashable) -> None:
    """Print median and min wall time, median CPU time, and both speedups over ``times[anchor]``."""
    base_wall, base_cpu = medians({anchor: times[anchor]})[anchor]
    print(f"{'candidate':40s} {'median ms':>10s} {'min ms':>8s} {'cpu ms':>8s} {'x wall':>7s} {'x cpu':>6s}")
    for name, (wall, cpu) in times.items():
        w, c = float(np.median(wall)), float(np.median(cpu))
        print(f"{name:40s} {w * 1e3:10.1f} {min(wall) * 1e3:8.1f} {c * 1e3:8.1f} "
              f"{base_wall / w:6.2f}x {base_cpu / c:5.2f}x")
