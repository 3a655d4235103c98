"""Explain a TOML syntax error in words.

lark reports where its lexer or parser stopped and which terminals it would
have accepted there.  The terminals of ``grammar/toml.lark`` are coarse (a
whole "line end, key, `=`" is one token), so that position is only where the
failing token began.  This module reads the text from there itself, knowing
what was expected (a value, a key, a separator, a statement) and which
brackets are still open, and finds the first character that is wrong: an
unclosed string, a bad escape, a control character, a malformed number or
date, a key with a space in it, a missing `=`.  Only errors take this path,
so clarity matters here and speed does not.
"""

from __future__ import annotations

import re
import unicodedata

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from capibara.toml.keypath import quote_key
from capibara.toml.scalars import TomlProblem

__all__ = ["explain_syntax_error"]

_VALUE_TERMINALS = frozenset({
    "BASIC_STRING", "ML_BASIC_STRING", "LITERAL_STRING", "ML_LITERAL_STRING",
    "INTEGER", "FLOAT", "BOOLEAN", "DATETIME", "SCALAR_ARRAY", "SCALAR_INLINE_TABLE", "LBRACKET",
    "LBRACE",
})
_SCALAR_TERMINALS = frozenset({"INTEGER", "FLOAT", "BOOLEAN", "DATETIME"})
_CLOSERS = frozenset({"RBRACKET", "RBRACE"})

_BARE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_HEX = frozenset("0123456789abcdefABCDEF")
_SIMPLE_ESCAPES = frozenset('btnfr"\\')
# Characters that may continue a number, date or bare word once it has started.
_WORD = re.compile(r"[A-Za-z0-9_+\-.:]+")
_DATE_TIME_WORD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ Tt][0-9][0-9:.+\-ZzTt]*")

_VALUE_HELP = 'write a value such as `"text"`, `42`, `1.5`, `true`, `[1, 2]` or `{ key = 1 }`'
_ESCAPE_HELP = ("valid escapes are `\\b` `\\t` `\\n` `\\f` `\\r` `\\\"` `\\\\` `\\uXXXX` "
                "`\\UXXXXXXXX`; in a literal string ('...') a backslash is just a backslash")


def explain_syntax_error(text: str, error: UnexpectedInput, open_brackets: list[int]) -> TomlProblem:
    """The problem behind lark's ``error``; ``open_brackets`` are the offsets
    of the ``[`` and ``{`` the builder saw open when the parse stopped."""
    expected: frozenset[str]
    last: Token | None
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream
        expected = frozenset(error.allowed or ())
        last = (error.token_history or [None])[-1]
        reduced = False
    elif isinstance(error, UnexpectedToken):
        token = error.token
        position = len(text) if token.type == "$END" else token.start_pos
        expected = frozenset(error.expected or ())
        # The lexer's own complaint carries the previous token; the parser's
        # does not, and has already reduced what the token allowed it to.
        history = error.token_history
        last = history[-1] if history else None
        reduced = not history
    else:  # lark's LALR parser raises nothing else; kept general
        position, expected, last, reduced = len(text), frozenset(), None, True
    opened = list(open_brackets)
    if not reduced and last is not None and last.type in _CLOSERS and opened:
        opened.pop()  # that bracket closed; lark had not yet reduced it
    explainer = _Explainer(text, opened, last)
    try:
        explainer.explain(position, expected)
    except TomlProblem as problem:
        return problem
    return explainer.unexpected(position)


