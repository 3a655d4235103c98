"""Every quick fix the server offers for the golden cases removes its diagnostic.

The fixes are read from the compiler's help templates (capibara/lsp/actions.py);
this applies each one to the file and checks again, so a help line that
changes shape, or a fix that does not fix, fails here. In process: the
protocol side of actions is tested over stdio in test_server.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from capibara.lsp.actions import fixes
from capibara.lsp.analysis import analyse
from capibara.lsp.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _cases() -> list[Path]:
    cases = []
    for path in sorted((ROOT / "tests" / "golden").glob("*.toml")):
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        cases.append(path)
    return cases


def _apply(text: str, edits) -> str:
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        text = text[: edit.start] + edit.text + text[edit.end:]
    return text


def _target(path: Path) -> str | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if "--target" in line:
            return line.split("--target", 1)[1].split()[0]
    return None


@pytest.mark.parametrize("path", _cases(), ids=lambda p: p.stem)
def test_each_fix_removes_its_diagnostic(path) -> None:
    text = path.read_text(encoding="utf-8")
    # the golden case's `--target`, as a workspace's `[tool.capibara]` would name it
    settings = Settings(path, _target(path))
    analysis = analyse(str(path), text, {}, settings)
    for diagnostic in analysis.diagnostics:
        for fix in fixes(diagnostic, analysis):
            assert all(edit.source.name == str(path) for edit in fix.edits)
            fixed = _apply(text, fix.edits)
            after = analyse(str(path), fixed, {}, settings)
            still = [d for d in after.diagnostics
                     if (d.code, d.message) == (diagnostic.code, diagnostic.message)]
            assert not still, (fix.title, fixed)


def test_the_fixes_cover_the_templates() -> None:
    """Each kind of fix is met at least once among the golden cases."""
    titles = set()
    for path in _cases():
        settings = Settings(path, _target(path))
        analysis = analyse(str(path), path.read_text(encoding="utf-8"), {}, settings)
        titles |= {(d.code, fix.title.split(" `")[0]) for d in analysis.diagnostics
                   for fix in fixes(d, analysis)}
    assert {("H017", "set"), ("S102", "replace with"), ("S101", "replace with"),
            ("S203", "replace with"), ("L001", "rewrite the v2 keys in v3 spelling (as")} <= titles
