"""``precision``: the precision policy the target can run."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from capibara.compiler.ir import Lowered
from capibara.compiler.passes.base import Pass, PassContext
from capibara.plan import Precision


def _fast_bf16(ir: Lowered) -> bool:
    """Whether bf16 matmuls beat f32 on the target (AMX / AVX512-BF16 / SVE-BF16, MXU, tensor cores)."""
    return ir.target.has_fast_bf16


class PrecisionPolicy(Pass, frozen=True):
    """The precision the target can run.

    - bf16 compute on a CPU without bf16 matrix units becomes float32: a bf16
      dot there is converted to float32 first and runs slower than float32
      (benchmarks/kernels_linalg.py); with AMX/AVX512-BF16 it runs ~4× faster, so it stays.
    - ``vq_precision = "auto"`` becomes bfloat16 where the compute is
      bfloat16 on a TPU or GPU, float32 elsewhere; ``int8`` stays int8.
    """

    name: ClassVar[str] = "precision"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        p = ir.precision
        if "bfloat16" in (p.compute, p.params) and not _fast_bf16(ir):
            changed = Precision(
                params="float32" if p.params == "bfloat16" else p.params, compute="float32",
                accumulation=p.accumulation, vq_codebook=p.vq_codebook, loss_scaling=False)
            ir = ir.decide(self.name, "precision.compute", p.compute, "float32",
                           f"`{ir.target.name}` has no bf16 matrix units (no amx_bf16/avx512_bf16): "
                           "a bf16 dot runs slower there than float32", precision=changed)
            p = changed
        if p.vq_codebook == "auto":
            auto = ("bfloat16" if p.compute == "bfloat16" and ir.target.platform in ("tpu", "gpu")
                    else "float32")
            ir = ir.decide(self.name, "vector_quantization.precision", "auto", auto,
                           f"codebooks follow the {p.compute} compute on {ir.target.platform}"
                           if auto == "bfloat16" else
                           f"float32 codebooks on {ir.target.platform} (bfloat16 only pays on TPU/GPU)",
                           precision=msgspec.structs.replace(p, vq_codebook=auto))
        return ir
