"""The table of diagnostic codes: one entry per code, with its explanation.

Codes are stable and grouped by the stage that emits them: ``P`` parse,
``S`` schema, ``L`` legacy rewrite, ``V`` validation (cross-field rules),
``H`` hardware and lowering, ``O`` optimization, ``R`` runtime, ``D`` training data.  Every code
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
    Code("P002", "input is not valid UTF-8",
         """TOML files must be UTF-8 (a leading byte-order mark is allowed), and so
must `--set` arguments and `CAPIBARA_*` environment values. The diagnostic
points at the first byte that is not valid UTF-8. Such bytes are refused
rather than carried along: a config holding them could not be written back
as TOML or frozen into a plan.

Example: a file saved as Latin-1 containing `name = "Capibará"`, or
`--set model.model_name=capibará` typed in a Latin-1 terminal.

Fix: re-save the file as UTF-8, or set the terminal's encoding to UTF-8."""),
    Code("P003", "file cannot be read",
         """The file exists but reading it failed (a directory, no permission,
an I/O error). The message carries the operating system's reason. A file
larger than 1 MiB is refused too, before it is read whole: configs are a
few kilobytes, and a huge or endless file (`/dev/zero`) would otherwise
tie up the machine.

Only regular files are read: a directory, a named pipe (FIFO), a device or
a socket is refused at once (a FIFO would otherwise wait forever for a
writer), and so is a symbolic link loop.

Example: `capibara check configs/` (a directory), `capibara check
/dev/zero`.

Fix: pass the path of a TOML file."""),
    Code("P004", "file cannot be written safely",
         """capibara refused to write a file because writing it could lose
data. `capibara migrate --write` rewrites a config in place only when it is
writable, its folder is writable (the new text is written beside it and
renamed over it), its owner and group can be kept, and nobody changed it
while it was being migrated (it is compared just before the rename). A
symbolic link is followed: the file it points at is rewritten and the link
stays. `capibara compile -o PLAN` never writes over one of the configs it
reads, nor over anything that is not a regular file (a directory, a device
such as `/dev/null`, a FIFO), a read-only file, or through a dangling link.

Example:
    capibara compile mine.toml -o mine.toml

Fix: write somewhere else (`-o mine.plan.json`), or make the file writable
if it is meant to change. Nothing was written."""),
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
         """A number lies outside its field's range (`capibara explain FIELD` gives it): for example
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
    Code("S206", "value far outside the usual range",
         """A field holds a value its type allows but training almost never
uses: a learning rate outside [1e-7, 1] or an optimizer epsilon outside
[1e-12, 1e-2]. It is a warning, not an error, since an experiment may mean
it; more often it is a typo (a missing minus sign in an exponent) that
would silently ruin a run: `learning_rate = 1e308` overflows every update,
and `epsilon = 5e-324` is zero in float32, so Adam divides by zero.

Example:
    [training]
    learning_rate = 1e308

