"""The compiler's value between lowering and the plan.

:class:`Lowered` carries a checked config through the passes: the machine and
device, the model's shape, mesh, batch, precision and memory policy, and one
:class:`KernelUse` per place the model calls a kernel. Kernel shapes may hold
the symbols of :data:`SYMBOLS` until the passes fold them.

Imports no JAX.
"""

from __future__ import annotations

from typing import Any, Mapping

import msgspec
from msgspec.structs import replace

from capibara.compiler.policy import MemoryPolicy
from capibara.plan import Decision, LossWeights, MemoryEstimate, Mesh, ModelShape, Precision
from capibara.targets import Target

__all__ = ["Dim", "SYMBOLS", "DTYPE_SYMBOLS", "KernelUse", "Lowered"]


#: A dimension: an int, or a symbol the optimizer folds (see :data:`SYMBOLS`).
Dim = int | str


#: Symbols that may appear in kernel shapes before folding, and what they mean.
SYMBOLS = {
    "B": "per-device batch",
    "S": "sequence length (max_seq_length)",
    "N": "tokens per device (B·S)",
    "Nm": "tokens per device padded to a multiple of the model axis",
    "Nl": "token rows per device of the model axis (Nm / model axis)",
    "d": "hidden size",
    "Hl": "attention heads per device",
    "Dh": "head dimension",
    "HDl": "attention width per device (Hl·Dh)",
    "Fl": "MLP width per device",
    "Vl": "vocabulary rows per device",
    "K": "VQ codes",
    "Dv": "VQ vector dimension",
    "E": "experts",
    "Fel": "expert MLP width per device",
    "Pl": "parameters per device",
}


#: dtype placeholders filled from the precision policy.
DTYPE_SYMBOLS = ("$params", "$compute", "$accumulation", "$vq_codebook")


class KernelUse(msgspec.Struct, frozen=True):
    """One place the model calls a kernel, before and during optimization.

    ``site`` names the call site (``blocks.wq``); ``feature`` the entry of
    :data:`FEATURES` that must hold for the call to exist. ``shapes`` and
    ``dtypes`` map each array argument to its per-device shape and dtype;
    both may hold symbols until the ``fold-derived`` and ``resolve-batch``
    passes bind them. ``params`` are the implementation's static keyword
    arguments; ``attrs`` facts the runtime needs that are not keyword
    arguments of the kernel (``causal``, the weight format). ``uses`` lists
    the sites merged into this one by ``dedupe-kernels`` (empty before).
    """

    site: str
    family: str
    feature: str
    shapes: Mapping[str, tuple[Dim, ...]]
    dtypes: Mapping[str, str]
    calls_per_step: int = 1
    implementation: str = "reference"
    params: Mapping[str, Any] = msgspec.field(default_factory=dict)
    attrs: Mapping[str, Any] = msgspec.field(default_factory=dict)
    uses: tuple[str, ...] = ()


class Lowered(msgspec.Struct, frozen=True):
    """The compiler's value between lowering and the plan (see the module docstring).

    ``mesh`` and ``batch`` are ``None`` while ``"auto"``; ``model`` is
    ``None`` until ``fold-derived`` computes the derived sizes, ``memory``
    until the batch is known. ``effective`` holds field values that differ
    from the config on this target (by flat name), e.g. TPU v6 features
    turned off by a fallback; the plan's runtime and service sections use them.
    ``explicit`` is ``config.explicit_fields``, read once (it is computed on
    every access). ``machine`` is the machine the
    config was compiled for, ``target`` the device on it the model runs on
    (the same unless a hardware fallback moved to the host CPU).
    """

    config: Any
    machine: Target
    target: Target
    model: ModelShape | None
    mesh: Mesh | None
    batch: int | None
    precision: Precision
    policy: MemoryPolicy
    kernels: tuple[KernelUse, ...]
    memory_limit: int | None
    memory: MemoryEstimate | None = None
    loss: LossWeights | None = None
    decisions: tuple[Decision, ...] = ()
    effective: Mapping[str, Any] = msgspec.field(default_factory=dict)
    explicit: frozenset[str] = frozenset()

    def decide(self, pass_: str, path: str, before: Any, after: Any, reason: str,
               **changes: Any) -> "Lowered":
        """A copy with ``changes`` applied and the decision recorded."""
        decision = Decision(pass_, path, before, after, reason)
        return replace(self, decisions=self.decisions + (decision,), **changes)

    @property
    def model_axis(self) -> int:
        """Devices the model is split over (1 without model parallelism)."""
        if self.mesh is None or not self.config.model_parallel:
            return 1
        return self.mesh.size("model")

    @property
    def data_parallel(self) -> int:
        """Replicas the batch is split over: the mesh's data axis."""
        return 1 if self.mesh is None else self.mesh.size("data")
