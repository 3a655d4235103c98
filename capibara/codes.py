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
    # ------------------------------------------------------------------ P1: TOML syntax and structure
    Code("P101", "syntax error",
         """The text is not TOML: something stands where TOML expects something
else. The message says what was expected and what was found, and the
help line suggests the usual fix (a missing `=`, a key with spaces that
needs quotes, `True` instead of `true`, text after a value on the same
line, an unclosed `[` or `{`).

Example:
    hidden size = 768

Fix: a key with a space must be quoted, and most keys use `_`:
    hidden_size = 768"""),
    Code("P102", "unterminated string",
         """A string has no closing quote. Basic (`"..."`) and literal (`'...'`)
strings must end on the line where they start; multi-line strings
(`\"\"\"...\"\"\"`, `'''...'''`) must end before the file does.

Example:
    model_name = "capibara

Fix: `model_name = "capibara"`; for text over several lines use `\"\"\"`."""),
    Code("P103", "invalid escape sequence",
         """A backslash in a basic string starts an escape TOML does not have, or
a `\\u`/`\\U` escape has the wrong number of hex digits or names no
Unicode character (a surrogate, or beyond U+10FFFF). TOML 1.0 escapes
are `\\b \\t \\n \\f \\r \\" \\\\ \\uXXXX \\UXXXXXXXX`; in a multi-line basic
string a backslash may also end a line.

Example (a Windows path in a basic string: `\\d` is no escape):
    checkpoint_dir = "C:\\data\\runs"

Fix: use a literal string, where backslashes are plain text:
    checkpoint_dir = 'C:\\data\\runs'"""),
    Code("P104", "control character",
         """A control character (U+0000 to U+001F other than tab, or U+007F) sits
in a comment, a string or between statements, or a carriage return is
not followed by a line feed. They are invisible in most editors and
TOML forbids them outside escapes.

Example: a form feed pasted before a key, or `name = "a<U+0007>b"`.

Fix: delete the character; in a basic string write it as an escape
(`\\u0007`)."""),
    Code("P105", "invalid number",
         """A number is malformed: leading zeros (`0123`), an underscore that is
not between two digits (`1__000`, `_1`, `1_`), a float without digits
on both sides of the point (`1.`, `.5`), an exponent without digits, an
uppercase or signed base prefix (`0X1F`, `-0x1F`), a digit the base does
not have (`0o8`), or a special float in the wrong case (`Inf`, `NaN`).

Example:
    warmup_steps = 02000

Fix: `warmup_steps = 2000` (or `2_000`); octal is written `0o3720`."""),
    Code("P106", "integer out of 64-bit range",
         """TOML integers are 64-bit signed: from -9223372036854775808 to
9223372036854775807. The spec requires a parser to refuse an integer it
cannot keep losslessly, so a larger one is an error rather than being
silently rounded or wrapped by the program that reads it.

Example:
    total_tokens = 100_000_000_000_000_000_000

Fix: write it as a float (`1e20`) or, if it must be exact, as a string."""),
    Code("P107", "invalid date or time",
         """A date or time is malformed or names a moment that does not exist:
month 13, February 30, hour 24, minute 60, a time without seconds
(TOML 1.0 requires them), a one-digit field, or a year written with
other than four digits. Offset date-times are `1979-05-27T07:32:00Z` or
`...-07:00`, local ones drop the offset, dates are `1979-05-27`, times
`07:32:00` (fractions of a second allowed).

Example:
    start = 2024-02-30

Fix: `start = 2024-02-29` (2024 is a leap year)."""),
    Code("P108", "key defined twice",
         """The same key is set twice in one table (including through quoting,
`a` and `"a"` are the same key, or a dotted key and a plain one). TOML
refuses the document instead of letting one value silently win. The
diagnostic points at both places.

Example:
    [model]
    hidden_size = 768
    hidden_size = 1024

Fix: keep one of them."""),
    Code("P109", "table defined twice",
         """A table is defined a second time: two `[model]` headers, a header for a
table that dotted keys already created (`apple.color = "red"` then
`[apple]`), or dotted keys that add to a table a header defined in an
earlier section. Each table is defined in exactly one place.

Example:
    [training]
    batch_size = 32
    [training]
    learning_rate = 3e-4

Fix: merge the two sections into one `[training]`."""),
    Code("P110", "inline table or array cannot be extended",
         """A value written inline, an inline table `{ ... }` or an array
`[ ... ]`, is complete as written: neither a `[header]`, nor `[[header]]`
nor a dotted key may add to it later.

Example:
    optimizer = { name = "adamw" }
    optimizer.lr = 3e-4

Fix: put every key inside the braces, `optimizer = { name = "adamw",
lr = 3e-4 }`, or use an `[optimizer]` section."""),
    Code("P111", "key holds a value, not a table",
         """A key that already holds a plain value (a string, number, boolean,
date) is used as a table, by a header or a dotted key. A key holds
either a value or a table, never both.

Example:
    model = "capibara"
    [model]
    hidden_size = 768

Fix: rename one of them, e.g. `model_name = "capibara"`."""),
    Code("P112", "table and array of tables mixed",
         """`[name]` defines one table and `[[name]]` appends a table to an array
of tables; one key cannot be both. This code also covers a dotted key
that tries to add to an array of tables.

Example:
    [[callbacks]]
    kind = "checkpoint"
    [callbacks]
    kind = "lr_monitor"

Fix: write every header as `[[callbacks]]`."""),
    Code("P113", "nesting too deep",
         """Arrays and inline tables nest more than 128 levels deep, or one key has
more than 128 dotted parts. No configuration needs that much; the limit
keeps every later stage (comparisons, encoders, copies) clear of
Python's recursion limit instead of failing there with a traceback.

Example: a generated file with `x = [[[[...]]]]` 10,000 levels deep.

Fix: flatten the structure."""),
    Code("P114", "inline table spans lines",
         """In TOML 1.0 an inline table `{ ... }` must stay on one line: no line
break and no comment between its braces (TOML 1.1 relaxes this; capibara
reads 1.0, as `tomllib` does).

Example:
    rope = {
        theta = 10_000.0,
    }

Fix: `rope = { theta = 10_000.0 }`, or for longer tables a `[section]`."""),
    # ------------------------------------------------------------------ S: schema (fields, sources)
    Code("S101", "unknown section",
         """A TOML table names no section of the configuration. Sections are the
canonical ones (`[model]`, `[jax_config]`, `[performance]`,
`[vector_quantization]`, `[tpu_v4_optimizations]`, `[sparsity]`,
`[quantization]`, `[hardware]`, `[arm_optimizations]`, `[deployment]`,
`[enterprise]`, `[training]`, `[testing]`, `[generation]`) and the alias
section `[tpu_v6_features]`. Also emitted for a `--set` path whose section is
unknown. A misspelled section would otherwise be ignored silently, and the
values in it would never take effect.

Example:
    [vector_quantisation]
    codes = 128

Fix: `[vector_quantization]` (the help suggests the nearest section)."""),
    Code("S102", "unknown key",
         """A key inside a known section spells no field there. Silently ignoring
it would leave the setting at its default while the file claims otherwise.
The help names the most useful fix: the nearest key, the section the key
belongs to, or how a flat field name is written in TOML (inside a section the
section's prefix is dropped: `vq_codes` is `codes` in `[vector_quantization]`).

Example:
    [vector_quantization]
    vq_codes = 128

Fix: `codes = 128` (or move a key to the section that owns it)."""),
    Code("S103", "unknown field name",
         """A flat field name given as a Python keyword argument
(`ModularModelConfig(hiden_size=768)`), a `--set` path without a section, or
a key of `update_runtime_settings` names no field. In Python the error is a
`ConfigError` that is also a `TypeError` and a `KeyError`.

Example:
    capibara check config.toml --set hiden_size=1024

Fix: `--set hidden_size=1024` (the help suggests the nearest field name;
`capibara explain FIELD` describes one)."""),
    Code("S104", "unknown environment variable",
         """A `CAPIBARA_*` environment variable is not one capibara reads. It is a
warning, not an error (the environment is shared with other programs), but it
is never ignored silently: a misspelled variable is the classic reason a
setting "does not work". The variables are the seed's twenty plus the
systematic spellings `CAPIBARA_USE_SPARSE`, `CAPIBARA_JAX_DEBUG_MODE`,
`CAPIBARA_USE_ARM_OPTIMIZATIONS` and `CAPIBARA_TPU_MESH_SHAPE`; other fields
have no variable.

Example:
    export CAPIBARA_VQ_CODE=128

Fix: `export CAPIBARA_VQ_CODES=128`, or pass `--no-env` to ignore the
environment."""),
    Code("S105", "value outside any section",
         """Every field lives in a section. This is a key written above the first
`[section]` header, or a section name given a plain value instead of a table.

Example:
    hidden_size = 1024
    [model]
    num_layers = 24

Fix: move the key below `[model]` (the help names the section and the key as
it is written there)."""),
    Code("S201", "value has the wrong type",
         """A value's type does not match its field. Types are strict: a boolean
field takes only `true`/`false` (not 0/1 or the string "true"), an integer
field refuses floats such as `768.0`, a float field takes integers. In an
environment variable, the text must parse as the field's type (booleans:
true/false/1/0/yes/no/on/off; the mesh: "4,8").

Example:
    [vector_quantization]
    enabled = "yes"

Fix: `enabled = true`."""),
    Code("S202", "value out of range",
         """A number lies outside its field's range (PARAMS.md §b): for example
ratios in [0.0, 0.95], `vq_adaptive_threshold` in [0, 1], `gpu_memory_fraction`
in (0, 1], β in [0, 1), ports 1–65535, counts at least 1, mesh axes at
least 1. NaN and infinities are never accepted.

Example:
    [sparsity]
    ratio = 2.0

Fix: `ratio = 0.65` (any value from 0.0 to 0.95)."""),
    Code("S203", "value is not one of the allowed values",
         """A field with a closed set of values got another one: string enums
(matched in any case; `mixture_of_rookies` is accepted for `mor`, `1.58b` for
`1.58bit`), the integer sets `vq_codes` ∈ {64, 128} and `affine_bits` ∈
{4, 8, 16}, `kernel_categories` entries, and "auto" fields given another word.

Example:
    [vector_quantization]
    codes = 96

Fix: `codes = 64` (or 128, which TPU v6 enterprise mode uses)."""),
    Code("S204", "string has the wrong form",
         """A string field has a required form: `version` looks like `v3.0.0`
(optionally with a `-` or `+` suffix), `metrics_endpoint` is a URL path
starting with `/`, `model_name` is not empty.

Example:
    [enterprise]
    metrics_endpoint = "metrics"

Fix: `metrics_endpoint = "/metrics"`."""),
    Code("S205", "list entry repeated",
         """`kernel_categories` is a set: listing a category twice is a mistake
(usually a copy-paste slip hiding a category that was meant instead).

Example:
    kernel_categories = ["linalg", "fft", "fft"]

Fix: list each category once."""),
    Code("S301", "one field set twice with different values",
         """Some fields have more than one spelling (PARAMS.md §0.3.5):
`[vector_quantization] codes` and `[tpu_v6_features] vq_codes`,
`[performance] cache_optimized` and `cache_compiled_functions`,
`[tpu_v6_features] enabled` and `adaptive_ml`, or two environment variables
such as `CAPIBARA_USE_SPARSITY` and `CAPIBARA_USE_SPARSE`. Within one file
(or in the environment) they may repeat a value, but different values leave
the intent ambiguous, so capibara refuses to pick one. Later files and
higher-precedence sources still override earlier ones without conflict.

Example:
    [vector_quantization]
    codes = 64
    [tpu_v6_features]
    vq_codes = 128

Fix: keep one spelling (the canonical `[vector_quantization] codes`)."""),
    Code("S401", "a derived value cannot be derived",
         """A field left unset is derived from others, and the derivation is
impossible. `num_heads` defaults to `hidden_size // 64` (head dimension 64,
which fits every documented tier); a hidden size that is not a multiple of 64
has no such head count.

Example:
    [model]
    hidden_size = 1000

Fix: set `num_heads` to a divisor of the hidden size (`num_heads = 8`), or use
a multiple of 64 such as 1024."""),
    Code("S501", "field cannot change at run time",
         """`update_runtime_settings` may change only the runtime-mutable fields
(PARAMS.md §c): batch sizes, sampling temperature, the VQ bypass and
threshold, logging, monitoring, safety filters and debug switches. Every other
field changes parameter shapes, devices, the mesh, services or compilation, so
it needs a new config and a new model. The update is refused as a whole:
nothing is changed.

Example:
    config.update_runtime_settings({"num_layers": 24})

Fix: `config.replace(num_layers=24)` and build a new model from it."""),
    Code("S601", "malformed `--set` argument",
         """A `--set` argument is `PATH=VALUE`: PATH is a flat field name
(`hidden_size`) or `section.key` (`model.hidden_size`, aliases allowed), and
VALUE is written as in a TOML file (`0.5`, `true`, `[4, 4]`, `"text"`). A
single bare word such as `topk` is taken as a string, so the shell's quote
removal does no harm. Anything else that does not parse is this error, shown
under the argument's own text.

Example:
    capibara check config.toml --set sparsity.ratio=0.5.1

Fix: `--set sparsity.ratio=0.5`."""),
)


def explain(code: str) -> str:
    """The text ``capibara explain CODE`` prints; raises ``KeyError`` if unknown."""
    entry = CODES[code.upper()]
    return f"{entry.code}: {entry.title}\n\n{entry.explanation}\n"
