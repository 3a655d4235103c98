"""What a model says about how it honours its plan, where that is not plain."""

from __future__ import annotations

from typing import Any

from jax.sharding import Mesh

from capibara.compiler.model_spec import RunPolicy


def host_offload_supported(mesh: Mesh) -> bool:
    """Whether every device of ``mesh`` has ``pinned_host`` memory to offload to."""
    def kinds(device):
        try:
            return {memory.kind for memory in device.addressable_memories()}
        except (AttributeError, NotImplementedError, RuntimeError):
            return set()

    return all("pinned_host" in kinds(device) for device in mesh.devices.flat)


def execution_notes(policy: RunPolicy, mesh: Mesh) -> tuple[list[str], bool, bool]:
    """What the model says about how it honours ``policy``: the notes, whether the
    training step rematerializes blocks, and whether kept inputs are offloaded."""
    notes = []
    offload = policy.offload_activations
    if offload and not host_offload_supported(mesh):
        offload = False
        platform = mesh.devices.flat[0].platform
        notes.append(f"execution.offload_activations is on, but {platform} devices here have no "
                     "`pinned_host` memory to offload to: kept block inputs stay in device memory")
    elif offload and mesh.devices.flat[0].platform == "cpu":
        notes.append("execution.offload_activations: on cpu the host memory kept block inputs "
                     "are offloaded to is the device's own memory, so offloading saves nothing")
    remat = policy.remat or offload
    if offload and not policy.remat:
        notes.append("execution.offload_activations without remat: JAX offloads what a "
                     "checkpoint policy keeps, so each block keeps only its input (in host "
                     "memory) and is recomputed in the backward pass, as with "
                     "`gradient_checkpointing`")
    if policy.saved_activation_dtype != "float32" and not remat:
        notes.append(f"execution.saved_activation_dtype is {policy.saved_activation_dtype}, but "
                     "without remat (`gradient_checkpointing = false`) no block input is kept "
                     "for the backward pass: activations stay in the dtypes they are computed in")
    if not policy.jit:
        notes.append("execution.jit is false (`enable_jit = false`): forward, loss, generation "
                     "and the train step run op by op, without donating buffers; parameters and "
                     "optimizer state are still initialized by one compiled program, which "
                     "places them on the mesh")
    return notes, remat, offload


def plan_notes(plan: Any) -> list[str]:
    """What the model says about plan records it does not act on itself."""
    notes = []
    if plan.execution.jit and not plan.execution.cache_compiled:
        notes.append("execution.cache_compiled is false (`cache_compiled_functions`), but a "
                     "jitted model keeps each compiled program in memory for its life anyway "
                     "(jax.jit's cache)")
    if plan.precision.loss_scaling:
        notes.append(f"precision.loss_scaling is on ({plan.precision.compute} compute), but the "
                     "training step does not scale the loss: small gradients may underflow")
    return notes


def sharded_step_notes(spec: Any, mesh: Mesh) -> list[str]:
    """What the model says about training through the explicit sharded step."""
    data = mesh.shape["data"]
    per_shard = [what for what, on in (("routes Rookies with its own tokens' expert capacity",
                                        spec.use_moe),
                                       ("averages the VQ terms over its own batch", spec.use_vq))
                 if on]
    if data == 1 or not per_shard:
        return []
    return [f"the train step is the explicit sharded one: each of the {data} data replicas "
            f"{' and '.join(per_shard)} (XLA's automatic partitioning would use the global "
            "batch)"]
