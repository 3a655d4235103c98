"""The pass interface: a frozen dataclass with a ``name`` and ``apply(ir, ctx) -> ir``, run by a pipeline with one callback between passes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, ClassVar

from capibara.compiler.ir import Lowered
from capibara.diagnostics import Diagnostic


@dataclass
class PassContext:
    """What passes share besides the IR: the diagnostics found so far."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)


class Pass:
    """Base of every pass: a frozen dataclass whose fields are its options."""

    name: ClassVar[str]

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:  # pragma: no cover - abstract
        raise NotImplementedError


#: Called after each stage with (stage name, IR, seconds it took).
Callback = Callable[[str, Lowered, float], None]


@dataclass(frozen=True)
class PassPipeline:
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
