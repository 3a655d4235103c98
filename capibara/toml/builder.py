"""The document builder: lark's transformer for ``grammar/toml.lark``.

lark calls one method per grammar rule as it reduces (the transformer runs
inside the LALR parser, so no tree is built).  The methods build the plain
``dict`` that ``tomllib`` would return and enforce the rules of TOML 1.0 that a
grammar cannot express, raising :class:`TomlProblem` on the first violation.

Where each key and value was written is recorded as character offsets only,
in a :class:`Positions`: flat lists of ints and strings, which cost the
garbage collector nothing, instead of an object per statement.
:class:`capibara.toml.Document` turns offsets into spans when asked.

How the table rules are kept
----------------------------
tomllib tracks flags per key path; this builder keeps the same facts per
container object (by ``id``, as every container stays alive in the result):

- ``static``: dicts and lists written as values (inline tables, arrays).  They
  can never be extended, by a header or by a dotted key.  Only the outermost
  one of a value is recorded: whatever is nested inside can only be reached
  through it.  Any other list met on a path is an array of tables.
- ``explicit``: tables that a ``[header]`` defined, or that dotted keys of an
  earlier section defined.  A header may not define them again and dotted
  keys may not reach into them.  Tables made by dotted keys of the current
  section wait in ``pending`` until the next header, because later dotted keys
  of the same section may still add to them.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Any

from lark import Token
from lark.lexer import TerminalDef

from capibara.toml.keypath import format_path
from capibara.toml.limits import MAX_NESTING
from capibara.toml.positions import Header, Positions
from capibara.toml.scalars import CONVERTERS, TomlProblem, unescape

__all__ = ["DocumentBuilder", "Header", "MAX_NESTING", "Positions", "describe", "key_bounds",
           "split_key"]


# The parts of a key with quoted parts (the lexer has checked it).
_KEY_PART = re.compile(r"""[A-Za-z0-9_-]+|"((?:[^"\\]|\\.)*)"|'([^']*)'""")
_DOT = re.compile(r"[ \t]*\.[ \t]*")


def split_key(text: str, start: int, end: int, base: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Parts of the (already validated) dotted key ``text[start:end]``, and
    their offsets flattened as ``(start0, end0, start1, ...)`` plus ``base``."""
    key = text[start:end]
    parts: list[str] = []
    offsets: list[int] = []
    if '"' not in key and "'" not in key:
        # Only bare parts: the common case, split without a regex.
        at = base + start
        for raw in key.split("."):
            part = raw.strip(" \t")
            lead = at + len(raw) - len(raw.lstrip(" \t"))
            parts.append(part)
            offsets += (lead, lead + len(part))
            at += len(raw) + 1
        return tuple(parts), tuple(offsets)
    pos = start
    while True:
        match = _KEY_PART.match(text, pos)
        assert match is not None, "the lexer accepted a malformed key"
        basic, literal = match.group(1), match.group(2)
        if basic is not None:
            part = unescape(basic, base + match.start() + 1) if "\\" in basic else basic
        elif literal is not None:
            part = literal
        else:
            part = match.group()
        parts.append(part)
        offsets += (base + match.start(), base + match.end())
        dot = _DOT.match(text, match.end())
        if dot is None:
            return tuple(parts), tuple(offsets)
        pos = dot.end()


def key_bounds(token: str) -> tuple[int, int]:
    """Where the key of a "line ends, key, `=`" token starts and ends."""
    # The key starts after the last line end and the indentation (a quoted key
    # cannot hold a raw line end) and ends before the spaces around `=`.
    line = token.rfind("\n") + 1
    start = len(token) - len(token[line:].lstrip(" \t"))
    return start, len(token.rstrip(" \t")[:-1].rstrip(" \t"))


def describe(value: Any) -> str:
    """A value's kind in words, for messages (`an integer`, `a table`, ...)."""
    for kind, words in _KINDS:
        if isinstance(value, kind):
            return words
    return "a value"


# bool before int and datetime before date: each is a subclass of the next.
_KINDS = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
          (dict, "a table"), (list, "an array"), (datetime, "a date-time"),
          (date, "a date"), (time, "a time"))


