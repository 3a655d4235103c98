"""``fold-derived``: derived sizes (head_dim, MLP width, parameter count), the loss weights, and dtypes folded into every kernel shape."""

from __future__ import annotations

from typing import ClassVar, Mapping

from msgspec.structs import replace

from capibara.compiler.ir import KernelUse, Lowered
from capibara.compiler.model_shape import local_parameters, loss_weights, model_shape, split_dim
from capibara.compiler.passes.base import Pass, PassContext
from capibara.plan import Precision


class FoldDerived(Pass, frozen=True):
    """Fold the derived sizes and the precision into every kernel's shapes, dtypes and params.

    Binds every symbol of :data:`capibara.compiler.ir.SYMBOLS` except the batch
    (``B``, ``N``), which ``resolve-batch`` binds.
    """

    name: ClassVar[str] = "fold-derived"

    def apply(self, ir: Lowered, ctx: PassContext) -> Lowered:
        config = ir.config
        model = model_shape(config)
        ir = ir.decide(self.name, "model.head_dim", None, model.head_dim,
                       f"hidden_size {model.hidden_size} / num_heads {model.num_heads}", model=model,
                       loss=loss_weights(config, model))
        ir = ir.decide(self.name, "model.parameter_count", None, model.parameter_count,
                       "12·L·d² + V·d, norms, VQ codebook and Mixture-of-Rookies experts")
        m = ir.model_axis
        heads = split_dim(model.num_heads, m)
        sizes: dict[str, int] = {
            "S": model.max_seq_length, "d": model.hidden_size, "Hl": heads,
            "Dh": model.head_dim, "HDl": heads * model.head_dim,
            "Fl": split_dim(model.ffn_dim, m), "Vl": split_dim(model.vocab_size, m),
            "Pl": local_parameters(model, m),
        }
        if model.vq_codes:
            sizes.update(K=model.vq_codes, Dv=model.vq_embedding_dim or model.hidden_size)
        if model.num_experts:
            sizes.update(E=model.num_experts, Fel=split_dim(model.expert_ffn_dim or 0, m))
        dtypes = _dtype_bindings(ir.precision)
        kernels = tuple(_bind(use, sizes, dtypes) for use in ir.kernels)
        return replace(ir, kernels=kernels)


def _dtype_bindings(p: Precision) -> dict[str, str]:
    return {"$params": p.params, "$compute": p.compute, "$accumulation": p.accumulation,
            "$vq_codebook": p.vq_codebook or p.compute}


def _bind(use: KernelUse, sizes: Mapping[str, int], dtypes: Mapping[str, str]) -> KernelUse:
    shapes = {name: tuple(sizes.get(d, d) if isinstance(d, str) else d for d in shape)
              for name, shape in use.shapes.items()}
    return replace(use, shapes=shapes,
                   dtypes={k: dtypes.get(v, v) for k, v in use.dtypes.items()},
                   params={k: dtypes.get(v, v) if isinstance(v, str) else v
                           for k, v in use.params.items()})
