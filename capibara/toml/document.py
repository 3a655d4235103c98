"""Stage 1: TOML 1.0 text to plain values, with the span of every key and value.

:func:`loads` returns exactly what :func:`tomllib.loads` returns; :func:`parse`
also keeps where each key, value and table header was written, so later stages
can point their diagnostics at the source::

    >>> doc = parse('[model]\\nhidden_size = 768\\n', source="config.toml")
    >>> doc.value
    {'model': {'hidden_size': 768}}
    >>> str(doc.value_span(("model", "hidden_size")))
    'config.toml:2:15'

Invalid input raises :class:`~capibara.diagnostics.ConfigError` (never another
exception), whose diagnostics carry the ``P`` codes of :mod:`capibara.codes`.

Two readers share the work. A text :mod:`tomllib` accepts (most are valid)
takes its values from tomllib and its places from :mod:`capibara.toml.locate`,
which loads no parser; any other text goes to the full parser (lark, the
grammar ``grammar/toml.lark`` and :mod:`capibara.toml.builder`), which finds
the same values and places, and for an invalid text the problem and where.

Besides TOML itself, two limits apply: integers must fit in 64 bits (TOML
requires parsers to refuse what they cannot represent losslessly; tomllib does
not check), and arrays, inline tables and keys may nest at most
:data:`MAX_NESTING` deep.
"""

from __future__ import annotations

import _thread
import os
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from capibara.toml.limits import MAX_NESTING
from capibara.toml.locate import locate
from capibara.toml.plain import plain_value
from capibara.toml.positions import Positions
from capibara.toml.reading import decode, read_bytes, shown_name
from capibara.toml.keypath import format_path
from capibara.diagnostics import ConfigError, Diagnostic, Label, Source, Span

if TYPE_CHECKING:
    from lark import Lark

    from capibara.toml.builder import DocumentBuilder
    from capibara.toml.scalars import TomlProblem

__all__ = [
    "Document",
    "MAX_NESTING",
    "format_path",
    "load",
    "loads",
    "parse",
    "parse_bytes",
    "parse_file",
    "read_bytes",
]

class Document:
    """A parsed TOML document: its plain value and where each part was written.

    Paths are tuples of ``str`` keys and ``int`` indices, e.g.
    ``("model", "hidden_size")``, ``("mesh_shape", 1)`` or
    ``("products", 0, "name")`` for the first table of ``[[products]]``.
    Spans are built on demand from offsets recorded during the parse.
    """

    __slots__ = ("source", "value", "_positions", "_keys", "_values", "_headers")

    def __init__(self, source: Source, value: dict[str, Any], positions: Positions) -> None:
        self.source = source
        self.value = value
        self._positions = positions
        self._keys: dict[tuple, tuple[int, int]] | None = None
        self._values: dict[tuple, tuple[int, int]] = {}
        self._headers: dict[tuple, tuple[int, int]] = {}

    def __repr__(self) -> str:
        return f"Document({self.source.name!r})"

    def key_span(self, path: Sequence[str | int]) -> Span | None:
        """The key as written: for ``a.b.c = 1``, the part ``c`` for ``(a, b, c)``
        and the parts ``a`` and ``b`` for ``(a,)`` and ``(a, b)``.  For a table
        that only a header names, the part of that header."""
        return self._span(self._index()[0], path)

    def value_span(self, path: Sequence[str | int]) -> Span | None:
        """The value as written: the whole string (quotes included), array or
        inline table.  ``None`` for tables made by headers or dotted keys."""
        return self._span(self._index()[1], path)

    def header_span(self, path: Sequence[str | int]) -> Span | None:
        """The bracketed header that opened the table at ``path`` (for
        ``[[x]]`` headers, the path of one table: ``("x", 0)``)."""
        return self._span(self._index()[2], path)

    def entries(self) -> Iterator[tuple[tuple, Span, Span]]:
        """``(path, key_span, value_span)`` of every key/value pair in document
        order, including those inside inline tables and arrays of tables."""
        span = self.source.span
        for path, key, value in self._positions.walk():
            if key is not None and value is not None:
                yield path, span(*key), span(*value)

    def _span(self, table: dict, path: Sequence[str | int]) -> Span | None:
        offsets = table.get(tuple(path))
        return None if offsets is None else self.source.span(*offsets)

    def _index(self) -> tuple[dict, dict, dict]:
        if self._keys is None:
            keys: dict[tuple, tuple[int, int]] = {}
            for path, key, value in self._positions.walk():
                if key is not None and path not in keys:
                    keys[path] = key
                if value is not None:
                    self._values[path] = value
            for header in self._positions.headers:
                self._headers[header.path] = (header.start, header.end)
            self._keys = keys
        return self._keys, self._values, self._headers


