"""Run one fuzz target under atheris (libFuzzer): ``python fuzz/fuzz_toml.py [libFuzzer flags] [corpus]``.

capibara and lark are imported under atheris' instrumentation, so the
fuzzer is guided by coverage of the parser, the grammar engine and every
stage after it. Any exception a target lets out is a crash: libFuzzer saves
the input (``-artifact_prefix``, ``make fuzz`` uses ``fuzz/crashes/NAME/``)
and stops. ``fuzz/README.md`` says how a crash becomes a regression test.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(name: str) -> None:
    """Fuzz target ``name`` of :mod:`targets` with the command line's libFuzzer flags."""
    import atheris

    here = Path(__file__).resolve().parent
    sys.path[:0] = [str(here), str(here.parent)]
    with atheris.instrument_imports(include=["capibara", "lark", "targets"]):
        # Import every stage now: modules first imported inside a target would run uninstrumented.
        import capibara.compiler.driver  # noqa: F401
        import capibara.config.overrides  # noqa: F401
        import capibara.plan  # noqa: F401
        import capibara.config.sources  # noqa: F401
        import capibara.toml  # noqa: F401
        import capibara.config.validate  # noqa: F401
        from targets import TARGETS
    target = TARGETS[name]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()
