"""Optimizer state split over the data axis (ZeRO-1) on 8 host devices.

The layout is checked in a subprocess that asks XLA for 8 CPU devices before
JAX starts: with ``optimizer_sharding`` every Adam moment is split over
``data`` on top of its parameter's layout, one device holds what the plan's
memory estimate says, and a training step keeps the layout. Without it the
moments are laid out like the parameters (checked on the layout alone, which
needs no second model) and the estimate is the data axis times larger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import os, json
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, numpy as np
    from capibara.compiler.driver import compile_config
    from capibara.config import ModularModelConfig
    from capibara.model.facade import Model
    from capibara.model.optimizer_sharding import optimizer_state_shardings
    assert jax.device_count() == 8
    settings = dict(
        hidden_size=64, num_layers=2, num_heads=4, vocab_size=128, max_seq_length=16,
        use_vq=False, use_sparse=False, mixed_precision=False, use_bfloat16=False,
        use_affine_quantization=False, warmup_steps=0, decay_steps=100,
        save_checkpoint_steps=100, model_parallel=True)
    model = Model(ModularModelConfig(**settings), target="cpux8")
    is_adam = lambda x: hasattr(x, "mu")
    adam = lambda state: [s for s in jax.tree.leaves(state, is_leaf=is_adam) if is_adam(s)][0]
    before = adam(model.opt_state)
    device = jax.devices()[0]
    moments = sum(shard.data.nbytes for leaf in jax.tree.leaves((before.mu, before.nu))
                  for shard in leaf.addressable_shards if shard.device == device)
    flat = lambda tree: {jax.tree_util.keystr(p): str(v.sharding.spec if hasattr(v, "sharding")
                                                      else v.spec)
                         for p, v in jax.tree_util.tree_leaves_with_path(tree)}
    model.train_step(np.arange(64, dtype=np.int32).reshape(4, 16) % 128)
    after = adam(model.opt_state)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), model.params)
    unsharded = optimizer_state_shardings(model._optimizer, abstract, model._param_shardings,
                                          model.mesh, over_data=False)
    off_plan = compile_config(ModularModelConfig(**settings, optimizer_sharding=False),
                              "cpux8").plan
    print(json.dumps({
        "mesh": list(model.plan.mesh.shape), "execution": model.plan.execution.shard_optimizer_state,
        "off_execution": off_plan.execution.shard_optimizer_state,
        "mu": flat(before.mu), "params": flat(model.params), "off_mu": flat(adam(unsharded).mu),
        "moments": moments, "estimate": model.plan.memory.optimizer_state,
        "off_estimate": off_plan.memory.optimizer_state,
        "kept": flat(after.mu) == flat(before.mu)}))
""")


@pytest.mark.slow
def test_optimizer_state_shards_over_the_data_axis_as_the_estimate_assumes() -> None:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    data = r["mesh"][0]
    assert data > 1 and r["execution"] and not r["off_execution"], r
    for path, spec in r["mu"].items():
        param = r["params"][path]
        assert "data" in spec and "data" not in param, (path, spec, param)
        assert spec.replace("'data'", "None") == param, (path, spec, param)  # added, nothing moved
    assert r["off_mu"] == r["params"]
    # the estimate counts Adam's two float32 moments per local parameter, split over data
    assert r["moments"] == r["estimate"], r
    assert r["off_estimate"] == data * r["estimate"], r
    assert r["kept"]
