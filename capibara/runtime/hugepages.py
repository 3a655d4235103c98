"""Transparent huge pages for the buffers XLA allocates on the CPU.

XLA:CPU allocates every large output fresh through glibc's ``malloc``, which
maps it from the kernel, and the kernel faults it in 4 KiB at a time: a
fresh large output costs several times more that way than when glibc asks
for transparent huge pages (``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, glibc
2.35 or later; benchmarks/RESULTS.md has the numbers). numpy already asks
for huge pages for its large arrays; XLA's allocator does not.

glibc reads tunables once, when the process starts, so :func:`reexec_with_huge_pages`
starts the process again with the tunable set (``capibara run`` and the kernel
benchmarks call it before they import JAX); a library user's own process gets
:func:`advice` in the loaded plan's notes. A setting the user made wins:
``GLIBC_TUNABLES=glibc.malloc.hugetlb=0`` keeps 4 KiB pages.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

__all__ = ["HugePages", "TUNABLE", "advice", "classify", "current", "reexec_with_huge_pages"]

TUNABLE = "glibc.malloc.hugetlb"
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
_FIRST_GLIBC_WITH_TUNABLE = (2, 35)


@dataclass(frozen=True)
class HugePages:
    """Whether this process's large ``malloc`` allocations get huge pages.

    ``state`` is ``on``, ``off`` (available, not asked for: re-executing
    would turn it on), ``declined`` (the user set the tunable to 0) or
    ``unavailable`` (not Linux with glibc >= 2.35 and THP enabled);
    ``detail`` says why, for a person.
    """

    state: str
    detail: str


def _tunables(environ: Mapping[str, str]) -> dict[str, str]:
    pairs = (item.partition("=") for item in environ.get("GLIBC_TUNABLES", "").split(":") if item)
    return {name: value for name, _, value in pairs}


def _glibc_version() -> tuple[int, ...] | None:
    try:
        name, _, version = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")  # "glibc 2.36"
    except (AttributeError, ValueError, OSError):
        return None  # not glibc (musl, macOS, Windows)
    try:
        return tuple(int(part) for part in version.split(".")[:2]) if name == "glibc" else None
    except ValueError:
        return None


def _thp_mode(path: Path = _THP_MODE) -> str | None:
    """The kernel's THP mode (``always``, ``madvise`` or ``never``), or ``None``."""
    try:
        text = path.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else None


def current() -> HugePages:
    """The huge-page state of this process."""
    return classify(os.environ, _thp_mode(), _glibc_version())


def classify(environ: Mapping[str, str], mode: str | None,
             version: tuple[int, ...] | None) -> HugePages:
    """The huge-page state of a process started with ``environ`` on a machine
    whose THP mode is ``mode`` and whose glibc is ``version`` (``None``: none)."""
    if mode is None or version is None:
        return HugePages("unavailable", "not Linux with glibc")
    if mode == "never":
        return HugePages("unavailable", "transparent huge pages are disabled (THP mode `never`)")
    if mode == "always":
        return HugePages("on", "the kernel gives every large mapping huge pages (THP mode `always`)")
    if version < _FIRST_GLIBC_WITH_TUNABLE:
        return HugePages("unavailable", f"glibc {'.'.join(map(str, version))} has no `{TUNABLE}` "
                                        "(2.35 or later does)")
    value = _tunables(environ).get(TUNABLE)
    if value is None:
        return HugePages("off", f"4 KiB pages: GLIBC_TUNABLES does not set `{TUNABLE}`")
    if value.strip() in ("", "0"):
        return HugePages("declined", f"4 KiB pages: GLIBC_TUNABLES sets `{TUNABLE}={value}`")
    return HugePages("on", f"glibc malloc asks for transparent huge pages (`{TUNABLE}={value}`)")


def advice(state: HugePages) -> str | None:
    """A note for a process that could have huge pages and has not asked for them."""
    if state.state != "off":
        return None
    return (f"{state.detail}; large XLA buffers fault in page by page (~3x slower to allocate): "
            f"start Python with GLIBC_TUNABLES={TUNABLE}=1 (`capibara run` does)")


def reexec_with_huge_pages() -> None:
    """Start this process again with the tunable set, if that would turn huge pages on.

    Returns (doing nothing) when they are already on, the user declined, or
    the machine cannot have them; otherwise does not return. Call it before
    anything is printed or any work is done: the process starts over with
    the same command line (``sys.orig_argv``) and environment plus the tunable.
    """
    if current().state != "off":
        return
    existing = os.environ.get("GLIBC_TUNABLES")
    setting = f"{TUNABLE}=1"
    environ = {**os.environ, "GLIBC_TUNABLES": f"{existing}:{setting}" if existing else setting}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, environ)
    except OSError:
        return  # cannot re-execute (no executable path?): carry on with 4 KiB pages
