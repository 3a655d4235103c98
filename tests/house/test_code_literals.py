"""Every diagnostic code the package writes is in the code table.

Codes are written where they are emitted (as rustc and ruff do), so a typo
would invent a code with no explanation; this finds it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from capibara.codes import CODES

PACKAGE = Path(__file__).resolve().parents[2] / "capibara"
CODE_SHAPE = re.compile(r"[PSLVHOR]\d{3}")


def code_literals() -> dict[str, list[str]]:
    """Code-shaped string constants in the package → where they are written."""
    found: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "codes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and CODE_SHAPE.fullmatch(node.value)):
                found.setdefault(node.value, []).append(f"{path.name}:{node.lineno}")
    return found


def test_every_code_written_in_the_package_is_in_the_table() -> None:
    unknown = {code: places for code, places in code_literals().items() if code not in CODES}
    assert not unknown, f"codes missing from capibara/codes.py: {unknown}"


def test_the_scan_sees_codes() -> None:
    assert "P101" in code_literals()
