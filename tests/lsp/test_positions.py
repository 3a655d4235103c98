"""Character offsets to protocol positions and back, in each position encoding."""

from __future__ import annotations

import pytest
from lsprotocol import types

from capibara.diagnostics import Source
from capibara.lsp.positions import UTF8, UTF16, UTF32, offset, position

TEXT = 'name = "año 🦫"\r\nsize = 1\n🦫🦫 = 2'


@pytest.mark.parametrize("encoding", [UTF8, UTF16, UTF32])
def test_round_trip(encoding) -> None:
    source = Source("x.toml", TEXT)
    for at in range(len(TEXT) + 1):
        if TEXT[at - 1: at + 1] == "\r\n":
            continue  # between CR and LF is not a place a cursor can be
        assert offset(source, position(source, at, encoding), encoding) == at


def test_code_units() -> None:
    source = Source("x.toml", TEXT)
    after_beaver = TEXT.index("🦫") + 1
    assert position(source, after_beaver, UTF16) == types.Position(0, 14)  # 🦫 is 2 units
    assert position(source, after_beaver, UTF8) == types.Position(0, 17)  # ñ 2 bytes, 🦫 4
    assert position(source, after_beaver, UTF32) == types.Position(0, 13)
    last_line = TEXT.rindex("=")
    assert position(source, last_line, UTF16) == types.Position(2, 5)


def test_past_the_end_clamps() -> None:
    source = Source("x.toml", TEXT)
    assert offset(source, types.Position(1, 99)) == TEXT.index("\nsize") + 1 + len("size = 1")
    assert offset(source, types.Position(9, 0)) == len(TEXT)