class _Explainer:
    """Reads the text where lark stopped, in the context lark was in.

    Each method checks one construct (a statement, a key, a value, a string,
    an escape, the space after an array element) and raises TomlProblem at
    the first wrong character; a method that returns found nothing wrong.
    ``opened`` are the ``[``/``{`` still open, ``last`` the last token read.
    """

    def __init__(self, text: str, opened: list[int], last: Token | None) -> None:
        self.text = text
        self.opened = opened
        self.last = last

    # ------------------------------------------------------------ dispatch

    def explain(self, position: int, expected: frozenset[str]) -> None:
        inner = self.text[self.opened[-1]] if self.opened else None
        if expected & _VALUE_TERMINALS:
            self.value(position, inner)
        elif inner == "{":
            if "INLINE_KEY" in expected:
                self.inline_key(position)
            else:
                self.after_inline_value(position)
        elif inner == "[":
            self.after_array_element(position)
        else:
            self.statement(position)

    # ------------------------------------------------------------ small tools

    def char(self, index: int) -> str:
        return self.text[index] if 0 <= index < len(self.text) else ""

    def skip_spaces(self, index: int) -> int:
        text = self.text
        while index < len(text) and text[index] in " \t":
            index += 1
        return index

    def fail(self, code: str, message: str, start: int, end: int | None = None, *,
             label: str = "", help: str | None = None,
             labels: tuple[tuple[int, int, str], ...] = ()) -> None:
        raise TomlProblem(code, message, start, start if end is None else end,
                          label=label, help=help, labels=labels)

    def found(self, index: int) -> tuple[str, int]:
        """What stands at ``index``, in words, and where that thing ends."""
        char = self.char(index)
        if not char:
            return "the end of the file", index
        if char in "\r\n":
            return "the end of the line", index
        if _is_control(char):
            return f"control character {_codepoint(char)}", index + 1
        if not char.isascii() and not unicodedata.category(char).startswith("L"):
            return _codepoint(char), index + 1
        match = _WORD.match(self.text, index)
        if match and match.end() - index > 1:
            word = match.group()
            return f"`{_shorten(word)}`", match.end()
        return f"`{char}`", index + 1

    def unexpected(self, index: int) -> TomlProblem:
        """The fallback when no specific reason is found."""
        found, end = self.found(index)
        return TomlProblem("P101", f"unexpected {found}", index, end, label="unexpected")

    def control(self, index: int, where: str) -> None:
        char = self.text[index]
        if char == "\r":
            self.fail("P104", f"carriage return without a line feed {where}", index, index + 1,
                      label="lone `\\r`",
                      help="end lines with `\\n` or `\\r\\n`; write `\\r` in a basic string for the character")
        self.fail("P104", f"control character {_codepoint(char)} {where}", index, index + 1,
                  label="not allowed here",
                  help=f"remove it, or write it as `\\u{ord(char):04X}` inside a basic string")

    def expect_close(self, bracket: int, what: str) -> None:
        closer = "]" if self.text[bracket] == "[" else "}"
        self.fail("P101", f"{what} is not closed", bracket, bracket + 1,
                  label=f"this `{self.text[bracket]}` has no matching `{closer}`",
                  help=f"add `{closer}` after the last {'element' if closer == ']' else 'entry'}")

    # ------------------------------------------------------------ blank space

    def blank(self, index: int, *, newlines: bool) -> tuple[int, bool]:
        """Skip spaces, comments and (if ``newlines``) line ends, checking them;
        returns the next index and whether a line end was crossed."""
        text = self.text
        crossed = False
        while index < len(text):
            char = text[index]
            if char in " \t":
                index += 1
            elif char == "#":
                index = self.comment(index)
            elif char == "\n" and newlines:
                crossed = True
                index += 1
            elif char == "\r" and newlines:
                if self.char(index + 1) != "\n":
                    self.control(index, "between statements")
                crossed = True
                index += 2
            else:
                break
        return index, crossed

    def comment(self, index: int) -> int:
        text = self.text
        index += 1
        while index < len(text) and text[index] != "\n":
            char = text[index]
            if _is_control(char) and not (char == "\r" and self.char(index + 1) == "\n"):
                self.control(index, "in a comment")
            index += 1
        return index

    # ------------------------------------------------------------ statements

    def statement(self, position: int) -> None:
        """The parser wanted a line end, then a key or a table header."""
        first = self.last is None
        self.adjacent_value(position)
        index, crossed = self.blank(position, newlines=True)
        if not (crossed or first):
            if _is_control(self.char(index)):
                self.control(index, "after a statement")
            after = "the table header" if self.last and "TABLE" in self.last.type else "the value"
            found, end = self.found(index)
            self.fail("P101", f"expected the end of the line after {after}, found {found}",
                      index, end, label="unexpected",
                      help="put each statement on its own line; start a comment with `#`")
        char = self.char(index)
        if char == "[":
            self.header(index)
        elif char == "=":
            self.fail("P101", "expected a key before `=`", index, index + 1, label="no key",
                      help="write `name = value`")
        else:
            end = self.key(index, context="a key or a `[table]` header")
            self.equals(end, self.text[index:end].strip())

    def header(self, index: int) -> None:
        double = self.char(index + 1) == "["
        opener = "[[" if double else "["
        closer = "]]" if double else "]"
        start = self.skip_spaces(index + len(opener))
        if self.char(start) == "]":
            self.fail("P101", "table header has no name", index, start + 1,
                      label="empty header", help=f"write `{opener}name{closer}`")
        if self.char(start) == "[":
            self.fail("P101", "unexpected `[` in a table header", start, start + 1,
                      label="unexpected",
                      help="an array-of-tables header is written `[[name]]`, with no space "
                           "between the brackets")
        key_end = self.key(start, context="a table name")
        end = self.skip_spaces(key_end)
        if not self.text.startswith(closer, end):
            found, found_end = self.found(end)
            hint = (f"close the header with `{closer}`" if not double or self.char(end) != "]"
                    else "an array-of-tables header ends with `]]`")
            if end > key_end and self.char(end) in _BARE_CHARS:
                phrase = self.text[start:self.text.find("]", end) if "]" in self.text[end:self.line_end(end)] else self.line_end(end)].strip()
                hint = f"a name with spaces must be quoted: `{opener}{quote_key(phrase)}{closer}`"
            self.fail("P101", f"expected `{closer}` to close the table header, found {found}",
                      end, found_end, label="unexpected", help=hint)
        self.fail("P101", "invalid table header", index, end + len(closer), label="here")

    def equals(self, index: int, key: str) -> None:
        """After the key ``key`` ending at ``index``: there must be `=`."""
        at = self.skip_spaces(index)
        char = self.char(at)
        if char == "=":
            self.value(self.skip_spaces(at + 1), None)
            return
        found, end = self.found(at)
        if not char or char in "\r\n#":
            self.fail("P101", f"expected `=` after the key `{_shorten(key)}`, found {found}",
                      at, end, label="value missing", help=f"write `{_shorten(key)} = <value>`")
        if char == ":":
            hint = "TOML assigns with `=`, not `:`"
        elif at > index and char in _BARE_CHARS and all(c in _BARE_CHARS for c in key):
            line_end = self.line_end(at)
            equals = self.text.find("=", at, line_end)
            phrase = self.text[index - len(key): equals if equals != -1 else line_end].strip()
            hint = f"a key with spaces must be quoted: `{_shorten(quote_key(phrase))} = ...`"
        else:
            hint = f"write `{_shorten(key)} = <value>`"
        self.fail("P101", f"expected `=` after the key `{_shorten(key)}`, found {found}",
                  at, end, label="expected `=`", help=hint)

    # ------------------------------------------------------------ keys

    def key(self, index: int, *, context: str) -> int:
        """Check the dotted key at ``index``; return the index just past it."""
        while True:
            index = self.key_part(index, context)
            after = self.skip_spaces(index)
            if self.char(after) != ".":
                return index
            index = self.skip_spaces(after + 1)
            context = "a key after `.`"

    def key_part(self, index: int, context: str) -> int:
        char = self.char(index)
        if char == '"' or char == "'":
            if self.text.startswith(char * 3, index):
                self.fail("P101", "a multi-line string cannot be a key", index, index + 3,
                          label="key", help="write the key as a one-line string")
            return self.string(index, char, multiline=False, what="key")
        end = index
        while end < len(self.text) and self.text[end] in _BARE_CHARS:
            end += 1
        if end > index:
            bad = self.char(end)
            if bad and bad not in " \t.=]\r\n#" and not _is_control(bad):
                self.bad_key_character(index, end)
            return end
        if char and char not in "\r\n" and _is_control(char):
            self.control(index, "where a key should be")
        if char and (char.isalnum() or unicodedata.category(char).startswith("L")):
            self.bad_key_character(index, index)
        found, found_end = self.found(index)
        self.fail("P101", f"expected {context}, found {found}", index, found_end,
                  label="expected a key")
        return index  # unreachable: fail raises

    def bad_key_character(self, start: int, bad: int) -> None:
        word_end = bad
        while self.char(word_end) and self.char(word_end) not in " \t.=[]\r\n#":
            word_end += 1
        self.fail("P101", f"`{self.text[bad]}` cannot appear in a bare key", bad, bad + 1,
                  label="not allowed in a bare key",
                  help="bare keys use only A-Z a-z 0-9 `_` `-`; quote the key: "
                       f"`{_shorten(quote_key(self.text[start:word_end]))}`")

    def line_end(self, index: int) -> int:
        end = self.text.find("\n", index)
        return len(self.text) if end == -1 else end

    # ------------------------------------------------------------ values

    def value(self, index: int, inner: str | None) -> None:
        """A value should start at ``index``."""
        text = self.text
        char = self.char(index)
        if not char:
            if inner is not None:
                self.expect_close(self.opened[-1], "array" if inner == "[" else "inline table")
            self.fail("P101", "expected a value, found the end of the file", index,
                      label="value missing", help=_VALUE_HELP)
        if char in "\r\n#":
            if inner == "{":
                self.line_break_in_inline_table(index)
            self.fail("P101", "expected a value after `=`, found the end of the line", index,
                      label="value missing", help=_VALUE_HELP)
        if char == '"' or char == "'":
            multiline = text.startswith(char * 3, index)
            self.string(index, char, multiline=multiline, what="string")
        if char == ",":
            what = "array element" if inner == "[" else "value"
            self.fail("P101", f"expected {'an' if what[0] == 'a' else 'a'} {what}, found `,`",
                      index, index + 1, label="extra comma",
                      help="remove the extra `,`" if inner == "[" else _VALUE_HELP)
        if char in "]}=":
            self.fail("P101", f"expected a value, found `{char}`", index, index + 1,
                      label="value missing", help=_VALUE_HELP)
        if _is_control(char):
            self.control(index, "where a value should be")
        self.word(index, index)

    def string(self, index: int, quote: str, *, multiline: bool, what: str) -> int:
        """Check the string at ``index``; raise on its first problem, else
        return the index past it."""
        text = self.text
        basic = quote == '"'
        kind = ("multi-line " if multiline else "") + ("basic" if basic else "literal")
        delimiter = quote * 3 if multiline else quote
        at = index + len(delimiter)
        while True:
            char = self.char(at)
            if not char or (not multiline and char in "\r\n"):
                end = at if multiline else at
                self.fail("P102", f"{kind} string is not closed", index,
                          index + len(delimiter) if multiline else end,
                          label=f"this {what} never ends" if multiline else "no closing quote",
                          help=f"close it with `{delimiter}`" + (
                              "" if multiline else f"; for text on several lines use `{quote * 3}`"))
            if text.startswith(delimiter, at):
                return at + len(delimiter)
            if basic and char == "\\":
                at = self.escape(at, multiline, index)
                continue
            if _is_control(char) and char != "\t":
                if multiline and (char == "\n" or (char == "\r" and self.char(at + 1) == "\n")):
                    at += 1
                    continue
                self.control(at, f"in a {what}")
            at += 1

    def escape(self, at: int, multiline: bool, string_start: int) -> int:
        """Check the escape at ``at`` (a backslash) of the string starting at
        ``string_start``; return the index past it."""
        code = self.char(at + 1)
        if not code or (not multiline and code in "\r\n"):
            self.fail("P102", "basic string is not closed", string_start, at + 1,
                      label="no closing quote",
                      help='close it with `"`; a backslash right before the end escapes the quote')
        if code in _SIMPLE_ESCAPES and code:
            return at + 2
        if code in ("u", "U"):
            width = 4 if code == "u" else 8
            digits = self.text[at + 2: at + 2 + width]
            if len(digits) == width and all(d in _HEX for d in digits):
                return at + 2 + width
            shown = self.text[at: at + 2 + width].split("\n")[0]
            self.fail("P103", f"`\\{code}` needs exactly {width} hexadecimal digits",
                      at, at + len(shown), label="incomplete escape",
                      help=f"write `\\{code}{'0' * (width - 1)}41` for `A`, padding with zeros")
        if multiline:
            after = self.skip_spaces(at + 1)
            if self.char(after) == "\n" or self.text.startswith("\r\n", after):
                return after
        shown = "\\" + code if code and code not in "\r\n" else "\\"
        hint = _ESCAPE_HELP
        if code == "e":
            hint = "TOML 1.0 has no `\\e`; write `\\u001B` for the escape character"
        elif code == "x":
            hint = "TOML has no `\\x` escapes; write `\\u00XX` instead"
        elif code in (" ", "\t"):
            hint = ("only spaces may follow a backslash that ends a line" if multiline else
                    "a backslash before a line end only works in a multi-line string (`\"\"\"`)")
        self.fail("P103", f"invalid escape `{shown}`", at, at + len(shown),
                  label="not an escape", help=hint)
        return at  # unreachable

    def word(self, start: int, index: int) -> None:
        """A bare word at ``start`` (a number, date, boolean or a mistake);
        ``index`` is where lark stopped inside it."""
        text = self.text
        match = _DATE_TIME_WORD.match(text, start) or _WORD.match(text, start)
        end = match.end() if match else start + 1
        if end <= index:
            end = index + 1
        word = text[start:end]
        problem = _number_problem(word) if word[:1] in "0123456789+-._" else None
        if problem is not None:
            code, message, label, hint, within = problem
            begin, finish = (start, end) if within is None else (start + within[0], start + within[1])
            self.fail(code, message, begin, finish, label=label, help=hint)
        lowered = word.lower()
        if lowered in ("true", "false"):
            self.fail("P101", f"`{word}` is not a TOML value", start, end, label="not a boolean",
                      help=f"booleans are lowercase: `{lowered}`")
        if lowered in ("null", "none", "nil"):
            self.fail("P101", f"`{word}` is not a TOML value", start, end, label="no null in TOML",
                      help="TOML has no null: leave the key out to use its default")
        if lowered in ("inf", "nan", "+inf", "-inf", "+nan", "-nan", "infinity", "-infinity",
                       "+infinity"):
            self.fail("P105", f"`{word}` is not a TOML float", start, end, label="not a float",
                      help="the special floats are `inf`, `+inf`, `-inf` and `nan`, in lowercase")
        if word[:1].isalpha() or word[:1] == "_":
            self.fail("P101", f"`{_shorten(word)}` is not a value", start, end,
                      label="not a value",
                      help=f'strings must be quoted: `"{_shorten(word)}"`')
        found, found_end = self.found(start)
        self.fail("P101", f"expected a value, found {found}", start, found_end,
                  label="not a value", help=_VALUE_HELP)

    def adjacent_value(self, position: int) -> None:
        """If lark stopped right after a number, date or boolean with more
        word characters following, the whole word is one malformed value."""
        last = self.last
        if last is None or last.end_pos != position:
            return
        if last in ('""', "''") and self.char(position) == last[0]:
            # `""` lexed as an empty string: it was a multi-line string that failed.
            self.string(last.start_pos, last[0], multiline=True, what="string")
        if last.type in ("ML_BASIC_STRING", "ML_LITERAL_STRING") and self.char(position) == last[0]:
            run_start = last.end_pos - (len(last) - len(last.rstrip(last[0])))
            run_end = position
            while self.char(run_end) == last[0]:
                run_end += 1
            self.fail("P101", "too many quotes at the end of a multi-line string",
                      run_start, run_end, label=f"{run_end - run_start} quotes in a row",
                      help="at most two quotes may come right before the closing delimiter"
                           + ("; escape the others as `\\\"`" if last[0] == '"' else
                              "; write the others in a basic string"))
        if last.type in _SCALAR_TERMINALS:
            char = self.char(position)
            if char and (char in _BARE_CHARS or char in ".:+" or
                         (char == " " and last.type == "DATETIME" and
                          self.char(position + 1).isdigit())):
                self.word(last.start_pos, position)

    # ------------------------------------------------------------ containers

    def after_array_element(self, position: int) -> None:
        self.adjacent_value(position)
        index, _ = self.blank(position, newlines=True)
        if index >= len(self.text):
            self.expect_close(self.opened[-1], "array")
        found, end = self.found(index)
        hint = ("separate array elements with `,`"
                if self.char(index) not in "}" else "close the array with `]`")
        self.fail("P101", f"expected `,` or `]` after an array element, found {found}",
                  index, end, label="unexpected", help=hint,
                  labels=self.opener_label(index, "array starts here"))

    def after_inline_value(self, position: int) -> None:
        self.adjacent_value(position)
        index = self.inline_table_next(position)
        found, end = self.found(index)
        self.fail("P101", f"expected `,` or `}}` after a value in an inline table, found {found}",
                  index, end, label="unexpected",
                  help="separate the entries of an inline table with `,`",
                  labels=self.opener_label(index, "inline table starts here"))

    def inline_key(self, position: int) -> None:
        index = self.inline_table_next(position)
        if self.char(index) == "}":
            comma = self.text.rfind(",", 0, index)
            self.fail("P101", "trailing comma in an inline table", comma, comma + 1,
                      label="remove this comma",
                      help="TOML 1.0 allows no comma after the last entry of an inline table")
        end = self.key(index, context="a key")
        self.equals(end, self.text[index:end].strip())

    def inline_table_next(self, position: int) -> int:
        """Where the next token inside an inline table starts: neither the end of the
        file (an unclosed table) nor that of the line (inline tables are one line)."""
        index = self.skip_spaces(position)
        char = self.char(index)
        if not char:
            self.expect_close(self.opened[-1], "inline table")
        if char in "\r\n#":
            self.line_break_in_inline_table(index)
        return index

    def line_break_in_inline_table(self, index: int) -> None:
        what = "comment" if self.char(index) == "#" else "line break"
        self.fail("P114", "inline table continues on the next line", index, index + 1,
                  label=f"{what} inside `{{ ... }}`",
                  labels=self.opener_label(index, "inline table starts here"),
                  help="keep an inline table on one line, or write it as a `[section]`")

    def opener_label(self, index: int, message: str) -> tuple[tuple[int, int, str], ...]:
        """A label at the innermost open bracket, unless it is on the line of ``index``
        (where the primary label already shows it)."""
        opened = self.opened[-1]
        if "\n" not in self.text[opened:index]:
            return ()
        return ((opened, opened + 1, message),)


