"""collective: every op and variant against numpy sums and concatenations on 8 host devices.

JAX fixes its device count when it initializes, so the checks run in a fresh
interpreter with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``: the
pytest side spawns this very file as a script (``python test_collective.py
2,4``), which runs every check for that mesh and exits non-zero on the first
mismatch. Everything is float32 with small integer-valued inputs, so sums are
exact and the comparisons are exact too; the matmul compares at float32
accumulation order (1e-5 of |x| @ |w|).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEVICES = 8
MESHES = {
    # mesh shape -> the axis groups to check (names are "data", "model")
    (8,): [("data",)],
    (2, 4): [("model",), ("data", "model"), ("model", "data")],
    (4, 2): [("data",), ("model", "data")],
}


@pytest.mark.parametrize("shape", list(MESHES), ids=lambda s: "x".join(map(str, s)))
def test_on_host_devices(shape):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}",
           "JAX_PLATFORMS": "cpu"}
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, __file__, ",".join(map(str, shape))], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"mesh {shape}: all checks passed" in proc.stdout


def test_registry():
    from capibara.kernels import collective

    assert set(collective.VARIANTS) == {"reference", "decomposed"}
    for name, variant in collective.VARIANTS.items():
        assert variant.family == "collective" and variant.name == name and "cpu" in variant.platforms


def test_refusals_on_one_device():
    import jax
    import numpy as np

    from capibara.kernels import collective

    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    with pytest.raises(ValueError, match="not in the mesh"):
        collective.collective("all_reduce", mesh, "model")
    with pytest.raises(ValueError, match="not a collective"):
        collective.collective("broadcast", mesh, "data")


# ----------------------------------------------------------------------------
# The subprocess side: numpy oracles and the checks for one mesh.


def _oracles(np):
    def grouped(a, mesh_shape, names, axes):
        """Move the group axes of a mesh-shaped array to the front, in group order."""
        idx = [names.index(n) for n in axes]
        moved = np.moveaxis(a, idx, list(range(len(idx))))
        size = int(np.prod([mesh_shape[i] for i in idx]))
        return moved.reshape((size,) + moved.shape[len(idx):]), idx

    def ungroup(g, mesh_shape, idx):
        shape = [mesh_shape[i] for i in idx]
        moved = g.reshape(shape + list(g.shape[1:]))
        return np.moveaxis(moved, list(range(len(idx))), idx)

    def blocks(x, mesh_shape):
        return x.reshape(tuple(mesh_shape) + (-1,) + x.shape[1:])

    def unblocks(b, mesh_shape):
        return b.reshape((-1,) + b.shape[len(mesh_shape) + 1:])

    def all_reduce(x, mesh_shape, names, axes):
        b = blocks(x, mesh_shape)
        idx = [names.index(n) for n in axes]
        return unblocks(np.broadcast_to(b.sum(axis=tuple(idx), keepdims=True), b.shape), mesh_shape)

    def all_gather(x, mesh_shape, names, axes):
        g, idx = grouped(blocks(x, mesh_shape), mesh_shape, names, axes)
        joined = np.concatenate(list(g), axis=len(g.shape) - x.ndim - 1)  # concat the blocks' axis 0
        every = np.broadcast_to(joined, g.shape[:1] + joined.shape)
        return unblocks(ungroup(every, mesh_shape, idx), mesh_shape)

    def reduce_scatter(x, mesh_shape, names, axes):
        g, idx = grouped(blocks(x, mesh_shape), mesh_shape, names, axes)
        total = g.sum(0)
        block_axis = total.ndim - x.ndim
        pieces = np.stack(np.split(total, g.shape[0], axis=block_axis))
        return unblocks(ungroup(pieces, mesh_shape, idx), mesh_shape)

    return {"all_reduce": all_reduce, "all_gather": all_gather, "reduce_scatter": reduce_scatter}


def _main(shape: tuple[int, ...]) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import Mesh

    from capibara.kernels import collective

    assert jax.device_count() == DEVICES, jax.devices()
    names = ("data", "model")[: len(shape)] if len(shape) > 1 else ("data",)
    mesh = Mesh(np.array(jax.devices()).reshape(shape), names)
    oracle = _oracles(np)
    rng = np.random.default_rng(0)
    # small integers: every sum is exact in float32
    x = rng.integers(-8, 8, (DEVICES * 8, 3)).astype(np.float32)  # 8 rows per block
    ragged = rng.integers(-8, 8, (DEVICES * 3, 5)).astype(np.float32)  # 15 per block: pads

    adjoint = {"all_reduce": "all_reduce", "all_gather": "reduce_scatter", "reduce_scatter": "all_gather"}
    checked = 0
    for axes in MESHES[shape]:
        for impl in collective.VARIANTS:
            for op in ("all_reduce", "all_gather", "reduce_scatter"):
                f = collective.collective(op, mesh, axes, implementation=impl)
                for data in (x, ragged) if op == "all_reduce" else (x,):
                    np.testing.assert_array_equal(np.asarray(f(data)), oracle[op](data, shape, names, axes),
                                                  err_msg=f"{op} {impl} {axes}")
                    checked += 1
                # The gradient of sum(op(x) * r) is op's adjoint applied to r.
                out_rows = np.asarray(f(x)).shape[0]
                rr = rng.integers(-8, 8, (out_rows, x.shape[1])).astype(np.float32)
                grad = jax.grad(lambda v: jnp.sum(f(v) * rr))(x)
                np.testing.assert_array_equal(np.asarray(grad), oracle[adjoint[op]](rr, shape, names, axes),
                                              err_msg=f"grad {op} {impl} {axes}")
                checked += 1

            group = int(np.prod([shape[names.index(a)] for a in axes]))
            a = rng.standard_normal((group * 4, 16)).astype(np.float32)
            w = rng.standard_normal((16, group * 3)).astype(np.float32)
            f = collective.collective("all_gather_matmul", mesh, axes, implementation=impl)
            bound = 1e-5 * (np.abs(a) @ np.abs(w))
            assert np.all(np.abs(np.asarray(f(a, w)) - a.astype(np.float64) @ w) <= bound), (impl, axes)
            g = rng.standard_normal((a.shape[0], w.shape[1])).astype(np.float32)
            ga, gw = jax.grad(lambda a, w: jnp.sum(f(a, w) * g), argnums=(0, 1))(a, w)
            assert np.all(np.abs(np.asarray(ga) - g @ w.T) <= 1e-5 * (np.abs(g) @ np.abs(w.T))), (impl, axes)
            assert np.all(np.abs(np.asarray(gw) - a.T @ g) <= 1e-5 * (np.abs(a.T) @ np.abs(g))), (impl, axes)
            checked += 2
            # The per-device product is the caller's (a model's matmul kernel): the
            # variant only moves the rows, so a product that doubles doubles the result.
            from functools import partial
            from jax.sharding import PartitionSpec as P
            per_shard = partial(collective.VARIANTS[impl].fn, op="all_gather_matmul",
                                axis_name=axes[0] if len(axes) == 1 else axes,
                                matmul=lambda x, y: 2.0 * jnp.matmul(x, y))
            doubled = jax.shard_map(per_shard, mesh=mesh, in_specs=(P(axes), P(None, axes)),
                                    out_specs=P(None, axes))(a, w)
            assert np.all(np.abs(np.asarray(doubled) - 2 * (a.astype(np.float64) @ w)) <= 2 * bound)
            checked += 1

    # donation: the result may reuse the input's buffer; the values must not change
    donated = collective.collective("all_reduce", mesh, MESHES[shape][0], implementation="decomposed",
                                    donate=True)
    np.testing.assert_array_equal(np.asarray(donated(jnp.asarray(x))),
                                  oracle["all_reduce"](x, shape, names, MESHES[shape][0]))
    print(f"mesh {shape}: all checks passed ({checked + 1} comparisons)")


if __name__ == "__main__":
    _main(tuple(int(n) for n in sys.argv[1].split(",")))
