"""Build the seed corpus of each fuzz target from the project's own inputs.

    python fuzz/corpus.py            # writes fuzz/corpus-work/<target>/ (gitignored)

Seeds are the inputs the project already knows are interesting: every bundled
config under ``configs/`` and every golden case under ``tests/golden/`` (bad
inputs, one per diagnostic code). The ``override`` target also gets the
``--set`` and environment directives of the golden cases and one
``path=value`` per field of the schema table; the ``plan`` target gets the
plans the bundled configs compile to, as JSON and as msgpack. Each seed is
named by the hash of its bytes, so rebuilding never duplicates one, and
libFuzzer adds the inputs it finds to the same folder.
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "fuzz" / "corpus-work"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "fuzz") not in sys.path:
    sys.path.insert(0, str(ROOT / "fuzz"))


def _toml_files() -> list[Path]:
    return sorted((ROOT / "configs").rglob("*.toml")) + sorted((ROOT / "tests" / "golden").glob("*.toml"))


def _directives(text: str) -> list[str]:
    """The golden case's ``--set`` arguments and ``$NAME=VALUE`` environment entries."""
    out: list[str] = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        body = line.lstrip("#").strip()
        if body.startswith("capibara-args:"):
            words = shlex.split(body.split(":", 1)[1])
            out += [value for flag, value in zip(words, words[1:]) if flag == "--set"]
        elif body.startswith("capibara-env:"):
            out.append("$" + body.split(":", 1)[1].strip())
    return out


def _toml_seeds() -> Iterator[bytes]:
    for path in _toml_files():
        yield path.read_bytes()


def _compile_seeds() -> Iterator[bytes]:
    from targets import COMPILE_TARGETS

    for index, path in enumerate(_toml_files()):
        data = path.read_bytes()
        if path.is_relative_to(ROOT / "configs"):
            for choice in range(len(COMPILE_TARGETS)):  # bundled configs on every target
                yield bytes([choice]) + data
        else:
            yield bytes([index % len(COMPILE_TARGETS)]) + data


def _override_seeds() -> Iterator[bytes]:
    from capibara.config.fields import FIELDS
    from capibara.config.writer import toml_value

    for path in _toml_files():
        arguments = _directives(path.read_bytes().decode("utf-8", "replace"))
        if arguments:
            yield b"\0".join(a.encode("utf-8", "surrogateescape") for a in arguments)
    for field in FIELDS:
        default = field.type.to_toml(field.default) if field.default is not None else None
        if default is not None:
            yield f"{field.path}={toml_value(default)}".encode()
        if field.env and default is not None and not isinstance(default, (list, dict)):
            value = str(default).lower() if isinstance(default, bool) else str(default)
            yield f"${field.env[0]}={value}".encode()


def _plan_seeds() -> Iterator[bytes]:
    from capibara.compiler.driver import compile_sources
    from capibara.plan import encode_plan

    from targets import COMPILE_TARGETS

    for path in sorted((ROOT / "configs").rglob("*.toml")):
        for target in COMPILE_TARGETS[1:4]:
            result = compile_sources([path], target=target, env=None)
            if result.plan is None:
                continue
            for fmt in ("json", "msgpack"):
                yield b"\0" + encode_plan(result.plan, fmt)
            yield b"\1" + encode_plan(result.plan, "json")


SEEDS = {"toml": _toml_seeds, "override": _override_seeds, "compile": _compile_seeds,
         "plan": _plan_seeds}


def seeds(name: str) -> list[bytes]:
    """The seed inputs of target ``name``, without duplicates, in a stable order."""
    unique = {hashlib.sha1(data).hexdigest(): data for data in SEEDS[name]()}
    return [unique[key] for key in sorted(unique)]


def write(name: str, folder: Path = WORK) -> int:
    """Write target ``name``'s seeds into ``folder/name``; returns how many are new."""
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    new = 0
    for data in seeds(name):
        path = out / f"seed-{hashlib.sha1(data).hexdigest()}"
        if not path.exists():
            path.write_bytes(data)
            new += 1
    return new


def main(argv: list[str]) -> int:
    for name in argv or list(SEEDS):
        count = write(name)
        print(f"{name}: {count} new seeds in {(WORK / name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