class DocumentBuilder:
    """The transformer lark runs inside its parser; one instance per parser.

    :meth:`begin` resets the per-document state; after the parse, ``root`` is
    the document and ``positions`` where its parts were written.  Method
    names are the rule aliases and terminal names of ``grammar/toml.lark``.
    """

    def __init__(self) -> None:
        self.element = self.scalar = self.inline_key = _never
        self.begin()

    def read_terminals(self, terminals: list[TerminalDef]) -> None:
        """Learn the scalar terminals of the grammar, which SCALAR_ARRAY uses
        to split an array; tried in the order lark's lexer tries them."""
        scalars = sorted(
            (t for t in terminals if t.name in CONVERTERS),
            key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name))
        alternatives = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in scalars)
        by_name = {t.name: t.pattern.to_regexp() for t in terminals}
        # The tokens have been checked already, so blank space needs no checking here.
        blank = r"(?:[ \t]++|\r?\n|#[^\n]*+)*+"
        self.element = re.compile(f"{blank}(?:{alternatives}){blank},?").match
        # Only inline tables of scalars use these two; compiling a pattern costs ~1 ms of a
        # cold `capibara check`, so they are compiled when the first one is met.
        inline_key = (rf"[ \t]*+,?[ \t]*+(?:(?P<INLINE_KEY>{by_name['INLINE_KEY']})"
                      rf"|(?P<INLINE_DOTTED_KEY>{by_name['INLINE_DOTTED_KEY']}))")

        def compile_inline(kind: str):
            def first_call(text: str, position: int):
                self.scalar = re.compile(alternatives).match
                self.inline_key = re.compile(inline_key).match
                return getattr(self, kind)(text, position)
            return first_call

        self.scalar = compile_inline("scalar")
        self.inline_key = compile_inline("inline_key")

    def begin(self) -> None:
        """Start a new document, forgetting the last one."""
        self.root: dict[str, Any] = {}
        self.current: dict[str, Any] = self.root
        self.current_path: tuple = ()
        self.positions = Positions()
        # the lists themselves, to skip an attribute lookup per statement
        self.keys = self.positions.keys
        self.offsets = self.positions.offsets
        self.children = self.positions.children
        self.static: set[int] = set()
        self.explicit: set[int] = set()
        self.pending: list[dict] = []
        # id of a table -> (start, end) of the header or key part that first made it
        self.defined_at: dict[int, tuple[int, int]] = {}
        # offsets of the `[` and `{` still open, innermost last
        self.open: list[int] = []

    # ------------------------------------------------------------ statements

    def keyval(self, children: list) -> None:
        token, value = children[-2], children[-1]
        # The token is line ends, comments, indentation, then `name = `.
        head = token.rstrip(" \t")[:-1].rstrip(" \t")
        name = head.rsplit(None, 1)[-1]
        key_end = token.start_pos + len(head)
        key_start = key_end - len(name)
        table = self.current
        if name in table:
            self._duplicate((name,), key_start, key_end)
        if type(value) is Token:
            table[name] = CONVERTERS[value.type](value, value.start_pos)
            self.offsets += (key_start, key_end, value.start_pos, value.end_pos)
        else:
            result, (start, end, inner) = value
            table[name] = result
            self.static.add(id(result))
            self.children[len(self.keys)] = inner
            self.offsets += (key_start, key_end, start, end)
        self.keys.append(name)

    def dotted_keyval(self, children: list) -> None:
        token, value = children[-2], children[-1]
        parts, offsets = split_key(token, *key_bounds(token), token.start_pos)
        self._check_length(parts, offsets)
        if type(value) is Token:
            result = CONVERTERS[value.type](value, value.start_pos)
            start, end, inner = value.start_pos, value.end_pos, None
        else:
            result, (start, end, inner) = value
            self.static.add(id(result))
        table = self.current
        for index in range(len(parts) - 1):
            table = self._enter_by_dotted_key(table, parts, offsets, index)
        if parts[-1] in table:
            self._duplicate(parts, offsets[-2], offsets[-1])
        table[parts[-1]] = result
        if inner is not None:
            self.children[len(self.keys)] = inner
        self.offsets += offsets
        self.offsets += (start, end)
        self.keys.append(parts)

    def table(self, children: list) -> None:
        parts, offsets, start, end = self._header(children[-1], 1)
        table = self.root
        path: list = []
        for index in range(len(parts) - 1):
            table = self._enter_by_header(table, parts, offsets, index, path)
        name = parts[-1]
        path.append(name)
        existing = table.get(name)
        if existing is None:
            existing = table[name] = {}
        else:
            self._check_redefinition(existing, parts, offsets, tuple(path), start, end)
        self.explicit.add(id(existing))
        self.defined_at[id(existing)] = (start, end)
        self._open_table(existing, path, parts, offsets, start, end)

    def array_table(self, children: list) -> None:
        parts, offsets, start, end = self._header(children[-1], 2)
        table = self.root
        path: list = []
        for index in range(len(parts) - 1):
            table = self._enter_by_header(table, parts, offsets, index, path)
        name = parts[-1]
        tables = table.get(name)
        if tables is None:
            tables = table[name] = []
        elif type(tables) is not list or id(tables) in self.static:
            self._not_array_of_tables(tables, parts, offsets, (*path, name), start, end)
        element: dict[str, Any] = {}
        tables.append(element)
        path += (name, len(tables) - 1)
        self.defined_at[id(element)] = (start, end)
        self._open_table(element, path, parts, offsets, start, end)

    def start(self, children: list) -> None:
        return None

    # ------------------------------------------------------------ values

    def LBRACKET(self, token: Token) -> int:
        return self._open_bracket(token.start_pos)

    def SCALAR_ARRAY(self, token: Token) -> tuple:
        """A whole array of scalars, lexed and checked as one token: split it
        into its elements with the scalar terminals' own patterns."""
        start = token.start_pos
        self._open_bracket(start)
        self.open.pop()
        values = []
        records = []
        element = self.element
        position = 1
        while True:
            match = element(token, position)
            if match is None:  # only blank space before `]`
                return values, (start, token.end_pos, tuple(records))
            kind = match.lastgroup
            begin, end = match.span(kind)
            values.append(CONVERTERS[kind](match.group(kind), start + begin))
            records.append((start + begin, start + end, None))
            position = match.end()

    def LBRACE(self, token: Token) -> int:
        return self._open_bracket(token.start_pos)

    def elements(self, children: list) -> list:
        if len(children) == 1:
            return children
        items = children[0]
        items.append(children[2])
        return items

    def array(self, children: list) -> tuple:
        self.open.pop()
        start, end = children[0], children[-1].end_pos
        if len(children) == 2:
            return [], (start, end, ())
        values = []
        records = []
        for item in children[1]:
            if type(item) is Token:
                values.append(CONVERTERS[item.type](item, item.start_pos))
                records.append((item.start_pos, item.end_pos, None))
            else:
                values.append(item[0])
                records.append(item[1])
        return values, (start, end, tuple(records))

    def inline_entries(self, children: list) -> list:
        if len(children) == 2:
            return children
        items, comma = children[0], children[1]
        if "\n" in comma:
            self._multiline_inline_table(comma)
        items.append(children[2])
        items.append(children[3])
        return items

    def inline_table(self, children: list) -> tuple:
        self.open.pop()
        start, end = children[0], children[-1].end_pos
        table: dict[str, Any] = {}
        entries: list[tuple] = []
        if len(children) == 3:
            items = children[1]
            values: set[int] = set()  # containers written as values inside this table
            for index in range(0, len(items), 2):
                key, value = items[index], items[index + 1]
                if type(value) is Token:
                    result = CONVERTERS[value.type](value, value.start_pos)
                    record = (value.start_pos, value.end_pos, None)
                else:
                    result, record = value
                    values.add(id(result))
                self._inline_entry(table, entries, values, key.type, key, key.start_pos,
                                   result, record)
        return table, (start, end, tuple(entries))

    def SCALAR_INLINE_TABLE(self, token: Token) -> tuple:
        """A whole inline table of scalars, lexed and checked as one token:
        split it with the key and scalar terminals' own patterns."""
        start = token.start_pos
        self._open_bracket(start)
        self.open.pop()
        table: dict[str, Any] = {}
        entries: list[tuple] = []
        inline_key, scalar = self.inline_key, self.scalar
        position = 1
        while True:
            key = inline_key(token, position)
            if key is None:  # only blank space before `}`
                return table, (start, token.end_pos, tuple(entries))
            kind = key.lastgroup
            value = scalar(token, key.end())
            scalar_kind = value.lastgroup
            begin, end = value.span()
            self._inline_entry(
                table, entries, _NO_VALUES, kind, key.group(kind), start + key.start(kind),
                CONVERTERS[scalar_kind](value.group(), start + begin),
                (start + begin, start + end, None))
            position = end

    def _inline_entry(self, table: dict, entries: list, values: set[int] | frozenset[int],
                      kind: str, key: str, base: int, result: Any, record: tuple) -> None:
        """Add ``key = result`` (a key token's text at offset ``base``) to an
        inline table, where only tables made by dotted keys (not those written
        as values, listed in ``values``) can be extended."""
        if kind == "INLINE_KEY":
            name = key.rstrip(" \t")[:-1].rstrip(" \t")
            parts: tuple[str, ...] = (name,)
            offsets: tuple[int, ...] = (base, base + len(name))
        else:
            parts, offsets = split_key(key, *key_bounds(key), base)
            self._check_length(parts, offsets)
        nest = table
        for part in range(len(parts) - 1):
            nest = self._enter_inline(nest, parts, offsets, part, values)
        if parts[-1] in nest:
            self._duplicate_inline(entries, parts, offsets)
        nest[parts[-1]] = result
        entries.append((parts, offsets, record))

    # ------------------------------------------------------------ helpers

    def _open_bracket(self, start: int) -> int:
        self.open.append(start)
        if len(self.open) > MAX_NESTING:
            raise TomlProblem(
                "P113", f"arrays and inline tables are nested more than {MAX_NESTING} deep",
                start, start + 1, label="too deep",
                help="flatten the structure; real configurations nest a few levels")
        return start

    def _check_length(self, parts: tuple[str, ...], offsets: tuple[int, ...]) -> None:
        if len(parts) > MAX_NESTING:
            raise TomlProblem(
                "P113", f"key has {len(parts)} parts, more than {MAX_NESTING}",
                offsets[0], offsets[-1], label="too many parts",
                help="flatten the structure; real configurations nest a few levels")

    def _header(self, token: Token, brackets: int) -> tuple[tuple[str, ...], tuple[int, ...], int, int]:
        bracket = token.index("[", token.rfind("\n") + 1)
        key = token[bracket + brackets:len(token) - brackets]
        start = bracket + brackets + len(key) - len(key.lstrip(" \t"))
        end = bracket + brackets + len(key.rstrip(" \t"))
        base = token.start_pos
        parts, offsets = split_key(token, start, end, base)
        self._check_length(parts, offsets)
        # A header ends the section: tables made by its dotted keys are now defined.
        explicit = self.explicit
        for table in self.pending:
            explicit.add(id(table))
        self.pending.clear()
        return parts, offsets, base + bracket, token.end_pos

    def _open_table(self, table: dict, path: list, parts: tuple[str, ...],
                    offsets: tuple[int, ...], start: int, end: int) -> None:
        self.current = table
        self.current_path = tuple(path)
        self.positions.headers.append(
            Header(self.current_path, parts, offsets, start, end, len(self.keys)))

    def _enter_by_header(self, table: dict, parts: tuple[str, ...], offsets: tuple[int, ...],
                         index: int, path: list) -> dict:
        """Step from ``table`` into ``parts[index]`` on a header's path
        (``path``, the resolved path so far, is extended)."""
        name = parts[index]
        path.append(name)
        inner = table.get(name)
        if inner is None:
            inner = table[name] = {}
            return inner
        if type(inner) is list and id(inner) not in self.static:
            path.append(len(inner) - 1)  # an array of tables: its last table
            return inner[-1]
        if type(inner) is not dict or id(inner) in self.static:
            self._not_a_table(inner, parts[: index + 1], offsets[2 * index: 2 * index + 2],
                              tuple(path))
        return inner

    def _enter_by_dotted_key(self, table: dict, parts: tuple[str, ...],
                             offsets: tuple[int, ...], index: int) -> dict:
        """Step from ``table`` into ``parts[index]`` on a dotted key's path."""
        name = parts[index]
        here = offsets[2 * index: 2 * index + 2]
        inner = table.get(name)
        if inner is None:
            inner = table[name] = {}
            self.defined_at[id(inner)] = here
        elif type(inner) is not dict or id(inner) in self.static:
            self._not_a_table(inner, parts[: index + 1], here,
                              self.current_path + parts[: index + 1])
        elif id(inner) in self.explicit:
            first = self.defined_at.get(id(inner))
            shown = format_path(self.current_path + parts[: index + 1])
            raise TomlProblem(
                "P109", f"dotted key cannot add to table `{shown}`, which is already defined",
                *here, label="adds to it",
                labels=((*first, "defined here"),) if first else (),
                help=f"put the key in the `[{shown}]` section instead")
        self.pending.append(inner)
        return inner

    def _enter_inline(self, table: dict, parts: tuple[str, ...], offsets: tuple[int, ...],
                      index: int, values: set[int]) -> dict:
        """Step into ``parts[index]`` inside an inline table, where only tables
        made by dotted keys (not those written as values) can be extended."""
        name = parts[index]
        inner = table.get(name)
        if inner is None:
            inner = table[name] = {}
        elif type(inner) is not dict or id(inner) in values:
            self._not_a_table(inner, parts[: index + 1], offsets[2 * index: 2 * index + 2], None)
        return inner

    # ------------------------------------------------------------ problems

    def _where_defined(self, full_path: tuple) -> tuple[int, int] | None:
        """Offsets of the key or header part that first wrote ``full_path``."""
        for path, key, _ in self.positions.walk():
            if key is not None and path == full_path:
                return key
        return None

    def _duplicate(self, parts: tuple[str, ...], start: int, end: int) -> None:
        full = self.current_path + parts
        first = self._where_defined(full)
        raise TomlProblem(
            "P108", f"key `{format_path(full)}` is defined twice",
            start, end, label="defined again here",
            labels=((*first, "first defined here"),) if first else (),
            help="remove one of the definitions, or rename one of the keys")

    def _duplicate_inline(self, entries: list, parts: tuple[str, ...],
                          offsets: tuple[int, ...]) -> None:
        first = None
        for earlier_parts, earlier_offsets, _ in entries:
            for index in range(len(earlier_parts)):
                if earlier_parts[: index + 1] == parts:
                    first = earlier_offsets[2 * index], earlier_offsets[2 * index + 1]
            if first:
                break
        raise TomlProblem(
            "P108", f"key `{format_path(parts)}` is defined twice in this inline table",
            offsets[-2], offsets[-1], label="defined again here",
            labels=((*first, "first defined here"),) if first else (),
            help="remove one of the definitions")

    def _check_redefinition(self, existing: Any, parts: tuple[str, ...],
                            offsets: tuple[int, ...], path: tuple, start: int, end: int) -> None:
        """``[parts]`` names something that exists: fine only for a table that
        so far was made implicitly (by a longer header)."""
        if type(existing) is dict and id(existing) not in self.static:
            if id(existing) not in self.explicit:
                return
            first = self.defined_at.get(id(existing))
            raise TomlProblem(
                "P109", f"table `{format_path(path)}` is defined twice",
                start, end, label="defined again here",
                labels=((*first, "first defined here"),) if first else (),
                help="merge the two sections into one")
        if type(existing) is list and id(existing) not in self.static:
            first = self._where_defined(path)
            raise TomlProblem(
                "P112", f"`{format_path(path)}` is an array of tables, not a table",
                start, end, label="`[...]` defines a table",
                labels=((*first, "array of tables starts here"),) if first else (),
                help=f"write `[[{format_path(parts)}]]` to add another table to the array")
        self._not_a_table(existing, parts, offsets[-2:], path)

    def _not_array_of_tables(self, existing: Any, parts: tuple[str, ...],
                             offsets: tuple[int, ...], path: tuple, start: int, end: int) -> None:
        if type(existing) is dict and id(existing) not in self.static:
            first = self.defined_at.get(id(existing)) or self._where_defined(path)
            raise TomlProblem(
                "P112", f"`{format_path(path)}` is a table, not an array of tables",
                start, end, label="`[[...]]` adds to an array of tables",
                labels=((*first, "defined as a table here"),) if first else (),
                help=f"write `[{format_path(parts)}.<name>]` for a sub-table, "
                     f"or make every header `[[{format_path(parts)}]]`")
        self._not_a_table(existing, parts, offsets[-2:], path)

    def _not_a_table(self, existing: Any, shown: tuple, here: tuple[int, ...],
                     full_path: tuple | None) -> None:
        """The key part at ``here`` holds ``existing``, which cannot be
        entered or extended as a table; ``full_path`` finds where it was set."""
        first = self._where_defined(full_path) if full_path is not None else None
        labels = ((*first, "written here"),) if first else ()
        if type(existing) is list and full_path is not None and id(existing) not in self.static:
            labels = ((*first, "array of tables starts here"),) if first else ()
            raise TomlProblem(
                "P112", f"`{format_path(full_path)}` is an array of tables; a dotted key "
                        f"cannot add to it",
                here[0], here[1], label="adds to it", labels=labels,
                help=f"add the key under a `[[{_table_name(full_path)}]]` header")
        if isinstance(existing, (dict, list)):
            # A container written as a value: an inline table or an array.
            raise TomlProblem(
                "P110", f"`{format_path(shown)}` is {describe(existing)} written as a "
                        f"value and cannot be extended",
                here[0], here[1], label="extends it", labels=labels,
                help="add the key inside the value itself, or write the value as a "
                     "`[section]` (or `[[array]]`) instead")
        raise TomlProblem(
            "P111", f"`{format_path(shown)}` is {describe(existing)}, not a table",
            here[0], here[1], label="used as a table here", labels=labels,
            help="rename one of the keys: a key holds either a value or a table")

    def _multiline_inline_table(self, comma: Token) -> None:
        at = comma.index("\n")
        if at and comma[at - 1] == "\r":
            at -= 1
        opened = self.open[-1]
        raise TomlProblem(
            "P114", "inline table continues on the next line",
            comma.start_pos + at, comma.start_pos + at + 1, label="line break inside `{ ... }`",
            labels=((opened, opened + 1, "inline table starts here"),),
            help="keep an inline table on one line, or write it as a `[section]`")


def _table_name(path: tuple) -> str:
    """A path as a header names it: without array-of-tables indices."""
    return format_path(part for part in path if type(part) is str)


def _never(text: str, position: int) -> None:
    raise AssertionError("read_terminals() was not called")


_NO_VALUES: frozenset[int] = frozenset()
