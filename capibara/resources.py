"""Where the grammars and bundled configs live, installed or in a checkout.

A wheel carries them inside the package (``capibara/_data/``, see
``pyproject.toml``); in a source checkout they sit at the repository root.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name


def grammar_path(filename: str) -> Path:
    """Path of a grammar file such as ``toml.lark``."""
    return _data_dir("grammar") / filename


def configs_dir() -> Path:
    """The folder of bundled configs (``production/``, ``development/``, …)."""
    return _data_dir("configs")


def user_cache_dir(*parts: str) -> Path | None:
    """A per-user cache directory (``$XDG_CACHE_HOME/capibara/...``), created 0700.

    ``None`` when it cannot be made safe: not owned by this user, or writable
    by others. Caches here may hold pickles (lark's parser cache, compiled
    kernels), and loading a pickle another user could write would run their code.
    """
    import os

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return private_directory(root.joinpath("capibara", *parts))


def private_directory(directory: Path) -> Path | None:
    """``directory``, created 0700 if missing; ``None`` unless it is this user's alone."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return directory if owned_by_user_alone(directory) else None
    except OSError:
        return None


def owned_by_user_alone(path: Path) -> bool:
    """Whether ``path`` belongs to this user and no one else can write it."""
    import os

    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


def lark_parser(grammar_file: str, transformer: object):
    """The LALR parser (contextual lexer, ``transformer`` applied while parsing)
    of a grammar in ``grammar/``, from a per-user cache when one is safe.

    Building the TOML grammar costs ~80 ms per process; loading the cached
    parser ~3 ms. The cache key covers every grammar file (``%import`` pulls
    rules across files), their folder, lark's version and Python's.
    """
    import hashlib
    import sys

    import lark

    path = grammar_path(grammar_file)
    text = path.read_text(encoding="utf-8")
    options = dict(parser="lalr", lexer="contextual", transformer=transformer,
                   import_paths=[str(path.parent)], source_path=str(path))
    key = hashlib.sha256()
    for grammar in sorted(path.parent.glob("*.lark")):
        key.update(grammar.name.encode() + b"\0" + grammar.read_bytes() + b"\0")
    key.update(f"{lark.__version__} {sys.version_info[:2]}".encode())
    # lark checks its cache against the grammar's path too: without the path in the name,
    # two checkouts (or installs) of one version would rebuild each other's entry in turn.
    key.update(str(path.parent).encode())
    directory = user_cache_dir("lark")
    if directory is not None:
        cache = directory / f"{path.stem}-{key.hexdigest()[:24]}.lark-cache"
        if not cache.exists() or owned_by_user_alone(cache):
            try:
                return lark.Lark(text, cache=str(cache), **options)
            except Exception:  # a damaged or foreign cache entry: rebuild without it
                cache.unlink(missing_ok=True)
    return lark.Lark(text, **options)
