"""attention: the blocked CPU kernels against jax.nn.dot_product_attention and the matmul roofline.

At B4 H8 S2048 D64 (DESIGN.md §5) times, side by side in one process:

- the anchor, ``jax.nn.dot_product_attention`` (XLA), causal and not;
- ``cpu_blocked`` (f32 matmuls) and ``cpu_bf16`` (bf16 operands, f32
  accumulation), both on f32 inputs;
- the roofline: a ``jnp.dot`` with the same FLOPs as non-causal attention,
  in f32 and bf16 -> f32 (``preferred_element_type``).

Goals: causal >= 4x the anchor; non-causal f32 >= 50% of the f32 roofline;
bf16 >= 30% of the bf16 roofline. Causal GFLOP/s count the useful half of
the score matrix. ``--grad`` adds forward+backward timings (slow anchor).

Round-robin timing: each round runs every candidate once, in a fresh order,
so a noisy neighbour slows all alike; medians of ``--rounds`` runs after a warm-up.

    .venv/bin/python benchmarks/kernels_attention.py [--seq 2048] [--rounds 5] [--grad]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from _harness import blocking, medians, race
from capibara.kernels.attention import attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--grad", action="store_true", help="also time forward + backward")
    args = parser.parse_args()
    b, h, s, d = args.batch, args.heads, args.seq, args.head_dim
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.standard_normal((b, s, h, d)), jnp.float32) for _ in range(3))
    flops = 4 * b * h * s * s * d  # QK^T and PV, non-causal

    # A square-ish dot with the same FLOPs: m * n * kk * 2 = flops.
    m = n = 2048
    kk = flops // (2 * m * n)
    x = jnp.asarray(rng.standard_normal((m, kk)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((kk, n)), jnp.float32)
    xb, yb = x.astype(jnp.bfloat16), y.astype(jnp.bfloat16)
    dot32 = jax.jit(lambda x, y: jnp.dot(x, y))
    dot16 = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))

    def attn(causal, implementation):
        if implementation == "xla":
            return jax.jit(lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=causal))
        return jax.jit(lambda q, k, v: attention(q, k, v, causal=causal, implementation=implementation))

    cands = {"dot f32": blocking(dot32, x, y),
             "dot bf16->f32": blocking(dot16, xb, yb)}
    for causal in (True, False):
        for impl in ("xla", "cpu_blocked", "cpu_bf16"):
            f = attn(causal, impl)
            cands[f"{'causal' if causal else 'full'} {impl}"] = blocking(f, q, k, v)
    res = medians(race(cands, args.rounds, shuffled=True))
    wall = {name: t for name, (t, _) in res.items()}
    print(f"attention B{b} H{h} S{s} D{d} f32 inputs, {jax.devices()[0].device_kind}, "
          f"median of {args.rounds} rounds")
    roof32, roof16 = flops / wall["dot f32"] / 1e9, flops / wall["dot bf16->f32"] / 1e9
    print(f"  {'dot f32':24s} {wall['dot f32'] * 1e3:8.1f} ms  {roof32:6.0f} GFLOP/s  (f32 roofline)")
    print(f"  {'dot bf16->f32':24s} {wall['dot bf16->f32'] * 1e3:8.1f} ms  {roof16:6.0f} GFLOP/s  (bf16 roofline)")
    for causal in (True, False):
        tag = "causal" if causal else "full"
        useful = flops / 2 if causal else flops
        anchor = wall[f"{tag} xla"]
        for impl in ("xla", "cpu_blocked", "cpu_bf16"):
            t = wall[f"{tag} {impl}"]
            gflops = useful / t / 1e9
            roof = roof16 if impl == "cpu_bf16" else roof32
            print(f"  {tag + ' ' + impl:24s} {t * 1e3:8.1f} ms  {gflops:6.0f} GFLOP/s  "
                  f"{anchor / t:5.2f}x xla  {100 * gflops / roof:5.1f}% of its roofline  "
                  f"(cpu {res[f'{tag} {impl}'][1] * 1e3:.0f} ms)")

    if args.grad:
        ct = jnp.asarray(rng.standard_normal(q.shape), jnp.float32)
        grads = {}
        for impl in ("xla", "cpu_blocked", "cpu_bf16"):
            def loss(q, k, v, impl=impl):
                if impl == "xla":
                    o = jax.nn.dot_product_attention(q, k, v, is_causal=True)
                else:
                    o = attention(q, k, v, causal=True, implementation=impl)
                return jnp.sum(o * ct)
            g = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
            grads[f"causal grad {impl}"] = blocking(g, q, k, v)
        res = medians(race(grads, args.rounds, shuffled=True))
        anchor = res["causal grad xla"][0]
        for name, (t, c) in res.items():
            print(f"  {name:24s} {t * 1e3:8.1f} ms  {anchor / t:5.2f}x xla  (cpu {c * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
