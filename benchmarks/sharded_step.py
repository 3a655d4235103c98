"""The explicit sharded train step against XLA's automatic partitioning, on 8 host devices.

Anchor: the model's train step as ``jax.jit`` of the global step over sharded
arrays (XLA inserts every reduction). Candidates: the explicit ``shard_map``
step (:mod:`capibara.model.sharded_step`) with each collective variant, on a
data-parallel mesh ``[8, 1]`` and a data × model mesh ``[4, 2]`` (tensor
parallelism through ``all_gather_matmul`` / ``reduce_scatter``), with the
optimizer state split over the data axis (``optimizer_sharding``, ZeRO-1)
and without. Same model, same batch, same parameters; each model's donated
state is threaded through its calls. The ``cpu`` rows of the collective
family's ``STEP`` table (``capibara/kernels/collective/spec.py``) come from
this script.

JAX fixes the device count at start-up, so this script re-executes itself
with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` when needed.

    .venv/bin/python benchmarks/sharded_step.py [--rounds 9] [--hidden 512] [--seq 128]
"""

from __future__ import annotations

import argparse
import os
import sys

DEVICES = 8
FLAG = f"--xla_force_host_platform_device_count={DEVICES}"

if __name__ == "__main__" and FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FLAG}".strip()
    os.execv(sys.executable, [sys.executable, *sys.argv])

import jax  # noqa: E402  (the device count must be set before JAX starts)
import numpy as np  # noqa: E402

from _harness import print_speedup_table, race  # noqa: E402
from capibara.config import ModularModelConfig  # noqa: E402
from capibara.model.facade import Kernels, Model, ModelSpec, make_mesh  # noqa: E402

ANCHOR = "automatic (XLA partitions jit)"


def candidates(mesh_shape: tuple[int, int], config: ModularModelConfig, batch: dict):
    spec = ModelSpec.from_config(config)
    bundles = {ANCHOR: Kernels.from_variants(spec)}
    for variant in ("reference", "decomposed"):
        bundles[f"explicit shard_map, {variant}"] = Kernels.from_variants(
            spec, {"collective": (variant, {})})
    runs = {}
    for name, kernels in bundles.items():
        model = Model.build(spec, kernels, config, mesh=make_mesh(mesh_shape))
        assert model.sharded_step == ("automatic" if name == ANCHOR else "explicit")

        def run(model=model):
            jax.block_until_ready(model.train_step(batch)["total"])
        runs[name] = run
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8, help="global batch (samples)")
    args = parser.parse_args()
    # Dense float weights: the explicit and automatic steps compute the same thing
    # (with Rookies or VQ each data replica would use its own batch statistics).
    settings = dict(
        hidden_size=args.hidden, num_layers=args.layers, num_heads=4, vocab_size=512,
        max_seq_length=args.seq, use_vq=False, use_sparse=False,
        use_affine_quantization=False, mixed_precision=False, use_bfloat16=False,
        warmup_steps=0, decay_steps=1000)
    tokens = np.random.default_rng(0).integers(0, 512, (args.batch, args.seq), dtype=np.int32)
    print(f"train step, d{args.hidden} L{args.layers} S{args.seq} global batch {args.batch}, "
          f"{DEVICES} host devices, {args.rounds} rounds, jax {jax.__version__}")
    for zero in (True, False):
        for shape in ((8, 1), (4, 2)):
            config = ModularModelConfig(**settings, optimizer_sharding=zero)
            runs = candidates(shape, config, {"tokens": tokens})
            times = race(runs, args.rounds, shuffled=True)
            print(f"\nmesh {list(shape)} (data, model), optimizer state "
                  f"{'split over data (ZeRO-1)' if zero else 'replicated'}")
            print_speedup_table(times, ANCHOR)


if __name__ == "__main__":
    main()
