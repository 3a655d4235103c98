"""Where each key/value pair and table header of a TOML document was written.

Both readers of :func:`capibara.toml.parse` record into a :class:`Positions`:
the full parser's builder (:mod:`capibara.toml.builder`) and the scan of a
text :mod:`tomllib` has accepted (:mod:`capibara.toml.locate`). Offsets only,
as flat lists of ints and strings, which cost the garbage collector nothing;
:class:`capibara.toml.Document` turns them into spans when asked.
"""

from __future__ import annotations

from typing import Iterator

__all__ = ["Header", "Offsets", "Positions"]


class Header:
    """A ``[table]`` or ``[[array]]`` header.

    ``path`` is the resolved path of the table it opens (array-of-tables
    indices included), ``parts``/``offsets`` its key parts and their
    ``(start, end)`` offsets flattened, ``start``/``end`` the bracketed text,
    ``first_entry`` the number of key/value pairs written before it.
    """

    __slots__ = ("path", "parts", "offsets", "start", "end", "first_entry")

    def __init__(self, path: tuple, parts: tuple[str, ...], offsets: tuple[int, ...],
                 start: int, end: int, first_entry: int) -> None:
        self.path = path
        self.parts = parts
        self.offsets = offsets
        self.start = start
        self.end = end
        self.first_entry = first_entry

    def prefixes(self) -> Iterator[tuple[tuple, int, int]]:
        """``(resolved path, start, end)`` of each key part, shortest first."""
        path = self.path
        at = 0
        for index in range(len(self.parts)):
            at += 1
            yield path[:at], self.offsets[2 * index], self.offsets[2 * index + 1]
            if at < len(path) and type(path[at]) is int:
                at += 1


Offsets = tuple[int, int]


class Positions:
    """Where every key/value pair and header of a document was written.

    One entry per key/value pair outside inline tables, in document order:
    ``keys[i]`` is the key (a ``str``, or a tuple of parts for a dotted key);
    ``offsets`` holds, entry after entry, the ``(start, end)`` of each key part
    and then of the value; ``children[i]`` describes what is inside an array
    or inline table value.  A child record is ``(start, end, children)``:
    ``children`` is ``None`` for a scalar, a tuple of records for an array, a
    tuple of ``(key parts, key offsets, record)`` for an inline table.
    ``headers`` are the table headers, each knowing where its section starts.
    """

    __slots__ = ("keys", "offsets", "children", "headers")

    def __init__(self) -> None:
        self.keys: list[str | tuple[str, ...]] = []
        self.offsets: list[int] = []
        self.children: dict[int, tuple] = {}
        self.headers: list[Header] = []

    def walk(self) -> Iterator[tuple[tuple, Offsets | None, Offsets | None]]:
        """``(path, key offsets, value offsets)`` in document order for every
        key part (value ``None`` for header parts and the leading parts of a
        dotted key), every key/value pair and every array element (key
        ``None``).  Iterative on purpose: values nest up to MAX_NESTING deep."""
        keys, offsets, children, headers = self.keys, self.offsets, self.children, self.headers
        path: tuple = ()
        next_header = 0
        cursor = 0
        for index in range(len(keys) + 1):
            while next_header < len(headers) and headers[next_header].first_entry == index:
                header = headers[next_header]
                for prefix, start, end in header.prefixes():
                    yield prefix, (start, end), None
                path = header.path
                next_header += 1
            if index == len(keys):
                return
            key = keys[index]
            parts = (key,) if type(key) is str else key
            width = 2 * len(parts)
            record = (offsets[cursor + width], offsets[cursor + width + 1], children.get(index))
            stack = [(path, parts, offsets[cursor:cursor + width], record)]
            cursor += width + 2
            while stack:
                where, parts, key_offsets, (start, end, inner) = stack.pop()
                if parts is not None:
                    for part in range(len(parts) - 1):
                        where = where + (parts[part],)
                        yield where, (key_offsets[2 * part], key_offsets[2 * part + 1]), None
                    where = where + (parts[-1],)
                    yield where, (key_offsets[-2], key_offsets[-1]), (start, end)
                else:
                    yield where, None, (start, end)
                if not inner:
                    continue
                if type(inner[0][0]) is int:  # an array's element records
                    stack.extend((where + (i,), None, None, child)
                                 for i, child in reversed(list(enumerate(inner))))
                else:  # an inline table's (key parts, key offsets, record)
                    stack.extend((where, *child) for child in reversed(inner))
