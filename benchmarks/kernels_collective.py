"""collective: all-reduce over 8 host devices against a plain ``psum``, and the collective matmul.

The anchor is ``lax.psum`` inside ``shard_map`` (the ``reference`` variant)
on 64 MiB of float32 per device (DESIGN.md §5: ~230 ms). Each is timed both
plainly and with the input donated (a gradient all-reduce no longer needs its
input; each call's output feeds the next). Also the all-gather matmul:
gather-then-multiply against the ``ppermute`` ring.

JAX fixes the device count at start-up, so this script re-executes itself
with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` when needed.
Round-robin timing; see _harness.py.

    .venv/bin/python benchmarks/kernels_collective.py [--mib 64] [--rounds 5]
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
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

from _harness import blocking, print_speedup_table, race  # noqa: E402
from capibara.kernels import collective  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64, help="MiB of float32 per device")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    mesh = Mesh(np.array(jax.devices()), ("data",))
    per_device = args.mib * 2**20 // 4
    sharding = NamedSharding(mesh, P("data"))

    def fresh():
        # zeros: a donated input is summed again every call, and zeros stay
        # finite forever (float adds cost the same whatever the values)
        return jax.device_put(jnp.zeros((DEVICES * per_device,), jnp.float32), sharding)

    def timed(impl, donate):
        f = collective.collective("all_reduce", mesh, "data", implementation=impl, donate=donate)
        state = {"x": fresh()}

        def run():
            out = jax.block_until_ready(f(state["x"]))
            if donate:
                state["x"] = out
        return run

    candidates = {
        "psum (reference, anchor)": timed("reference", False),
        "two-phase (decomposed)": timed("decomposed", False),
        "psum, donated": timed("reference", True),
        "two-phase, donated": timed("decomposed", True),
    }
    times = race(candidates, args.rounds)
    print(f"all-reduce {args.mib} MiB f32 per device over {DEVICES} host devices, {args.rounds} rounds, "
          f"jax {jax.__version__}")
    print_speedup_table(times, "psum (reference, anchor)")

    m, k, n = 4096, 1024, 1024
    rng = np.random.default_rng(0)
    a = jax.device_put(rng.standard_normal((m, k), dtype=np.float32), NamedSharding(mesh, P("data")))
    w = jax.device_put(rng.standard_normal((k, n), dtype=np.float32), NamedSharding(mesh, P(None, "data")))

    def matmul(impl):
        f = collective.collective("all_gather_matmul", mesh, "data", implementation=impl)
        return blocking(f, a, w)

    times = race({"all_gather then matmul (reference)": matmul("reference"),
                  "ppermute ring (decomposed)": matmul("decomposed")}, args.rounds)
    print()
    print(f"all-gather matmul x[{m},{k}] (rows over 8) @ w[{k},{n}] (columns over 8)")
    print_speedup_table(times, "all_gather then matmul (reference)")


if __name__ == "__main__":
    main()
