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


def cache_root() -> Path:
    """``$XDG_CACHE_HOME`` or ``~/.cache``: where every capibara cache lives."""
    import os

    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def user_cache_dir(*parts: str) -> Path | None:
    """A per-user cache directory (``$XDG_CACHE_HOME/capibara/...``), created 0700.

    ``None`` when it cannot be made safe (see :func:`cache_directory_problem`).
    Caches here may hold pickles (lark's parser cache) and compiled code (JAX's
    cache), and loading what another user could write would run their code.
    """
    return private_directory(cache_root().joinpath("capibara", *parts))


def private_directory(directory: Path, *, top: Path | None = None) -> Path | None:
    """``directory``, created 0700 if missing; ``None`` unless it is this user's
    alone, and so is every folder above it (see :func:`cache_directory_problem`)."""
    return None if cache_directory_problem(directory, top=top) is not None else directory


def cache_directory_problem(directory: Path, *, top: Path | None = None) -> str | None:
    """Why ``directory`` (created 0700 if missing) is not safe for a cache, or ``None``.

    As ssh does for its files: the directory must be this user's and writable
    by no one else, and every folder above it, up to and including ``top`` (the
    user's home when the directory is inside it, else the file system root),
    must belong to this user or root and be writable by no one else (a sticky
    folder such as ``/tmp`` is fine: others cannot rename what is in it).
    Otherwise whoever can write a folder above could swap the cache under it
    after this check.
    """
    import os
    import stat

    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        real = directory.resolve(strict=True)
        info = real.stat()
    except OSError as error:
        return f"`{directory}` cannot be made: {error.strerror or error}"
    if not stat.S_ISDIR(info.st_mode):
        return f"`{directory}` is not a folder"
    if info.st_uid != os.getuid():
        return f"`{real}` is owned by user {info.st_uid}, not by this user"
    if info.st_mode & 0o022:
        return f"`{real}` is writable by other users"
    if top is None:
        home = Path.home().resolve()
        top = home if real.is_relative_to(home) else Path(real.anchor)
    top = top.resolve()
    for folder in real.parents:
        try:
            info = folder.stat()
        except OSError as error:
            return f"`{folder}` cannot be checked: {error.strerror or error}"
        if info.st_uid not in (os.getuid(), 0):
            return f"`{folder}` (above the cache) is owned by user {info.st_uid}"
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            return f"`{folder}` (above the cache) is writable by other users"
        if folder == top:
            break
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