# ---------------------------------------------------------------------- parsing

# threading.Lock() is this lock; threading itself is not imported by a process that
# never needs the full parser
_lock = _thread.allocate_lock()
_parser: "tuple[Lark, DocumentBuilder] | None" = None


def _get_parser() -> "tuple[Lark, DocumentBuilder]":
    """The process's parser, built on first use (about 80 ms of CPU: lark
    checks each coarse terminal's regular expression; ~3 ms from the per-user
    cache of :func:`capibara.resources.lark_parser`).

    The builder is the transformer lark calls while parsing, so it holds the
    state of the document being parsed; callers hold ``_lock`` around a parse.
    """
    global _parser
    if _parser is None:
        from capibara.resources import lark_parser
        from capibara.toml.builder import DocumentBuilder

        builder = DocumentBuilder()
        lark = lark_parser("toml.lark", builder)
        builder.read_terminals(lark.terminals)
        _parser = lark, builder
    return _parser


def parse(text: str, source: str = "<string>") -> Document:
    """Parse TOML ``text`` into a :class:`Document`; ``source`` names it in
    diagnostics.  Raises :class:`ConfigError` if it is not valid TOML 1.0."""
    if not isinstance(text, str):
        raise TypeError(f"expected TOML text as str, got {type(text).__name__}")
    src = Source(source, text)
    value = plain_value(text)
    if value is not None:
        positions = locate(text)
        if positions is not None:
            return Document(src, value, positions)
    return _parse_fully(src)


def _parse_fully(src: Source) -> Document:
    """The full parser: the values, their places, and for an invalid text the
    diagnostic that explains it."""
    from lark.exceptions import UnexpectedInput, VisitError

    from capibara.toml.scalars import TomlProblem
    from capibara.toml.syntax import explain_syntax_error

    text = src.text
    with _lock:
        lark, builder = _get_parser()
        builder.begin()
        try:
            lark.parse(text)
            root, positions = builder.root, builder.positions
        except UnexpectedInput as error:
            problem = explain_syntax_error(text, error, builder.open)
            raise ConfigError([_diagnostic(src, problem)]) from None
        except TomlProblem as problem:
            raise ConfigError([_diagnostic(src, problem)]) from None
        except VisitError as error:
            # lark's LALR parser calls the builder directly, so its problems
            # arrive unwrapped; this is the one place that would unwrap them.
            if isinstance(error.orig_exc, TomlProblem):
                raise ConfigError([_diagnostic(src, error.orig_exc)]) from None
            raise
        finally:
            builder.begin()  # drop references to this document
    return Document(src, root, positions)


def _diagnostic(source: Source, problem: TomlProblem) -> Diagnostic:
    span = source.span(problem.start, problem.end)
    return Diagnostic.error(
        problem.code, problem.message, span, label=problem.label,
        labels=[Label(source.span(start, end), message) for start, end, message in problem.labels],
        notes=problem.notes, help=problem.help)


def loads(text: str, *, source: str = "<string>") -> dict[str, Any]:
    """Parse TOML ``text`` into plain values, exactly as :func:`tomllib.loads`."""
    return parse(text, source).value


def parse_file(path: str | os.PathLike[str]) -> Document:
    """Read and parse a TOML file: UTF-8, a leading byte-order mark allowed."""
    return parse_bytes(read_bytes(path), path)


def parse_bytes(data: bytes, path: str | os.PathLike[str]) -> Document:
    """Parse the bytes of the TOML file at ``path`` (UTF-8, a leading byte-order mark
    dropped); ``path`` names the source in diagnostics."""
    name = shown_name(path)
    return parse(decode(data, name), name)


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML file into plain values (see :func:`parse_file`)."""
    return parse_file(path).value
