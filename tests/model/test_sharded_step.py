"""The explicit sharded train step computes what XLA's automatic partitioning does, on 8 host devices.

JAX fixes its device count when it starts, so the checks run in a fresh
interpreter with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``. Each
case builds the same tiny model twice from the same seed, once without
collective kernels (``jax.jit`` over sharded arrays: XLA's reductions) and
once with them (``shard_map``, the gradient all-reduce and the tensor-parallel
collectives through the collective family), and takes three SGD steps on the
same batches, each with a mask that counts different numbers of tokens on
each data shard. Both compute in float32; they differ only in the order of
the sums (the gradient of 8 shards, the vocabulary's log-sum-exp over the
model axis): a few ulps of the loss, and parameters within a few ulps of
their size after three steps of learning rate 0.5. (SGD moves each weight
by its gradient; Adam would divide a near-zero gradient by its own size and
turn a last-bit difference into a visible one.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, jax.numpy as jnp, numpy as np
    from capibara.config import ModularModelConfig
    from capibara.model.facade import Kernels, Model, ModelSpec, make_mesh
    assert jax.device_count() == 8
    TINY = dict(hidden_size=32, num_layers=2, num_heads=4, vocab_size=128, max_seq_length=16,
                mixed_precision=False, use_bfloat16=False, use_affine_quantization=False,
                warmup_steps=0, decay_steps=100, optimizer="sgd", learning_rate=0.5,
                mor_num_experts=4)
    CASES = {
        # data-parallel over 8: the two-phase gradient all-reduce
        "data 8": ((8, 1), "decomposed", dict(use_vq=False, use_sparse=False)),
        # data 4 x model 2: psum, all_gather_matmul projections, reduce-scattered outputs
        "data 4 x model 2": ((4, 2), "reference", dict(use_vq=False, use_sparse=False)),
        # split 4 ways only, so batch statistics are the global batch's: VQ, Rookies,
        # the chunked loss over the vocabulary's shards, rematerialized blocks
        "model 4, VQ and Rookies": ((1, 4), "decomposed", dict(
            use_vq=True, use_sparse=True, sparsity_method="mor", memory_optimization_level=2)),
    }
    out = {}
    rng = np.random.default_rng(0)
    batches = [{"tokens": rng.integers(0, 128, (8, 16), dtype=np.int32),
                "mask": rng.random((8, 16)) < np.linspace(0.3, 0.9, 8)[:, None]}
               for _ in range(3)]
    for name, (shape, variant, settings) in CASES.items():
        config = ModularModelConfig(**TINY, **settings)
        spec = ModelSpec.from_config(config)
        auto = Model.build(spec, Kernels.from_variants(spec), config, mesh=make_mesh(shape))
        explicit = Model.build(spec, Kernels.from_variants(spec, {"collective": (variant, {})}),
                               config, mesh=make_mesh(shape))
        steps = []
        for batch in batches:
            a, e = auto.train_step(batch), explicit.train_step(batch)
            steps.append([float(a["total"]), float(e["total"]),
                          float(a["grad_norm"]), float(e["grad_norm"])])
        drift = max(float(jnp.max(jnp.abs(x - y))) for x, y in
                    zip(jax.tree.leaves(auto.params), jax.tree.leaves(explicit.params)))
        out[name] = {"steps": steps, "drift": drift, "kinds": [auto.sharded_step,
                                                             explicit.sharded_step]}
    # what the explicit step refuses, and says why
    config = ModularModelConfig(**TINY, use_vq=False, use_sparse=False)
    spec = ModelSpec.from_config(config)
    model = Model.build(spec, Kernels.from_variants(spec, {"collective": ("reference", {})}),
                        config, mesh=make_mesh((8, 1)))
    try:
        model.train_step(batches[0]["tokens"][:6])
    except ValueError as refused:
        out["odd batch"] = str(refused)
    quantized = ModularModelConfig(**{**TINY, "use_affine_quantization": True})
    spec = ModelSpec.from_config(quantized)
    try:
        Model.build(spec, Kernels.from_variants(spec, {"collective": ("reference", {})}),
                    quantized, mesh=make_mesh((4, 2)))
    except ValueError as refused:
        out["quantized"] = str(refused)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def results() -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["data 8", "data 4 x model 2", "model 4, VQ and Rookies"])
def test_the_explicit_step_computes_what_xla_partitioning_does(results, case) -> None:
    found = results[case]
    assert found["kinds"] == ["automatic", "explicit"]
    for auto_loss, loss, auto_norm, norm in found["steps"]:
        assert loss == pytest.approx(auto_loss, rel=1e-6)
        assert norm == pytest.approx(auto_norm, rel=1e-5)
    assert found["drift"] < 1e-6, found["drift"]


@pytest.mark.slow
def test_the_explicit_step_refuses_what_it_cannot_split(results) -> None:
    assert "splits the batch over 8 data replicas" in results["odd batch"]
    assert "6 samples" in results["odd batch"]
    assert "quantized" in results["quantized"] and "2 ways" in results["quantized"]
