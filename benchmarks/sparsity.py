"""sparsity: what the feed-forward's sparsity methods buy on this CPU.

The dense GELU feed-forward ``gelu(x @ w_in) @ w_out`` (the anchor) against
the same computation with ``magnitude`` weights (``w_in`` and ``w_out``
pruned to ``--ratio`` beforehand, as the model keeps them) and with ``topk``
activations (each token keeps its largest ``1 - ratio`` hidden entries).
Shape (defaults): T 2048 tokens, d 768, F 3072 (the 768-wide tier), f32.
Round-robin timing; see _harness.py.

XLA's CPU matmul is dense, so zeros cost what other numbers cost: expect
magnitude pruning to match the anchor and top-k to add its selection.

    .venv/bin/python benchmarks/sparsity.py [--tokens 2048] [--ratio 0.65] [--rounds 5]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from _harness import blocking, print_speedup_table, race
from capibara.model.sparsity import magnitude_prune, topk_activations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--ffn", type=int, default=3072)
    parser.add_argument("--ratio", type=float, default=0.65)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    t, d, f = args.tokens, args.dim, args.ffn
    x = jnp.asarray(rng.standard_normal((t, d), dtype=np.float32))
    w_in = jnp.asarray(rng.standard_normal((d, f), dtype=np.float32) / np.sqrt(d))
    w_out = jnp.asarray(rng.standard_normal((f, d), dtype=np.float32) / np.sqrt(f))
    pruned_in = magnitude_prune(w_in[None], args.ratio)[0]
    pruned_out = magnitude_prune(w_out[None], args.ratio)[0]

    @jax.jit
    def dense(x, w_in, w_out):
        return jax.nn.gelu(x @ w_in) @ w_out

    @jax.jit
    def topk(x, w_in, w_out):
        return topk_activations(jax.nn.gelu(x @ w_in), args.ratio) @ w_out

    prune = jax.jit(lambda w: magnitude_prune(w[None], args.ratio)[0])
    candidates = {
        "dense (anchor)": blocking(dense, x, w_in, w_out),
        f"magnitude {args.ratio:g} (pruned weights)": blocking(dense, x, pruned_in, pruned_out),
        f"topk {args.ratio:g} (activations)": blocking(topk, x, w_in, w_out),
        "magnitude: pruning w_in once (train step)": blocking(prune, w_in),
    }
    print(f"T {t}  d {d}  F {f}  ratio {args.ratio:g}  f32  ({jax.devices()[0].device_kind})")
    print_speedup_table(race(candidates, args.rounds), "dense (anchor)")


if __name__ == "__main__":
    main()