# ---------------------------------------------------------------- numbers and dates

_INT_PREFIXES = {"0x": ("hexadecimal", _HEX), "0o": ("octal", frozenset("01234567")),
                 "0b": ("binary", frozenset("01"))}
_DIGIT_NAMES = {"hexadecimal": "0-9 and a-f", "octal": "0-7", "binary": "0 and 1"}

# (code, message, label, help, span within the word or None for all of it)
_Problem = tuple[str, str, str, str, "tuple[int, int] | None"]


def _number_problem(word: str) -> _Problem | None:
    """Why ``word`` (which starts like a number) is not a valid number or
    date, or None if no reason is found."""
    if re.match(r"[0-9]+-[0-9]|[0-9]{1,2}:[0-9]", word):
        return _date_problem(word)
    unsigned = word.lstrip("+-")
    sign = word[: len(word) - len(unsigned)]
    if len(sign) > 1:
        return ("P105", f"`{word}` has more than one sign", "invalid number", "keep one `+` or `-`",
                None)
    prefix = unsigned[:2].lower()
    if prefix in _INT_PREFIXES:
        name, digits = _INT_PREFIXES[prefix]
        article = "an" if name[0] in "aeiou" else "a"
        if unsigned[:2] != prefix:
            return ("P105", f"base prefix must be lowercase: `{prefix}`", "uppercase prefix",
                    f"write `{sign}{prefix}{unsigned[2:]}`", None)
        if sign:
            return ("P105", f"{name} integers cannot have a sign", "sign not allowed",
                    "write the number in decimal to give it a sign", (0, len(sign)))
        body = unsigned[2:]
        if not body:
            return ("P105", f"`{word}` has no digits after the prefix", "no digits",
                    f"write {name} digits after `{prefix}`", None)
        for at, char in enumerate(body):
            if char not in digits and char != "_":
                where = len(sign) + 2 + at
                return ("P105", f"`{char}` is not {article} {name} digit", "invalid digit",
                        f"{name} integers use only {_DIGIT_NAMES[name]}", (where, where + 1))
        return _underscore_problem(word, body, "0-9A-Fa-f" if name == "hexadecimal" else "0-9")
    if unsigned.startswith("_"):
        return _underscore_problem(word, unsigned, "0-9")
    if unsigned.startswith("."):
        return ("P105", "a float needs a digit before the decimal point", "missing digit",
                f"write `{sign}0{unsigned}`", None)
    mantissa, _, exponent = unsigned.replace("E", "e").partition("e")
    whole, dot, fraction = mantissa.partition(".")
    digits_only = whole.replace("_", "")
    if len(digits_only) > 1 and digits_only.isdigit() and whole.startswith("0"):
        return ("P105", "leading zeros are not allowed", "leading zero",
                f"write `{sign}{whole.lstrip('0_') or '0'}{dot}{fraction}"
                f"{'e' + exponent if exponent else ''}`"
                + ("; octal integers are written `0o…`" if not dot and not exponent else ""), None)
    if dot and not fraction:
        return ("P105", "a float needs a digit after the decimal point", "missing digit",
                f"write `{word.replace('.', '.0', 1)}`", None)
    if "e" in unsigned.lower() and not exponent.lstrip("+-"):
        return ("P105", "the exponent has no digits", "missing exponent", "write e.g. `1e6`", None)
    problem = _underscore_problem(word, unsigned, "0-9")
    if problem is not None:
        return problem
    if not re.fullmatch(r"[0-9_]*(\.[0-9_]*)?([eE][+-]?[0-9_]*)?", unsigned):
        return ("P105", f"`{_shorten(word)}` is not a valid number", "invalid number",
                "numbers look like `42`, `-17`, `1_000`, `0x1F`, `3.14`, `6.02e23`", None)
    return None


