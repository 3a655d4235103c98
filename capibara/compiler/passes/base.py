"""The pass interface: a frozen Struct with a ``name`` and ``apply(ir, ctx) -> ir``, run by a
pipeline with one callback between passes. Structs rather than dataclasses, which cost a cold
``capibara compile`` ~0.2 ms each to create (benchmarks/cold_start.py)."""

from __future__ import annotations

import time
from typing import Callable, ClassVar

import msgspec

from capibara.compiler.ir import Lowered
from capibara.diagnostics import Diagnostic


class PassContext(msgspec.Struct):
    """What passes share besides the IR: the diagnostics found so far."""

    diagnostics: list[Diagnostic] = msgspec.field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


class Pass(msgspec.Struct, frozen=True):
    """Base of every pass: a frozen Struct whose fields are its options."""

    name: ClassVar[str]

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:  # pragma: no cover - abstract
        raise NotImplementedError


#: Called after each stage with (stage name, IR, seconds it took).
Callback = Callable[[str, Lowered, float], None]


class PassPipeline(msgspec.Struct, frozen=True):
    """Run ``passes`` in order, calling ``callback`` after each; stop after a pass with errors."""

    passes: tuple[Pass, ...]
    callback: Callback | None = None

    def run(self, ir: Lowered, ctx: PassContext) -> Lowered:
        for pass_ in self.passes:
            start = time.perf_counter()
            ir = pass_.apply(ir, ctx)
            if self.callback is not None:
                self.callback(pass_.name, ir, time.perf_counter() - start)
            if ctx.has_errors:
                break
        return ir