Fix: `learning_rate = 1e-3` (usual values are 1e-5 to 1e-2; epsilon is
usually 1e-8, or 1e-6 with bfloat16)."""),
    Code("S301", "one field set twice with different values",
         """Some fields have more than one spelling:
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
(`capibara explain FIELD` says which): batch sizes, sampling temperature, the VQ bypass and
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
    # ------------------------------------------------------------------ L: legacy (v2.x) rewrite
    Code("L001", "v2 key `model_size` rewritten",
         """A v2.x config names its size tier (`model_size = "600m"`) instead of the
model's shape. The legacy rewrite replaces it with `hidden_size`, `num_layers`,
`num_heads` and `model_name = "capibara_<size>"` under `[model]` (the size
table `capibara migrate` uses); keys written beside it win. A v2 file carries no shapes, so the note
reminds you to compare them with the checkpoint you load.

Example:
    model_size = "600m"

Fix: `capibara migrate --write FILE`, or write `hidden_size = 2048`,
`num_layers = 12`, `num_heads = 32` and `model_name = "capibara_600m"` under
`[model]`."""),
    Code("L002", "v2 key `use_quantum` rewritten",
         """`use_quantum` is the v2 name of vector quantization ("quantum" was the
old name of the VQ component, not quantum computing). It becomes
`[vector_quantization] enabled` (the field `use_vq`).

Example:
    use_quantum = true

Fix: `enabled = true` under `[vector_quantization]` (`capibara migrate --write
FILE` does it)."""),
    Code("L003", "v2 device setting rewritten",
         """A v2 file keeps `device` at the top level or in `[model]`, and may use the
v2 names `"tpu"` (TPU v4, the only TPU v2.x supported) and `"cuda"` (a GPU).
v3 keeps the device in `[hardware]` with the names `auto`, `tpu_v4`, `tpu_v6`,
`gpu`, `cpu`; a v2 `tpu_v4` also turned on the TPU v4 optimizations, and
`gpu`/`cpu` turned them off, unless the file says otherwise.

Example:
    device = "tpu"

Fix: `device = "tpu_v4"` under `[hardware]` and `enabled = true` under
`[tpu_v4_optimizations]`."""),
    Code("L010", "unknown legacy model size",
         """`model_size` names no v2 size. The sizes are 125m, 350m, 600m, 1.3b,
1.8b, 2.7b and 7b, written in any case and through millions (`"0.6b"` is
600m, `"1300m"` is 1.3b). No nearest size is guessed: a wrong guess would
build a model that no checkpoint fits.

Example:
    model_size = "650m"

Fix: a listed size, or drop `model_size` and set `hidden_size`, `num_layers`
and `num_heads` under `[model]`."""),
    Code("L011", "unusable legacy value",
         """A legacy key holds a value of the wrong type or an unknown name:
`model_size` must be a string with its unit, `use_quantum` a boolean, `device`
one of `auto`, `tpu`, `tpu_v4`, `tpu_v6`, `gpu`, `cuda`, `cpu`.

Example:
    use_quantum = "yes"

Fix: `use_quantum = true`."""),
    Code("L012", "legacy key contradicts its v3 spelling",
         """A legacy key and the v3 key it becomes are both given, with different
values (or two legacy keys disagree). Which one was meant cannot be known, so
neither is chosen.

Example:
    use_quantum = true
    [vector_quantization]
    enabled = false

Fix: delete the legacy key, or make the two agree."""),
    # ------------------------------------------------------------------ V: cross-field validation
    Code("V001", "head count does not divide the hidden size",
         """Each attention head gets `hidden_size / num_heads` features, which must
be a whole number.

Example:
    [model]
    hidden_size = 768
    num_heads = 10

Fix: `num_heads = 12` (head dimension 64), or remove `num_heads` to derive
`hidden_size // 64`."""),
    Code("V002", "inefficient head dimension",
         """The head dimension `hidden_size / num_heads` is legal but neither 64 nor
128, the standard sizes; multiples of 128 fill the TPU matrix unit, other
sizes leave parts of it idle. A warning.

Example:
    [model]
    hidden_size = 768
    num_heads = 16      # head dimension 48

Fix: `num_heads = 12` (64) or `num_heads = 6` (128)."""),
    Code("V003", "architecture value outside the documented tiers",
         """`hidden_size` (512, 768, 1024, 2048), `num_layers` (6, 12, 24, 36) or an
explicit `num_heads` (8, 12, 16, 32) is not one of the documented values.
The sets are advisory: tiny test models and large migrated shapes are
fine, but they are not the tuned configurations. A warning.

Example:
    [model]
    hidden_size = 640

Fix: keep it if intended, or use the nearest documented value the help names."""),
    Code("V004", "encoder set without multimodal processing",
         """`vision_encoder_type` or `audio_encoder_type` is set while
`multimodal_enabled` is false: the encoder would be loaded for nothing.

Example:
    [model]
    vision_encoder_type = "clip"

Fix: `multimodal_enabled = true`, or remove the encoder."""),
    Code("V005", "multimodal processing without an encoder",
         """`multimodal_enabled = true` with no vision and no audio encoder: an enabled
multimodal pipeline with no encoder cannot process anything.

Example:
    [model]
    multimodal_enabled = true

Fix: set `vision_encoder_type` ("clip" or "vit") or `audio_encoder_type`
("wav2vec2" or "whisper"), or turn multimodal off."""),
    Code("V006", "`use_jax_native` contradicts `jax_backend`",
         """Both say whether `capibara.jax` is used: `use_jax_native = false`
with `backend = "capibara_jax"`, or `true` with `"standard"`, cannot both
hold. One of them alone decides the other.

Example:
    [jax_config]
    use_jax_native = false
    backend = "capibara_jax"

Fix: `backend = "standard"`, or remove one of the two keys."""),
    Code("V007", "native JAX backend without a fallback",
         """`backend = "capibara_jax"` with `fallback_to_standard = false` fails hard
on any machine where `capibara.jax` cannot be imported, instead of running on
standard JAX. A warning.

Example:
    [jax_config]
    fallback_to_standard = false

Fix: `fallback_to_standard = true`, or `backend = "auto"`."""),
    Code("V008", "compile settings without JIT",
         """`compile_mode` or `cache_compiled_functions` is set while `enable_jit` is
false: nothing is compiled, so they mean nothing. A warning.

Example:
    [performance]
    enable_jit = false
    compile_mode = "aggressive"

Fix: remove the compile settings, or turn JIT on."""),
    Code("V009", "debug instrumentation with aggressive compilation",
         """`jax_debug_mode`, `trace_execution` or `profile_performance` is on with
`compile_mode = "aggressive"`: debug instrumentation distorts or defeats the
optimizations, and profiles measure something else than production.

Example:
    [jax_config]
    debug_mode = true
    [performance]
    compile_mode = "aggressive"

Fix: `compile_mode = "default"` while debugging."""),
    Code("V010", "`vq_embedding_dim` differs from `hidden_size`",
         """With VQ on, codebook vectors replace hidden states, so both must have the
same size; no projection between them is documented. Omitting
`embedding_dim` derives it from `hidden_size`.

Example:
    [model]
    hidden_size = 1024
    [vector_quantization]
    embedding_dim = 768

Fix: remove `embedding_dim`, or set it to 1024."""),
    Code("V011", "enterprise VQ mode without VQ",
         """`vq_enterprise_mode` (128 codes plus adaptive ML) is a mode of vector
quantization, so it needs `use_vq`.

Example:
    [vector_quantization]
    enabled = false
    enterprise_mode = true

Fix: `enabled = true`, or turn enterprise mode off."""),
    Code("V012", "enterprise VQ mode without 128 codes",
         """Enterprise mode is defined as "128 códigos + ML adaptativo". When
`codes` is not given it becomes 128; an explicit other value is this error.
The reverse is allowed: 128 codes without enterprise mode (the research
example).

Example:
    [vector_quantization]
    enterprise_mode = true
    codes = 64

Fix: `codes = 128` (or remove it), or turn enterprise mode off."""),
    Code("V013", "enterprise VQ settings without enterprise mode",
         """`vq_cost_management` or `vq_fallback_strategy` is set explicitly while
`vq_enterprise_mode` is off: they only act in enterprise mode. A
warning; nothing is said about their defaults.

Example:
    [vector_quantization]
    fallback_strategy = "gpu"

Fix: remove them, or `enterprise_mode = true`."""),
    Code("V014", "vector-quantization settings while VQ is off",
         """Vector-quantization settings are set explicitly while `use_vq` is false;
they are ignored. A warning.

Example:
    [vector_quantization]
    enabled = false
    codes = 128

Fix: remove them, or `enabled = true`."""),
    Code("V015", "hardware-specific VQ path on the wrong device",
         """`vq_use_tpu_optimizations` set for an explicit `gpu` or `cpu` device, or
`vq_use_simd` (a CPU path) set for an explicit TPU device, is ignored there.
With `device = "auto"` these flags are gated silently. A warning.

Example:
    [hardware]
    device = "cpu"
    [vector_quantization]
    use_tpu_optimizations = true

Fix: remove the flag that cannot apply."""),
    Code("V016", "float16 VQ codebooks on a TPU",
         """`vq_precision = "float16"` on a TPU (named, or resolved on the target):
TPUs compute natively in bfloat16 and emulate float16 slowly. A warning.

Example:
    [hardware]
    device = "tpu_v4"
    [vector_quantization]
    precision = "float16"

Fix: `precision = "bfloat16"` (or "auto")."""),
    Code("V018", "manual sharding without a mesh",
         """`sharding_strategy = "manual"` places arrays on a mesh you describe, so
`mesh_shape` cannot be "auto".

Example:
    [tpu_v4_optimizations]
    sharding_strategy = "manual"

Fix: `mesh_shape = [4, 4]` (one size per axis; the product is the device
count), or `sharding_strategy = "auto"`."""),
    Code("V019", "sharded features with sharding disabled",
         """`sharding_strategy = "disabled"` keeps every array whole on each device,
but `model_parallel` splits the model and `optimizer_sharding` splits the
optimizer state: both need sharding. `optimizer_sharding` is on by
default, so it must be turned off explicitly.

Example:
    [tpu_v4_optimizations]
    sharding_strategy = "disabled"

Fix: `optimizer_sharding = false` (and `model_parallel = false`), or
`sharding_strategy = "auto"`."""),
    Code("V020", "model axis does not divide the model",
         """With `model_parallel`, the last mesh axis splits attention heads and
hidden features across devices, so its size must divide `num_heads` and
`hidden_size`; not dividing `vocab_size` only pads the embedding (a
warning). The seed's `[4, 8]` mesh cannot split 12 heads 8 ways.

Example:
    [tpu_v4_optimizations]
    mesh_shape = [4, 8]
    model_parallel = true

Fix: a mesh with the same device count whose last axis divides the heads,
e.g. `[8, 4]`."""),
    Code("V022", "multi-device settings on one device",
         """`optimizer_sharding`, `async_collective` or `distributed_training` is set
explicitly for a target with one device, where there is nothing to shard or
communicate with. Reported by the hardware check. A warning.

Example (`--target cpu`):
    [tpu_v4_optimizations]
    async_collective = true

Fix: remove them for single-device runs."""),
    Code("V023", "kernel categories without custom kernels",
         """`kernel_categories` changed while `use_custom_kernels` is false is
ignored; `use_custom_kernels = true` with an empty list selects no kernel.
A warning.

Example:
    [tpu_v4_optimizations]
    kernel_categories = []

Fix: list the categories to use, or `use_custom_kernels = false`."""),
    Code("V024", "`use_tpu_v4_optimizations` for another device",
         """TPU v4 optimizations set explicitly for an explicit `gpu` or `cpu` device
are ignored; for `tpu_v6` they apply only on fallback to TPU v4, which cannot
happen with `hardware_fallback = false`. A warning.

Example:
    [hardware]
    device = "gpu"
    [tpu_v4_optimizations]
    enabled = true

Fix: remove `enabled` from `[tpu_v4_optimizations]`."""),
    Code("V026", "risky precision combination",
         """`mixed_precision = false` with `use_bfloat16 = true` computes and stores
weights in pure bfloat16, which risks unstable training; `use_bfloat16 =
false` with mixed precision on a TPU computes in float16, which TPUs run
slowly. A warning.

Example:
    [performance]
    mixed_precision = false

Fix: `mixed_precision = true` (fp32 master weights, bf16 compute)."""),
    Code("V027", "training settings in inference mode",
         """In inference mode (`--mode inference`), the training fields
(`[training]`, `gradient_checkpointing`, `activation_offloading`,
`optimizer_sharding`) set explicitly are ignored. A warning.

Example (`capibara check --mode inference`):
    [training]
    learning_rate = 0.001

Fix: keep training settings out of inference configs."""),
    Code("V028", "sparsity range out of order",
         """`min_sparsity` must not exceed `max_sparsity`; with adaptive sparsity the
target `sparsity_ratio` must also lie between them, because the schedule
ramps from the minimum to the target and clamps adjustments to the range.

Example:
    [sparsity]
    ratio = 0.9
    max_sparsity = 0.8

Fix: a ratio inside [min_sparsity, max_sparsity], or move the bound."""),
    Code("V029", "impossible Mixture-of-Rookies routing",
         """Mixture of Rookies routes each token to `mor_top_k` of `mor_num_experts`
experts; more than exist is impossible. Routing to all of them (or
having a single expert) is legal but gives no routing sparsity: a warning.

Example:
    [sparsity]
    mor_num_experts = 8
    mor_top_k = 9

Fix: `mor_top_k = 2` (the default)."""),
    Code("V030", "`mor_*` settings without Mixture of Rookies",
         """`mor_num_experts`, `mor_top_k` or `mor_load_balancing` is set explicitly
while sparsity is off or uses another method; they are ignored. A
warning.

Example:
    [sparsity]
    method = "topk"
    mor_top_k = 4

Fix: remove them, or `method = "mor"`."""),
    Code("V031", "two weight quantizers at once",
         """BitNet and affine quantization both quantize the weights; they are
alternatives. `use_bitnet = true` alone turns the affine default off,
so this is only an error when both are set to true.

Example:
    [quantization]
    use_bitnet = true
    use_affine_quantization = true

Fix: `use_affine_quantization = false`, or remove it."""),
    Code("V032", "quantizer settings while the quantizer is off",
         """`bitnet_precision` without `use_bitnet`, or `affine_bits`/`affine_symmetric`
without `use_affine_quantization`, is ignored. A warning.

Example:
    [quantization]
    use_affine_quantization = false
    affine_bits = 4

Fix: remove the setting, or turn its quantizer on."""),
    Code("V033", "`auto_device_selection` contradicts `device`",
         """`auto_device_selection` says the same as `device = "auto"`.
`device = "auto"` with `auto_device_selection = false` leaves no device to use
(an error); a named device with `auto_device_selection = true` is a warning:
the named device wins.

Example:
    [hardware]
    auto_device_selection = false

Fix: name a device (`device = "tpu_v4"`), or remove `auto_device_selection`."""),
    Code("V034", "`fallback_cpu` without hardware fallback",
         """`fallback_cpu = true` only allows CPU as the last step of the hardware
fallback chain; with `hardware_fallback = false` there is no chain.
A warning.

Example:
    [hardware]
    hardware_fallback = false
    fallback_cpu = true

Fix: `hardware_fallback = true`, or remove `fallback_cpu`."""),
    Code("V037", "settings for GPUs on a non-GPU device",
         """`num_gpus`, `gpu_memory_fraction` or `gpu_memory_growth` is set for an
explicit TPU or CPU device; they are ignored. Growth plus a fraction is
fine on a GPU: memory grows on demand up to the cap. A warning.

Example:
    [hardware]
    device = "cpu"
    gpu_memory_fraction = 0.5

Fix: remove the GPU settings."""),
    Code("V038", "several memory caps",
         """`[hardware] memory_limit_gb` together with `tpu_memory_limit_gb` or
`gpu_memory_fraction`: the smallest limit applies, which may not
be the one you read first. A warning.

Example:
    [hardware]
    memory_limit_gb = 8.0
    [tpu_v4_optimizations]
    memory_limit_gb = 16.0

Fix: keep the one cap you mean."""),
    Code("V039", "`use_arm_optimizations` without an ARM CPU",
         """ARM Axion optimizations apply to ARM CPUs: set explicitly for a TPU or
GPU device, or checked against a target that is not an ARM CPU, they are
ignored. With both `arm_sve_enabled` and `arm_neon_fallback` off only the
scalar path is left. A warning.

Example:
    [arm_optimizations]
    enabled = true
    sve_vectorization = false
    neon_fallback = false

Fix: `neon_fallback = true` at least; use the file on an ARM host."""),
    Code("V040", "ranks do not fit the world size",
         """`local_rank` must lie in [0, world_size); `world_size > 1` needs
`distributed_training` (errors). `distributed_training` with `world_size = 1`
runs a single process (a warning).

Example:
    [deployment]
    world_size = 4

Fix: `distributed_training = true`, or `world_size = 1`."""),
    Code("V041", "batch size above the maximum",
         """An integer `batch_size` above `max_batch_size`.

Example:
    [deployment]
    batch_size = 64
    max_batch_size = 32

Fix: `batch_size = 32`, or raise `max_batch_size`."""),
    Code("V042", "batch size is only a starting size",
         """With `adaptive_batching` (on by default) an integer `batch_size` is the
starting size; the runtime adjusts it within [1, max_batch_size].
A warning, so the number in the file is not mistaken for a fixed batch.

Example:
    [deployment]
    batch_size = 32

Fix: `adaptive_batching = false` to keep it fixed, or "auto"."""),
    Code("V043", "service port clash or privileged port",
         """With MCP and Meta Loop both enabled, `mcp_port` and `elixir_bridge_port`
must differ: two servers cannot bind one port (an error). An enabled
service on a port below 1024 needs root (a warning).

Example:
    [enterprise]
    mcp_enabled = true
    meta_loop_enabled = true
    mcp_port = 9090

Fix: different ports (defaults 8080 and 9090)."""),
    Code("V044", "`mcp_*` settings while MCP is off",
         """`mcp_port`, `mcp_auth_required` or `mcp_rate_limiting` is set explicitly
while `mcp_enabled` is false; no MCP server runs. A warning.

Example:
    [enterprise]
    mcp_port = 8081

Fix: `mcp_enabled = true`, or remove them."""),
    Code("V045", "`ethics_guard_enabled` or `rag_hub_enabled` without Meta Loop",
         """The ethics guard and the RAG Hub run inside Meta Loop (Elixir/OTP); set
to true while `meta_loop_enabled` is false they are not running, although the
file reads as if an ethics guard were active. `content_safety_check`
and `output_filtering` still apply. A warning.

Example:
    [enterprise]
    ethics_guard_enabled = true

Fix: `meta_loop_enabled = true`."""),
    Code("V046", "unauthenticated MCP server",
         """`mcp_enabled` with `mcp_auth_required = false` exposes a server anyone
who can reach the port may use. A warning.

Example:
    [enterprise]
    mcp_enabled = true
    mcp_auth_required = false

Fix: `mcp_auth_required = true`."""),
    Code("V047", "security preset weakened",
         """`security_level = "high"` turns on `mcp_auth_required`, `api_key_required`,
`request_encryption`, `audit_logging`, `sensitive_data_masking`,
`output_filtering` and `content_safety_check` where they are not set; one set
to false would weaken the preset silently.

Example:
    [enterprise]
    security_level = "high"
    audit_logging = false

Fix: remove the switch (the preset turns it on), or `security_level =
"standard"`."""),
    Code("V048", "verbose logging without data masking",
         """`log_level = "DEBUG"`, `debug_mode` or `jax_debug_mode` with
`sensitive_data_masking = false` risks writing sensitive data to the logs.
A warning.

Example:
    [enterprise]
    log_level = "DEBUG"
    sensitive_data_masking = false

Fix: `sensitive_data_masking = true`."""),
    Code("V049", "monitoring settings while monitoring is off",
         """`metrics_endpoint`, `health_check_interval` or `performance_profiling` is
set explicitly while `monitoring_enabled` is false (the default); they
are ignored. A warning.

Example:
    [enterprise]
    health_check_interval = 10

Fix: `monitoring_enabled = true`."""),
    Code("V050", "warmup does not end before the schedule",
         """`decay_steps` is the total schedule length including warmup, so
`warmup_steps` must be smaller: otherwise the learning rate never decays.

Example:
    [training]
    warmup_steps = 10000
    decay_steps = 10000

Fix: a longer schedule or a shorter warmup."""),
    Code("V051", "checkpoint interval longer than the schedule",
         """`save_checkpoint_steps` above `decay_steps` saves no checkpoint within
the schedule. A warning.

Example:
    [training]
    save_checkpoint_steps = 20000

Fix: `save_checkpoint_steps` at most `decay_steps`."""),
    Code("V052", "consensus distilling without teachers",
         """`use_consensus_distilling` needs teacher models, and no field names them
yet: training with it fails, and it costs about 5× the compute. An even
`consensus_num_teachers` can also tie a majority vote. Warnings.

Example:
    [training]
    use_consensus_distilling = true

Fix: `use_consensus_distilling = false` until teacher sources exist."""),
    Code("V053", "optimizer ignores a setting",
         """SGD uses neither `beta1`, `beta2` nor `epsilon`; RMSprop uses `beta2` as
its decay ρ and `epsilon`, but not `beta1`. A changed value the optimizer
ignores is a warning.

Example:
    [training]
    optimizer = "sgd"
    beta1 = 0.8

Fix: remove it, or `optimizer = "adamw"`."""),
    Code("V054", "betas break Adam's convergence condition",
         """For AdamW, β1² < √β2 is the convergence condition (Reddi et al.); the
defaults 0.9 and 0.999 give 0.81 < 0.9995. A warning.

Example:
    [training]
    beta1 = 0.99
    beta2 = 0.9

Fix: the defaults, or a smaller `beta1`."""),
    Code("V055", "mocked operations",
         """`mock_expensive_ops = true` replaces expensive operations with mocks: the
outputs are not real, and such a config must never reach production.
A warning, on every check.

Example:
    [testing]
    mock_expensive_ops = true

Fix: `mock_expensive_ops = false` outside tests."""),
    Code("V056", "sampling temperature above 2",
         """`temperature` above 2.0 flattens the distribution until sampling is close
to random. 0 is greedy, 1.0 samples the model as trained. A warning.

Example:
    [generation]
    temperature = 2.5

Fix: a temperature between 0 and 2."""),
    Code("V059", "the `mixers` pattern does not divide `num_layers`",
         """Block i uses mixer `mixers[i % len(mixers)]`, and the pattern must tile
the layers exactly: a partial repeat at the end would change the mix of
blocks without saying so (`["ssm", "attention"]` over 5 layers would be
three SSM blocks and two attention blocks, not one in two).

Example:
    [model]
    num_layers = 12
    mixers = ["ssm", "ssm", "ssm", "ssm", "attention"]

Fix: a pattern whose length divides `num_layers` (`["ssm", "ssm", "attention"]`
for 12 layers), or a `num_layers` that is a multiple of the pattern's length."""),
    Code("V060", "a `hyena` filter longer than the context",
         """`hyena_filter_length` is the number of taps of a `hyena` block's long
implicit filter. A token at position t only meets taps 0..t, so taps past
`max_seq_length` are never used; they would only cost compute and memory.

Example:
    [model]
    max_seq_length = 2048
    mixers = ["hyena", "attention"]
    hyena_filter_length = 4096

Fix: at most `max_seq_length` taps, or remove the field for a filter as
long as the context."""),
    Code("V061", "`kernel_categories` leaves out a family the `mixers` need",
         """`ssm` blocks compute with the `scan` and `conv` kernel families and
`hyena` blocks with `fft` and `conv`. On a TPU, `kernel_categories` lists the
families that get tuned kernels; a family left out runs its reference
implementation, which is correct but slower. A warning.

Example:
    [model]
    mixers = ["ssm", "attention"]
    [tpu_v4_optimizations]
    kernel_categories = ["linalg", "attention"]

Fix: add the families the pattern needs (`kernel_categories = ["linalg",
"attention", "scan", "conv"]`), or drop those mixers from the pattern."""),
    # ------------------------------------------------------------------ H: hardware compatibility
    Code("H001", "unknown target",
         """`--target` (or `check_hardware_compatibility(config, target)`) names no
machine in the catalog. `capibara targets` lists them: `cpu`, `cpu-arm`,
`gpu`, `gpu-a100`, `gpu-h100`, `gpu-h200`, `tpu_v4-N`, `tpu_v6e-N`, and the
seed device names `tpu_v4`, `tpu_v6`, `gpu`, `cpu`, `auto`.

Example:
    capibara check config.toml --target tpu_v5-8

Fix: a catalog name such as `tpu_v6e-8`."""),
    Code("H017", "mesh does not match the device count",
         """On a TPU, an explicit `mesh_shape` must cover exactly the devices JAX sees.
TPU v4 slice names count TensorCores and JAX shows each two-core chip
as one device, so a `tpu_v4-32` slice has 16 devices: the seed's `[4, 8]`
(32 devices) does not fit. The help proposes a mesh of the same rank
whose model axis divides the heads.

Example (`--target tpu_v4-32`):
    [tpu_v4_optimizations]
    mesh_shape = [4, 8]

Fix: `mesh_shape = [4, 4]`, or "auto"."""),
    Code("H021", "batch does not split across data-parallel replicas",
         """An integer `batch_size` is the global batch; each data-parallel replica
needs a whole, non-empty share, so it must be a multiple of the data-parallel
degree (the mesh's first axis, or every device with an "auto" mesh) and at
least that degree.

Example (`--target tpu_v4-32`, 16 devices):
    [deployment]
    batch_size = 20

Fix: `batch_size = 16` or 32, or "auto"."""),
    Code("H025", "memory limit above the physical memory",
         """`tpu_memory_limit_gb` above the HBM of one TPU chip of the target, or
`[hardware] memory_limit_gb` above the memory of one device, never binds.
A warning.

Example (`--target tpu_v4-32`, 32 GiB per chip):
    [tpu_v4_optimizations]
    memory_limit_gb = 64.0

Fix: a limit up to the physical memory, or remove it."""),
    Code("H035", "device not present",
         """The named `device` is not on the target. Without `hardware_fallback`
the config cannot run there (an error). With it, the run falls back along
tpu_v6 → tpu_v4 → gpu → cpu (cpu only with `fallback_cpu`) and this is a
warning naming the device that runs; if nothing on the chain is present it
is an error.

Example (`--target tpu_v4-32`):
    [hardware]
    device = "gpu"
    hardware_fallback = false

Fix: `device = "auto"`, or allow the fallback."""),
    Code("H036", "more GPUs requested than present",
         """`num_gpus` above the GPUs of the target cannot be satisfied (an error).
More than one GPU with neither data nor model parallelism leaves all but one
idle (a warning).

Example (`--target gpu-h100`, one GPU):
    [hardware]
    device = "gpu"
    num_gpus = 4

Fix: `num_gpus = 1`, or a target with more GPUs."""),
    # ------------------------------------------------------------------ H2: lowering
    Code("H201", "mesh has more than two axes",
         """capibara's meshes have two named axes, `[data, model]`: the batch is
split over the first and, with `model_parallel`, the model over the second.
A `mesh_shape` with three or more axes has no meaning for the lowering, so
it is refused rather than guessed at.

Example (`--target tpu_v4-32`):
    [tpu_v4_optimizations]
    mesh_shape = [2, 2, 4]

Fix: fold the leading axes into the data axis: `mesh_shape = [4, 4]`."""),
    Code("H202", "dtype not native on the target",
         """The config asks for a dtype the target's matrix units do not compute
(float16 compute on a TPU or a CPU, int8 or bfloat16 VQ codebooks on a CPU
without VNNI/AMX or BF16 instructions). XLA still runs it, emulated in
float32, which is slower than either dtype: a warning.

Example (`--target tpu_v4-32`):
    [tpu_v4_optimizations]
    use_bfloat16 = false   # with mixed_precision: float16 compute

Fix: `use_bfloat16 = true` on TPUs; for VQ codebooks, a dtype the target
lists under `capibara targets`, or "auto"."""),
    Code("H203", "enterprise VQ needs a TPU v6",
         """`vq_enterprise_mode` (128 codes with adaptive ML) runs on TPU v6. On any
other device the compiler keeps the 128-code codebook and turns the TPU v6
features off, unless `vq_fallback_strategy = "none"` forbids that fallback:
then the config cannot be compiled for this target.

Example (`--target tpu_v4-32`):
    [vector_quantization]
    enterprise_mode = true
    fallback_strategy = "none"

Fix: compile for a TPU v6 (`--target tpu_v6e-8`), or allow a fallback:
`fallback_strategy = "tpu_v4"`."""),
    Code("H204", "training step does not fit the device memory",
         """The compiler estimates the peak memory of one training step per device:
weights, gradients and optimizer state (the new weights and state need
buffers of their own without buffer donation), the activations the backward
pass keeps for the per-device batch with the largest working set of one
block or of the loss, and the copies of block weights the step makes. The
estimate must stay within 90% of the memory
limit (the smallest of the device memory, `tpu_memory_limit_gb`,
`gpu_memory_fraction` × memory and `memory_limit_gb`); the rest is XLA's own.
An explicit `batch_size` that does not fit, or a model that does not fit
even one sample per device, is an error. The notes list each part.

Example (`--target cpu`, 8 GiB):
    [hardware]
    memory_limit_gb = 8.0
    [deployment]
    batch_size = 32

Fix: a smaller `batch_size` (or "auto", which picks the largest that fits),
`gradient_checkpointing = true`, `memory_optimization_level = 3`, model
parallelism, or a device with more memory."""),
    Code("H205", "`max_batch_size` below the data-parallel degree",
         """With `batch_size = "auto"` the compiler picks the largest global batch up to
`max_batch_size` that is a multiple of the data-parallel degree. When
`max_batch_size` is smaller than that degree, no batch gives every replica a
sample.

Example (`--target tpu_v4-32`, 16 data-parallel replicas):
    [deployment]
    max_batch_size = 8

Fix: `max_batch_size = 16` or more, or fewer replicas (`mesh_shape`)."""),
    Code("H206", "more Rookie experts than MLP width",
         """Mixture of Rookies splits the dense MLP's width (4 × `hidden_size`) among
`mor_num_experts` small experts, each `4·hidden_size // mor_num_experts`
wide, so routing adds no MLP parameters. With more experts
than that width, every expert would be zero wide: nothing to compute.

Example:
    [model]
    hidden_size = 512
    [sparsity]
    mor_num_experts = 4096

Fix: at most 4 × `hidden_size` experts (the default is 8)."""),
    Code("H207", "the named target differs from `device`",
         """`capibara compile --target T` (or `compile(..., target=T)`) names the
machine to compile for, and the plan is for that machine's device. The
config's `device` picks a device on the host when no target is named (with
`hardware_fallback` when it is absent); with a named target that is another
kind of device, the target wins and this warning says the config disagrees.

Example:
    [hardware]
    device = "tpu_v4"
then `capibara compile config.toml --target tpu_v6e-8`: the plan is for
the TPU v6e slice.

Fix: set `device` to the target's kind or to "auto", or compile for a
target of the config's device."""),
    # ------------------------------------------------------------------ O: optimization
    Code("O101", "setting has no effect on this target",
         """A setting was written explicitly, but the device the config compiles for
never reads it: TPU v4 optimizations and custom kernels off TPU v4/TPU, VQ
TPU optimizations off TPU, VQ SIMD off CPU, GPU settings off GPU, a hand-set
mesh off TPU (other devices get an automatic mesh). When the config names
its `device` the validator reports these (V015, V024, V037); this warning
covers `device = "auto"` and `--target`.

Example (`--target cpu`):
    [tpu_v4_optimizations]
    mesh_shape = [4, 4]

Fix: remove the setting from configs meant for this target, or compile for
the device it is meant for."""),
    Code("O102", "mesh model axis unused",
         """The second mesh axis is the model axis: with `model_parallel = true` the
attention heads, MLP width and vocabulary are split over it. With
`model_parallel = false` nothing is split over it, so the devices along it
repeat the same computation on the same data.

Example (`--target tpu_v4-32`):
    [tpu_v4_optimizations]
    mesh_shape = [4, 4]
    model_parallel = false

Fix: `model_parallel = true`, or a data-only mesh: `mesh_shape = [16]`."""),
    Code("O103", "conservative compile mode ignores kernel settings",
         """`compile_mode = "conservative"` keeps every kernel's reference
implementation (the one that runs everywhere and is the test oracle), so the
settings that choose custom kernels (`use_custom_kernels`,
`kernel_categories`, `vq_use_tpu_optimizations`, `vq_use_simd`) change
nothing.

Example:
    [performance]
    compile_mode = "conservative"
    [tpu_v4_optimizations]
    kernel_categories = ["attention"]

Fix: remove those settings, or `compile_mode = "default"`."""),
    Code("O104", "manual sharding cannot split this model",
         """`sharding_strategy = "manual"` asks for the explicit sharded train step:
a `shard_map` over the mesh whose gradient reduction and tensor-parallel
projections are the plan's collective kernels. With `model_parallel` it
splits attention heads, the MLP width and the vocabulary over the model
axis, and cannot split `ssm` or `hyena` mixers, quantized block weights,
top-k activation sparsity, or sizes the model axis does not divide.
(`sharding_strategy = "auto"` takes whichever step is faster on the
target, and trains such a model with XLA's automatic partitioning.)

Example (`--target tpu_v4-8`):
    [model]
    mixers = ["attention", "hyena"]
    [tpu_v4_optimizations]
    sharding_strategy = "manual"
    mesh_shape = [2, 2]
    model_parallel = true

Fix: `sharding_strategy = "auto"`, or `model_parallel = false`."""),
    # ------------------------------------------------------------------ R1: plan files
    Code("R101", "plan file not found or unreadable",
         """`capibara explain`, `capibara diff`, `capibara check` or `load_plan_file`
was given a plan path that does not exist or cannot be read.

Example:
    capibara explain tpu_v4.plan.jsn

Fix: check the path; `capibara compile CONFIG.toml` writes `STEM.plan.json`
in the working directory."""),
    Code("R102", "plan file truncated or corrupt",
         """The file does not decode as JSON (or msgpack): it was cut short (a copy
interrupted, a full disk) or damaged. Plans are written atomically, so a
plan capibara wrote is never half-written; a truncated one was cut
afterwards. capibara never uses part of a plan.

Example: the first half of `tpu_v4.plan.json`.

Fix: recompile from the config: `capibara compile CONFIG.toml -o PLAN`."""),
    Code("R103", "not a capibara plan",
         """The file decodes, but it is not a plan: it has no `format` field, its
format is not a capibara plan format, or its fields do not match the plan
layout (written by something else).

Example: passing `package.json`, or a config's JSON export, as a plan.

Fix: pass a file written by `capibara compile`."""),
    Code("R104", "plan from an incompatible format or compiler",
         """The plan says it has another plan format, or it was written by a
capibara whose plans this one cannot load: the major version differs (and,
before 1.0, the minor version). Loading it anyway could misread fields that
changed meaning. Format `capibara.plan/1` plans, from before provenance was
stored as a structured value and loss weights were recorded, are refused
with this code too: their config still compiles to a `/2` plan.

Example: a plan whose `compiler.version` is `9.0.0`, or whose `format` is
`capibara.plan/1`.

Fix: run it with the capibara that wrote it, or recompile the config."""),
    Code("R105", "plan modified after it was written",
         """Every plan carries the sha256 digest of its canonical encoding. A plan
whose contents no longer hash to its digest was edited (or damaged in a way
that still decodes). capibara refuses it rather than run a plan nobody
compiled.

Example: changing `"batch": {"global_size": 32}` to 64 by hand.

Fix: never edit a plan; change the config (or `--set`) and recompile."""),
    Code("R106", "plan path is not a regular file",
         """A plan path names a directory, a device (`/dev/zero`), a named pipe
(FIFO) or a socket. capibara reads plans only from regular files: a device can
feed bytes without end and a pipe can block every verb until someone writes
to it. The file is opened without blocking and checked before anything is read.

Example:
    capibara check /dev/zero.plan.json      (a link to /dev/zero)

Fix: pass the plan file that `capibara compile CONFIG.toml -o PLAN` wrote."""),
    Code("R107", "plan file too large or nested too deeply",
         """A plan file holds more bytes than any plan needs (16 MiB; the bundled
configs give 20-60 KB), or its objects and arrays nest deeper than a plan's
layout does (16 levels). The size is checked before the file is read and the
depth while it is decoded, so a hostile file costs neither memory nor a crash.

Example: a 2 KB file `{"format": "capibara.plan/2", "config": [[[[...]]]]}`
nested 1000 deep, or a 1 GB file named `run.plan.json`.

Fix: pass a plan written by `capibara compile CONFIG.toml -o PLAN`."""),
    Code("R110", "plan value missing or outside its domain",
         """A plan decoded and its digest matched, but a value in it is not one any
compiler writes: a negative or too long array axis, an unknown dtype, a tile
size of 0 or a string, a vocabulary of 0, a mesh axis of 0 devices, a config
field missing or of the wrong type. The digest is a checksum anyone can
recompute, so every plan is checked field by field before it is used; the
diagnostic names the field.

Example: `"block_q": 0` in `kernels.blocks.attention.params`, resealed.

Fix: recompile the config (`capibara compile`); never edit a plan."""),
    Code("R111", "plan names a kernel this capibara does not have",
         """A kernel spec's `family` is not a kernel family of this capibara (for
example `flashy`, `base` or `..os`), or its `implementation` is not one of
that family's variants. Families are checked against a list that needs no
JAX, before any kernel module is imported.

Example: `"family": "..os"` in a resealed plan.

Fix: recompile the config with this capibara, or run the plan with the
capibara that wrote it."""),
    Code("R112", "plan parts disagree",
         """Two parts of a plan that must agree do not: the mesh names a different
number of axes than it has sizes, or more devices than its target; the batch
is not its per-device share times the data axis; a Mixture-of-Rookies call
routes to more experts (`top_k`) than its router has; arrays of one kernel
disagree on a shared axis (attention's q and k heads, a matmul's inner size).

Example: `"mesh": {"axes": ["data"], "shape": [1, 1]}`.

Fix: recompile the config (`capibara compile`); never edit a plan."""),
    # ------------------------------------------------------------------ R2: the model, its checkpoints and updates
    Code("R201", "checkpoint does not match the model",
         """A checkpoint's arrays are not the ones the model has: a parameter (or
optimizer state) has another shape or dtype, or exists on one side only.
It was saved by a model built from another configuration (another
`hidden_size`, `vocab_size`, number of experts, VQ on or off, ...).
Restoring it would either fail half way or silently misread weights, so
nothing is restored. `capibara check CONFIG CHECKPOINT` runs the same
comparison for the parameters without loading anything.

Example: a checkpoint saved with `vocab_size = 32` restored into a model
with `vocab_size = 64`: `['params']['embed']` has shape (32, 16) in the
checkpoint, the model expects (64, 16).

Fix: restore into a model built from the configuration that saved it, or
start training in a new checkpoint directory."""),
    Code("R202", "checkpoint cannot be read",
         """A checkpoint step folder exists but is damaged: its manifest is missing
or malformed, an orbax file it needs (`state/_METADATA`,
`state/manifest.ocdbt`) is missing, the stored data fails its checksum, or
an array read back differs from the fingerprint recorded when it was saved.
Steps are published only complete (orbax writes under a temporary name and
renames it into place), so a step capibara wrote is never half-written; this
one was damaged or edited afterwards. `capibara check` reads the manifest
and metadata only; restoring reads and checks every array.

Example: `runs/dev/checkpoints/1000/state/d/...` copied incompletely to
another disk.

Fix: restore an earlier step (`model.restore_checkpoint(step=...)`), or
delete the damaged step folder."""),
    Code("R203", "no checkpoint to restore",
         """A checkpoint directory holds no complete step folder: it is empty, or
only a `<step>.orbax-checkpoint-tmp` folder is left from a save that was
interrupted before it finished (the next writer of the directory removes
it).

Example: a run killed during its first save, then restarted with
`model.restore_checkpoint()`.

Fix: check the directory name, or train from scratch; a checkpoint appears
after `save_checkpoint_steps` steps."""),
    Code("R212", "`use_vq` turned on for a model without codebooks",
         """At run time `use_vq` is a bypass: a model built with the VQ bottleneck
may skip it (`use_vq = false`) and use it again. A model built without it
has no codebooks to quantize with, so turning `use_vq` on is refused.
`capibara check --runtime use_vq=true` reports the same.

Example:
    [vector_quantization]
    enabled = false
then `config.update_runtime_settings({"use_vq": True})` and
`model.apply_config_updates(config)`.

Fix: build the model with `[vector_quantization] enabled = true` (and bypass
it at run time when it is not wanted)."""),
    Code("R204", "checkpoint directory cannot be written",
         """A training run (or `model.checkpoint_to`) saves into a directory that is
in use by another live process, or that is not a directory at all. One
process at a time writes a checkpoint directory: it holds an exclusive lock
(`.capibara-lock`, naming its owner) for as long as it runs, so a second
writer can never delete or overwrite a save the first has in progress. The
lock is released by the kernel when its owner exits or dies, so a crashed
run never leaves it locked.

Example: `capibara train ... --run-dir runs/dev` started twice at once, or
`--run-dir` naming an existing file.

Fix: wait for (or stop) the other run, or choose another directory."""),
    Code("R205", "run directory holds a run of another plan",
         """`capibara train` resumes the run in `--run-dir` from its newest
checkpoint. The plan that run was trained with is kept beside its
checkpoints (`plan.json`); a different plan (another learning rate, model,
batch or mesh) would continue those weights with settings they were not
trained with, and its log would mix two runs, so the job is refused and every
difference is listed.

Example: a run trained with `training.learning_rate = 1e-4`, resumed with
`--set training.learning_rate=3e-4`.

Fix: resume with the same config and `--set` values, or train into a new
`--run-dir`."""),
    # ------------------------------------------------------------------ R3: loading a plan on devices
    Code("R301", "plan compiled for another platform",
         """`capibara run` / `load_plan` found the plan's target platform (tpu, gpu,
cpu) absent from this process's JAX devices. Running TPU tile sizes and
kernels on a CPU would be wrong or fail deep inside XLA, so the plan is
refused, unless its config allows `hardware_fallback`: then the config is
re-lowered for the detected host and the run says so.

Example: a plan compiled with `--target tpu_v4-8` and
`hardware.hardware_fallback = false`, loaded on a laptop.

Fix: `capibara compile --target auto` on the machine that runs it, or set
`hardware.hardware_fallback = true` to re-lower on load."""),
    Code("R302", "plan needs more devices than are present",
         """The plan's mesh (`data` × `model`) needs more devices than this process
sees. Sharding a mesh over missing devices cannot work, so the plan is
refused (or re-lowered for the host with `hardware_fallback`).

Example: a plan compiled for `cpux8` (8 host devices) run without
`XLA_FLAGS=--xla_force_host_platform_device_count=8`.

Fix: run it where the devices are, start the process with the devices the
plan names, or compile for this machine."""),
    Code("R303", "distributed settings disagree with the job",
         """`distributed_training`, `world_size` and `local_rank` are the defaults of
`capibara run --num-processes` and `--process-id` (flags win). This code
reports a job that cannot be what they say: more than one process but no
coordinator (neither `--coordinator HOST:PORT` nor a cluster manager JAX
detects, such as SLURM, Open MPI or Kubernetes) is an error; a job JAX
joined with another process count or index than the plan's (the flags
overrode them) is a warning. The notes say where each field's value came from.

Example:
    [deployment]
    distributed_training = true
    world_size = 2
then `capibara run model.plan.json` on a workstation.

Fix: start each process with `--coordinator HOST:PORT` (process 0 listens
there), or run under a cluster manager; set `world_size` and `local_rank` to
the job's shape."""),
    # ------------------------------------------------------------------ R4: starting a server
    Code("R401", "a service setting needs a hook",
         """`capibara serve` found a setting on that needs code capibara does not
have: `content_safety_check` (a safety classifier), `output_filtering` (a
filter policy), `meta_loop_enabled` (the bridge to the Elixir Meta Loop) and,
with the Meta Loop, `ethics_guard_enabled` and `rag_hub_enabled`. Serving
without it would pretend to check or filter what nobody checks, so the
server refuses to start. The diagnostic names the option that plugs your own
function in and how it is called.

Example:
    [enterprise]
    output_filtering = true
then `capibara serve model.plan.json`.

Fix: `capibara serve model.plan.json --output-filter mypackage.filters:redact`
(a function taking the completion and returning it filtered), or turn the
setting off: `--set enterprise.output_filtering=false`. A live update that
turns such a setting on is refused the same way."""),
    Code("R402", "a hook cannot be used",
         """A hook given to `capibara serve` (`--output-filter`, `--content-safety`,
`--meta-loop`, `--ethics-guard`, `--rag-hub`) does not import as
`module:function`, is not callable, or belongs to a setting that is off (it
would never be called).

Example:
    capibara serve model.plan.json --output-filter filters.redact
(a dot where the colon belongs).

Fix: `--output-filter filters:redact`, with `filters` importable from the
server's Python path; or turn the setting on."""),
    Code("R403", "`request_encryption` without a certificate",
         """With `request_encryption = true` the server speaks only TLS, and TLS needs
a certificate and its private key. They are given at start, never in the
config (a key in a config file ends up in plans and logs). Without them, or
when they cannot be read, the server refuses to start rather than serve in
the clear.

Example:
    [enterprise]
    request_encryption = true
then `capibara serve model.plan.json` with no `--tls-cert`.

Fix: `capibara serve model.plan.json --tls-cert cert.pem --tls-key key.pem`,
or set `request_encryption = false` when a proxy in front terminates TLS."""),
    Code("R404", "no API keys where keys are required",
         """With `api_key_required` (or `mcp_enabled` with `mcp_auth_required`) every
request must carry a key, and the keys come from the environment variable
`CAPIBARA_API_KEYS` (comma-separated; `--api-key-env` names another) or a
file given with `--api-key-file` (one per line), never from the config.
With no key at all nobody could call the server, so it refuses to start.

Example:
    [enterprise]
    api_key_required = true
then `capibara serve model.plan.json` with `CAPIBARA_API_KEYS` unset.

Fix: `CAPIBARA_API_KEYS=$(cat /run/secrets/capibara) capibara serve
model.plan.json`, or `--api-key-file /run/secrets/capibara-keys`."""),
    Code("R405", "tokenizer cannot be used",
         """The `--tokenizer` file is missing, unreadable, not a SentencePiece model,
or has more pieces than the model's `vocab_size` (its IDs would index past
the embedding table).

Example:
    capibara serve model.plan.json --tokenizer vocab.json

Fix: give the SentencePiece `.model` file the model was trained with, or
leave out `--tokenizer` and send token IDs to `/v1/generate`."""),
    Code("R406", "the server cannot batch this model's mixers",
         """`capibara serve` batches requests by left-padding prompts of different
lengths to one shape. Attention blocks ignore the padding through their mask;
`ssm` and `hyena` blocks read every position into their recurrent state or long
convolution, so a padded prompt would generate other tokens than it does alone.
The server refuses to start rather than answer differently under load.

Example:
    [model]
    mixers = ["ssm", "attention"]

Fix: serve an attention-only plan, or generate with `capibara run PLAN
--generate N` (one prompt, no padding)."""),
    # ------------------------------------------------------------------ D: training data
    Code("D101", "data directory cannot be used",
         """A prepared data directory (`capibara data prepare -o DIR`) is missing
its manifest `data.json`, the manifest is malformed, or a file it names
(the tokenizer, a token file) is missing, of another size, or no longer
matches the digest recorded when it was written. Training on tokens that
are not the ones the manifest describes would train on wrong data without
a sign, so nothing runs.

Example: `--data data/tales` where `train.tokens` was copied incompletely.

Fix: prepare the data again with `capibara data prepare TEXT... -o DIR`."""),
    Code("D102", "tokenizer cannot be trained or read",
         """`capibara data prepare` trains a SentencePiece tokenizer of exactly
`--vocab-size` pieces on the text. A small text does not hold that many
distinct pieces, so SentencePiece refuses, and says the largest size it
supports; a `--tokenizer` file that is not a SentencePiece model is refused
too.

Example: `--vocab-size 32000` on a 10 KB text.

Fix: give more text, or a smaller `--vocab-size` (and the same
`model.vocab_size` in the config)."""),
    Code("D103", "text file cannot be used",
         """A text file given to `capibara data prepare` is missing, not a regular
file (a directory, FIFO or device), larger than 1 GiB, or not UTF-8.

Example: a Latin-1 file with `é` stored as the byte 0xE9.

Fix: pass regular UTF-8 text files (convert with `iconv -f latin1 -t utf-8`)."""),
    Code("D104", "tokenizer and model vocabulary differ",
         """The data's tokenizer has another number of pieces than the model's
`vocab_size`. With more pieces, token ids index past the embedding; with
fewer, embedding rows are never trained and generation can emit ids the
tokenizer cannot decode. Checked before any step runs.

Example: data prepared with `--vocab-size 512`, a config with
`vocab_size = 32000`.

Fix: `--set model.vocab_size=512` (or the same value in the config), or
prepare the data with the model's vocabulary size."""),
    Code("D105", "too few tokens for one window",
         """Training reads the token stream in windows of `max_seq_length` tokens,
and evaluation reads the held-out split the same way. A split shorter than
one window gives no batch at all.

Example: a 40-token held-out split and `max_seq_length = 256`.

Fix: prepare more text (or a larger `--eval-fraction`), or train with a
shorter `model.max_seq_length`."""),
)


def explain(code: str) -> str:
    """The text ``capibara explain CODE`` prints; raises ``KeyError`` if unknown."""
    entry = CODES[code.upper()]
    return f"{entry.code}: {entry.title}\n\n{entry.explanation}\n"