def _underscore_problem(word: str, body: str, digits: str) -> _Problem | None:
    """An underscore not between two digits of class ``digits``."""
    if "_" in body and re.search(rf"(^|[^{digits}])_|_($|[^{digits}])", body):
        return ("P105", "an underscore must sit between two digits", "misplaced `_`",
                f"write `{word.replace('_', '')}` or group digits like `1_000_000`", None)
    return None


def _date_problem(word: str) -> _Problem:
    hint = ("dates are written `1979-05-27`, times `07:32:00` and date-times "
            "`1979-05-27T07:32:00Z` or `1979-05-27T07:32:00-07:00`")
    is_date = re.match(r"[0-9]+-", word) is not None
    if is_date and not re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", word):
        return ("P107", f"`{_shorten(word)}` is not a valid date", "invalid date",
                "write dates as YYYY-MM-DD: a four-digit year, two-digit month and day", None)
    time_part = word[11:] if is_date else word
    if re.match(r"[0-9]{2}:[0-9]{2}(?![:0-9])", time_part) or re.match(
            r"[0-9]{2}:[0-9]{2}:[0-9](?![0-9])", time_part):
        return ("P107", f"the time in `{_shorten(word)}` has no seconds"
                if re.match(r"[0-9]{2}:[0-9]{2}(?![:0-9])", time_part)
                else f"the time in `{_shorten(word)}` is not HH:MM:SS", "invalid time",
                f"write times as HH:MM:SS, e.g. `{time_part[:5]}:00`; TOML 1.0 requires seconds",
                None)
    return ("P107", f"`{_shorten(word)}` is not a valid date or time", "invalid date-time", hint,
            None)


