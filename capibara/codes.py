"""The table of diagnostic codes: one entry per code, with its explanation.

Codes are stable and grouped by the stage that emits them: ``P`` parse,
``S`` schema, ``L`` legacy rewrite, ``V`` validation (cross-field rules),
``H`` hardware and lowering, ``O`` optimization, ``R`` runtime.  Every code
here has an explanation (printed by ``capibara explain CODE``) and a golden
case under ``tests/golden/`` (a registry test checks both).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Code", "CODES", "explain"]


@dataclass(frozen=True, slots=True)
class Code:
    """A diagnostic code: ``title`` is one line, ``explanation`` says what
    triggers it, why it matters, and shows an example with its fix."""

    code: str
    title: str
    explanation: str


def _table(*codes: Code) -> dict[str, Code]:
    table: dict[str, Code] = {}
    for entry in codes:
        if entry.code in table:
            raise AssertionError(f"diagnostic code {entry.code} is defined twice")
        table[entry.code] = entry
    return table


CODES: dict[str, Code] = _table(
    # ------------------------------------------------------------------ P: reading files
    Code("P001", "file not found",
         """A configuration file named on the command line (or passed to
`from_toml`) does not exist, and no bundled preset has that name.

Example:
    capibara check prodution/tpu_v4.toml

Fix: check the spelling; `capibara check production/tpu_v4.toml` finds the
bundled preset when no such file exists in the working directory."""),
    Code("P002", "file is not valid UTF-8",
         """TOML files must be UTF-8 (a leading byte-order mark is allowed).
The diagnostic points at the first byte that is not valid UTF-8.

Example: a file saved as Latin-1 containing `name = "Capibará"`.

Fix: re-save the file as UTF-8."""),
    Code("P003", "file cannot be read",
         """The file exists but reading it failed (a directory, no permission,
an I/O error). The message carries the operating system's reason."""),
)


def explain(code: str) -> str:
    """The text ``capibara explain CODE`` prints; raises ``KeyError`` if unknown."""
    entry = CODES[code.upper()]
    return f"{entry.code}: {entry.title}\n\n{entry.explanation}\n"
