"""No plan records a kernel the model does not run: for every golden plan, build the
model and run it, counting the calls of every kernel spec.

Golden plans (``tests/plan/golden_plans/matrix``: every bundled config for
every golden target) are full size, so each is compiled again for its target
with small sizes (:data:`SMALL`): the same config, the same target, the same
switches. That plan must keep the golden plan's kernels (family,
implementation and call sites of every spec; only shapes and tiles change),
and the model built from it must call each of its specs at least once in a
forward pass and a training step. (Generation calls no spec the two do not:
its attention runs against the cache, with no spec of its own.)

Which specs a model calls depends on each spec's family, call sites
(``uses``) and attributes (weight format, sparsity), on the model's mixers
and, for collectives, on the mesh; not on which function a spec binds
(``Kernels.from_bound`` routes every call by family and site). So plans
alike in those run once (``ran_as`` names the plan that stood for them): the
77 golden plans are 3 such groups, a TPU plan's standing for the CPU and GPU
ones of the same config (its variants differ; its calls do not).

Where it runs: one interpreter with 16 host devices
(``--xla_force_host_platform_device_count``, the largest golden mesh, TPU
v4-32's), this file run as a script. A TPU or GPU plan's kernels are bound
for the CPU as a model loading it there binds them (``jax_config.fallback_to_standard``,
on in every bundled config): a variant that cannot run on CPU (``pallas_tpu``,
``cudnn``) is bound to its family's reference, and the count is that spec's
all the same, since the model reaches the spec's bound kernel through the
spec, whatever function it holds.

Golden plans record no collective kernel (on their targets XLA's automatic
partitioning is the faster sharded step, or they have one device), so the
plans whose explicit sharded step runs the collectives are compiled here
too (:data:`EXPLICIT`): data-parallel, and data × model with the tensor-parallel
collectives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "plan" / "golden_plans" / "matrix"
DEVICES = 16

#: Small sizes every shrunk plan takes (the batch: 16 splits over every golden mesh).
SMALL = ["model.hidden_size=32", "model.num_heads=2", "model.max_seq_length=32",
         "model.vocab_size=64", "sparsity.mor_num_experts=4", "model.ssm_state_size=4",
         "vector_quantization.embedding_dim=32", "deployment.batch_size=16",
         "deployment.max_batch_size=16"]
#: More for some configs: a hyena filter as long as the context stays an FFT
#: (``fft``) only from 256 taps; below, the direct convolution is cheaper.
PER_CONFIG = {"hybrid_long_context": ["model.max_seq_length=256"]}

_SPLIT = ["tpu_v4_optimizations.optimizer_sharding=false", "tpu_v4_optimizations.model_parallel=true",
          "quantization.use_affine_quantization=false"]

#: Plans whose sharded step is the explicit one, so their collectives are recorded:
#: name → (config, target, overrides).
EXPLICIT = {
    # replicated optimizer state: the explicit step is the faster one on cpu
    "data-parallel--cpux8": ("configs/development/development.toml", "cpux8",
                             ["tpu_v4_optimizations.optimizer_sharding=false"]),
    # data 4 × model 2 (2 heads): all_gather_matmul and reduce_scatter in every block,
    # with Rookies (the experts' input gathered) and with the dense MLP
    "tensor-parallel--cpux8": ("configs/examples/research.toml", "cpux8", _SPLIT),
    "tensor-parallel-dense--cpux8": ("configs/examples/research.toml", "cpux8",
                                     _SPLIT + ["sparsity.enabled=false"]),
}


def golden_plans() -> dict[str, tuple[str, str]]:
    """Golden plan name → (config, target), for those that compile."""
    found = {}
    for path in sorted(GOLDEN.glob("*.txt")):
        header, status = path.read_text().splitlines()[:2]
        if status == "status: ok":
            words = header.split()
            found[path.stem] = (words[words.index("--no-env") + 1], words[words.index("--target") + 1])
    return found


GOLDEN_PLANS = golden_plans()


def compile_plan(config: str, target: str, overrides: list[str]):
    from capibara.compiler.driver import compile_sources
    from capibara.targets import CATALOG, get_target

    result = compile_sources([str(ROOT / config)], target=CATALOG.get(target) or get_target(target),
                             env=None, overrides=overrides)
    assert result.plan is not None, [str(d) for d in result.diagnostics if d.is_error]
    return result.plan


def shrunk(config: str, target: str, full) -> object:
    """``config`` compiled for ``target`` at :data:`SMALL` sizes, as many layers as one
    round of its mixers pattern (at least two)."""
    layers = max(2, len(full.model.mixers) if full.model.mixers else 2)
    return compile_plan(config, target, SMALL + PER_CONFIG.get(Path(config).stem, [])
                        + [f"model.num_layers={layers}"])


def kernels_of(plan) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted((k.family, k.implementation, tuple(sorted(k.uses))) for k in plan.kernels)


@pytest.mark.parametrize("name", sorted(GOLDEN_PLANS))
def test_the_small_plan_keeps_the_golden_plans_kernels(name: str) -> None:
    config, target = GOLDEN_PLANS[name]
    full = compile_plan(config, target, [])
    assert kernels_of(shrunk(config, target, full)) == kernels_of(full)


@pytest.fixture(scope="module")
def calls(tmp_path_factory) -> dict:
    """Plan name → ``{"counts": {spec: calls}, "ran_as": plan name}``, from one interpreter."""
    from capibara.plan import write_plan_file

    folder = tmp_path_factory.mktemp("plans")
    plans = {}
    for name, (config, target) in GOLDEN_PLANS.items():
        plans[name] = shrunk(config, target, compile_plan(config, target, []))
    for name, (config, target, overrides) in EXPLICIT.items():
        plans[name] = compile_plan(config, target, SMALL + ["model.num_layers=2"] + overrides)
    files = {}
    for name, plan in plans.items():
        files[name] = str(folder / f"{name}.plan.json")
        write_plan_file(plan, files[name])
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={DEVICES}",
           "JAX_PLATFORMS": "cpu"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, __file__, json.dumps(files)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GOLDEN_PLANS) + sorted(EXPLICIT))
def test_every_kernel_spec_of_the_plan_is_called(calls, name: str) -> None:
    found = calls[name]
    never = [spec for spec, count in found["counts"].items() if count == 0]
    assert not never, f"the plan records kernels the model never called: {never} " \
                      f"(run as {found['ran_as']})"


@pytest.mark.slow
def test_the_explicit_plans_record_and_run_their_collectives(calls) -> None:
    assert {"grads.all_reduce"} == {s for s in calls["data-parallel--cpux8"]["counts"]
                                    if s.startswith("grads.")}
    for name in ("tensor-parallel--cpux8", "tensor-parallel-dense--cpux8"):
        split = calls[name]["counts"]
        # q, k, v of both layers gather the rows into their projection; wo and the
        # feed-forward's output reduce-scatter theirs
        assert split["blocks.attention_in"] == 6 and split["blocks.attention_out"] == 4
        assert split["grads.all_reduce"] == 1
    assert calls["tensor-parallel--cpux8"]["counts"]["blocks.moe_in"] == 2
    assert calls["tensor-parallel-dense--cpux8"]["counts"]["blocks.mlp_in"] == 2


# ----------------------------------------------------------------------------
# The subprocess side: bind, build, run and count.


def _calls_alike(plan) -> str:
    """What decides which specs the model calls (see the module docstring)."""
    sharded = any(k.family == "collective" for k in plan.kernels)
    return json.dumps([sorted([k.family, sorted(k.uses), sorted(k.attrs.items())]
                              for k in plan.kernels),
                       plan.model.mixers, list(plan.mesh.shape) if sharded else None], default=str)


def _run(plan) -> dict[str, int]:
    from dataclasses import replace

    import numpy as np

    from capibara.model.facade import Model
    from capibara.model.params import make_mesh
    from capibara.runtime.loader import CompiledPlan, KernelSet, bind

    mesh = make_mesh(tuple(plan.mesh.shape))
    bound = [bind(spec, plan, mesh, "cpu", allow_fallback=True) for spec in plan.kernels]
    counts: Counter[str] = Counter({b.spec.name: 0 for b in bound})

    def counted(fn, name):
        def call(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)
        return call

    for kernel in bound:
        kernel.fn = counted(kernel.fn, kernel.spec.name)
        if kernel.shard_fn is not None:
            kernel.shard_fn = counted(kernel.shard_fn, kernel.spec.name)
    model = Model.from_plan(CompiledPlan(plan, mesh, KernelSet(bound), "cpu", None, []))
    # vq and moe bind per-call values (the runtime threshold, dropless routing) in the
    # model's bundle: a plan has at most one spec of either, counted there.
    by_family = {b.spec.family: b.spec.name for b in bound}
    kernels = model._net.kernels
    model._net.kernels = replace(kernels, **{
        name: counted(getattr(kernels, name), by_family[family])
        for name, family in (("vq", "vq"), ("moe", "moe"), ("moe_dropless", "moe"))
        if family in by_family})
    length = plan.model.max_seq_length
    tokens = np.arange(16 * length, dtype=np.int32).reshape(16, length) % plan.model.vocab_size
    model.forward(tokens[:plan.mesh.shape[0]])
    model.train_step(tokens)
    return dict(counts)


def _main(files: dict[str, str]) -> None:
    import jax

    from capibara.plan import load_plan_file

    assert jax.device_count() == DEVICES, jax.devices()
    ran: dict[str, tuple[str, dict[str, int]]] = {}
    out = {}
    for name, path in files.items():
        plan = load_plan_file(path)
        key = _calls_alike(plan)
        if key not in ran:
            ran[key] = (name, _run(plan))
        first, counts = ran[key]
        # this plan's own specs, each with the calls its stand-in's model made to it
        out[name] = {"counts": {k.name: counts.get(k.name, 0) for k in plan.kernels},
                     "ran_as": first}
    print(json.dumps(out))


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]))