# ---------------------------------------------------------------- characters

def _is_control(char: str) -> bool:
    return char < " " and char != "\t" or char == "\x7f"


def _codepoint(char: str) -> str:
    name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name.lower()})" if name else "")


# unicodedata has no names for control characters; these are their Unicode aliases.
_CONTROL_NAMES = dict(zip(
    [chr(i) for i in range(32)] + ["\x7f"],
    ["NULL", "START OF HEADING", "START OF TEXT", "END OF TEXT", "END OF TRANSMISSION",
     "ENQUIRY", "ACKNOWLEDGE", "BELL", "BACKSPACE", "CHARACTER TABULATION", "LINE FEED",
     "LINE TABULATION", "FORM FEED", "CARRIAGE RETURN", "SHIFT OUT", "SHIFT IN",
     "DATA LINK ESCAPE", "DEVICE CONTROL ONE", "DEVICE CONTROL TWO", "DEVICE CONTROL THREE",
     "DEVICE CONTROL FOUR", "NEGATIVE ACKNOWLEDGE", "SYNCHRONOUS IDLE",
     "END OF TRANSMISSION BLOCK", "CANCEL", "END OF MEDIUM", "SUBSTITUTE", "ESCAPE",
     "INFORMATION SEPARATOR FOUR", "INFORMATION SEPARATOR THREE", "INFORMATION SEPARATOR TWO",
     "INFORMATION SEPARATOR ONE", "DELETE"]))


def _shorten(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
