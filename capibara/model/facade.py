"""CapibaraGPT: the decoder-only language model a plan describes, computed by capibara kernels.

    model = capibara.Model(config)                    # compiles for this host
    model = Model.from_plan("dev.plan.json")          # or from a compiled plan
    logits = model.forward(tokens)                    # [batch, seq, vocab]
    parts = model.loss({"tokens": tokens})            # total and each part
    tokens = model.generate(prompt, max_new_tokens=32)
    metrics = model.train_step({"tokens": tokens})
    config.update_runtime_settings({"temperature": 0.8})
    model.apply_config_updates(config)                # re-JITs only what changed

The network (:mod:`~capibara.model.network`) is a set of pure functions of a parameter tree whose blocks are
stacked along a leading layer axis, so one ``lax.scan`` runs them (one block
to compile, however deep the model). Each block is RMSNorm → causal
attention (rotary positions, grouped KV heads) → RMSNorm → a feed-forward:
Mixture of Rookies through the ``moe`` kernel when the spec has experts, a
dense GELU MLP otherwise. With VQ, the hidden state after the first half of
the blocks is replaced by its nearest codebook vectors (the ``vq`` kernel);
the second half and the tied output projection read the quantized stream.

With ``model.mixers`` naming ``ssm`` or ``hyena`` blocks, the network is
:class:`~capibara.model.mixers.HybridNetwork`: blocks in the pattern's order,
state-space blocks through the ``conv`` and ``scan`` kernels, long
convolutions through ``fft``.

What the network computes *with* is a :class:`Kernels` bundle of callables
(attention, vq, moe, matmul, scan, conv, long_conv). A model built from a plan
computes with the plan's bound kernels (:func:`capibara.runtime.loader.bind`,
:meth:`Kernels.from_bound`), the same path ``load_plan`` takes;
:meth:`Kernels.plain` is the same network in straightforward JAX
(``jax.nn.dot_product_attention``, dense all-experts evaluation, ``lax.scan``,
``lax.conv_general_dilated``, ``jnp.fft``), the baseline the benchmarks
compare against.

Parameters live on a ``("data", "model")`` mesh (:func:`param_partition_specs`);
the batch is split over ``data``. Runtime-mutable settings change without
rebuilding (:meth:`Model.apply_config_updates`); everything else about a
built model is fixed (:class:`~capibara.compiler.model_spec.ModelSpec`).

What a plan records and how the model honours it:

- ``model``, ``precision``, ``mesh``: shapes, parameter and compute dtypes,
  the ``("data", "model")`` mesh.
- kernel specs: each family's variant with its static parameters. A linalg
  spec's weight format (``attrs.weights``: ``affine`` with ``bits`` and
  ``symmetric``, or ``bitnet`` at ``1.58bit``/``int8``/``int4``) applies to
  the block matmuls its ``uses`` name (``wq wk wv wo w_in w_out``); the tied
  output projection, router and Rookie experts are float, as their specs say.
  Training is quantization-aware (:func:`quantized_matmul`): float master
  weights, quantized in the forward pass, straight-through gradients;
  forward and generation quantize each weight once per call
  (:meth:`_Net.inference_params`) and multiply in the kernels' integer forms.
- ``precision.vq_codebook``: the lookup reads the codebook in that precision;
  ``int8`` is the vq kernels' int8 codebook (``quantize_codebook``), with a
  straight-through gradient to the float codebook in training.
- ``execution``: ``remat``, ``donate``, ``loss_chunk``;
  ``saved_activation_dtype`` is the dtype a rematerialized block's input is
  kept in (the block reads that copy); ``offload_activations`` keeps those
  inputs in ``pinned_host`` memory through JAX's offloading checkpoint
  policy; ``jit = false`` runs forward, loss, generation and the train step
  op by op; ``cache_compiled`` has no off switch here (jax.jit keeps what it
  compiled). Where the platform or the policy makes a setting moot (no
  ``pinned_host`` memory, a saved dtype without remat), :attr:`Model.notes`
  says so, as it does for records the model leaves to others (float16 loss
  scaling, not done). Nothing is dropped silently.
- collective kernel specs: on a mesh of more than one device a plan that
  records them trains through the explicit sharded step
  (:mod:`~capibara.model.sharded_step`: ``shard_map``, the gradient
  all-reduce and, over the model axis, the tensor-parallel projections
  through them); a plan without them through XLA's automatic partitioning of
  the jitted step, which inserts its own reductions (the compiler's
  ``sharded-step`` decision says which and why; :attr:`Model.sharded_step`).
  Forward, loss and generation are XLA's partitioning either way.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from capibara.compiler.model_spec import ModelSpec, RunPolicy, WeightFormat, live_update_diagnostics
from capibara.diagnostics import ConfigError
from capibara.kernels.linalg import quantize_weight
from capibara.model.kernels import Kernels
from capibara.model.mixers import HybridNetwork
from capibara.model.network import LossParts, Network
from capibara.model.notes import (execution_notes, host_offload_supported, plan_notes,
                                  sharded_step_notes)
from capibara.model.optimizer_sharding import optimizer_state_shardings
from capibara.model.params import init_params, make_mesh, param_partition_specs, param_shardings
from capibara.model.quantized import quantized_matmul
from capibara.plan import config_of_plan

__all__ = [
    "Model",
    "ModelSpec",
    "RunPolicy",
    "WeightFormat",
    "Kernels",
    "LossParts",
    "RuntimeSettings",
    "config_of_plan",
    "init_params",
    "param_partition_specs",
    "param_shardings",
    "make_mesh",
    "quantize_weight",
    "quantized_matmul",
    "host_offload_supported",
]


def _op_by_op(fn: Callable[..., Any], **jit_options: Any) -> Callable[..., Any]:
    """``fn`` as it is, for ``jit = false``: JAX runs it one operation at a time
    (``jit_options``, the static arguments, shardings and donation a
    ``jax.jit`` would take, mean nothing here)."""
    return fn



def _pruning(spec: ModelSpec) -> Callable[[Any, Any], Any] | None:
    """``(params, steps done) -> params`` magnitude-pruned to the plan's level, or ``None``."""
    sparsity = spec.ffn_sparsity
    if sparsity is None or sparsity.method != "magnitude":
        return None
    from capibara.model.sparsity import prune_params

    return lambda params, step: prune_params(params, sparsity, sparsity.level(step))


@dataclass(frozen=True)
class RuntimeSettings:
    """The runtime-mutable fields the compiled functions read.

    ``temperature`` is passed as a traced value (changing it compiles
    nothing); ``use_vq`` (a bypass of the bottleneck: a model built without a
    codebook has none to turn on) and
    ``vq_adaptive_threshold`` change the traced program and are static
    arguments, so changing them compiles each function once more on its next
    call. The other runtime fields (logging, monitoring, batch size) live in
    the config only: the network does not read them.
    """

    temperature: float
    use_vq: bool
    vq_adaptive_threshold: float

    @classmethod
    def from_config(cls, config: Any) -> "RuntimeSettings":
        return cls(float(config.temperature), bool(config.use_vq),
                   float(config.vq_adaptive_threshold))


def _same_structure(batch: Any, structs: Any) -> bool:
    """Whether ``batch`` has the keys, shapes and dtypes of ``structs``."""
    if jax.tree.structure(batch) != jax.tree.structure(structs):
        return False
    return all(a.shape == s.shape and a.dtype == s.dtype
               for a, s in zip(jax.tree.leaves(batch), jax.tree.leaves(structs)))


class Model:
    """A CapibaraGPT model: parameters on a device mesh plus compiled forward,
    loss, generation and training functions (see the module docstring).

    ``Model(config)`` compiles for the host and builds from the plan;
    :meth:`from_plan` takes a compiled plan; :meth:`build` an explicit spec
    and kernel bundle.
    """

    spec: ModelSpec
    kernels: Kernels
    mesh: Mesh
    params: Any
    step: int
    #: How the model honours its plan where that is not plain (offloading on a
    #: platform without host memory, ``jit = false``): one sentence each, for
    #: the caller to show.
    notes: list[str]
    #: The train step on a mesh of more than one device: ``"explicit"`` (``shard_map``
    #: with the kernel bundle's collectives), ``"automatic"`` (XLA partitions the
    #: jitted global step); ``None`` on one device.
    sharded_step: str | None

    def __init__(self, config: Any, *, target: Any = None, seed: int = 0) -> None:
        """Compile ``config`` for ``target`` (default: the detected host) and build
        the model that plan describes; see :meth:`from_plan`.

        Diagnostics that stop the compile raise :class:`ConfigError`.
        """
        from capibara.compiler.driver import compile_config

        result = compile_config(config, target)
        if result.has_errors:
            raise ConfigError(result.diagnostics)
        self._setup_from_plan(result.plan, config, seed)

    @classmethod
    def from_plan(cls, compiled_or_path: Any, *, config: Any = None, seed: int = 0) -> "Model":
        """The model a compiled plan describes: its shapes, precision, mesh, kernel
        variants with their static parameters, and execution policy.

        ``compiled_or_path`` is a :class:`~capibara.plan.Plan`, a plan file, or
        anything with a ``.plan`` (the runtime's ``CompiledPlan``). ``config``
        (the runtime settings, training and later updates) defaults to the one
        the plan was compiled from, rebuilt from its resolved values with their
        explicitness; the loss weights are always the plan's.
        """
        from capibara.plan import Plan, load_plan_file, validate_plan

        plan, compiled = compiled_or_path, None
        if isinstance(plan, (str, os.PathLike)):
            plan = load_plan_file(plan)
        elif isinstance(plan, Plan):
            plan = validate_plan(plan)  # a plan built in memory never went through a loader
        else:
            plan, compiled = plan.plan, plan
        self = cls.__new__(cls)
        self._setup_from_plan(plan, config if config is not None else config_of_plan(plan), seed,
                              compiled)
        return self

    def _setup_from_plan(self, plan: Any, config: Any, seed: int, compiled: Any = None) -> None:
        from capibara.runtime.loader import KernelSet, bind

        spec = ModelSpec.from_plan(plan)
        policy = RunPolicy.from_execution(plan.execution)
        if plan.mesh.devices > jax.device_count():
            raise ValueError(f"the plan's mesh {list(plan.mesh.shape)} needs {plan.mesh.devices} "
                             f"devices, {jax.device_count()} present")
        if compiled is not None:  # what load_plan bound (and warmup compiled) is what runs
            mesh, kernels = compiled.mesh, compiled.kernels
        else:
            mesh = make_mesh(tuple(plan.mesh.shape))
            allow = bool(plan.config.get("jax_config.fallback_to_standard", True))
            platform = mesh.devices.flat[0].platform
            kernels = KernelSet(bind(k, plan, mesh, platform, allow_fallback=allow)
                                for k in plan.kernels)
        self._setup(spec, Kernels.from_bound(spec, kernels), config, mesh, seed, policy)
        self.plan = plan
        self.notes.extend(plan_notes(plan))
        self.notes.extend(note for k in kernels for note in k.notes)

    @classmethod
    def build(cls, spec: ModelSpec, kernels: Kernels, config: Any, *, mesh: Mesh | None = None,
              policy: RunPolicy | None = None, seed: int = 0) -> "Model":
        """A model for ``spec`` computed with ``kernels``, parameters initialized from ``seed``.

        ``config`` is the ``ModularModelConfig`` it was built from: its
        runtime fields and ``[training]`` section drive generation and
        training, and :meth:`apply_config_updates` compares against it.
        ``policy`` defaults to :meth:`RunPolicy.from_config`.
        """
        self = cls.__new__(cls)
        self._setup(spec, kernels, config, mesh if mesh is not None else make_mesh(), seed,
                    policy if policy is not None else RunPolicy.from_config(config))
        self.plan = None
        return self

    def _setup(self, spec: ModelSpec, kernels: Kernels, config: Any, mesh: Mesh, seed: int,
               policy: RunPolicy) -> None:
        from capibara.model import training

        if config.use_vq and not spec.use_vq:
            raise ConfigError(live_update_diagnostics(config, config, built_with_vq=False))
        self.spec, self.kernels, self.mesh, self.policy = spec, kernels, mesh, policy
        self._config = copy.copy(config)
        self._runtime = RuntimeSettings.from_config(config)
        self.notes, self._remat, offload = execution_notes(policy, mesh)
        network = Network if spec.attention_only else HybridNetwork
        net = self._net = network(spec, kernels, policy.loss_chunk,
                               saved_activation_dtype=policy.saved_activation_dtype,
                               offload_activations=offload)
        compiled = jax.jit if policy.jit else _op_by_op
        abstract = jax.eval_shape(partial(init_params, spec), jax.random.key(0))
        self._param_shardings = param_shardings(spec, abstract, mesh)
        # Initialize straight into the sharded layout: no device ever holds the whole tree.
        # Magnitude sparsity prunes from the start (the schedule's first level).
        prune = _pruning(spec)
        start = partial(init_params, spec) if prune is None else \
            (lambda key: prune(init_params(spec, key), 0))
        self.params = jax.jit(start, out_shardings=self._param_shardings)(jax.random.key(seed))
        self.step = 0
        self._forward = compiled(net.forward, static_argnames=("use_vq", "threshold"))
        self._loss = compiled(net.loss, static_argnames=("use_vq", "threshold", "remat"))
        self._generate = compiled(net.generate,
                                  static_argnames=("use_vq", "threshold", "max_new_tokens"))
        self._optimizer = training.make_optimizer(config)
        # Optimizer moments are laid out like the parameters they track, and with
        # optimizer sharding also split over the data axis (ZeRO-1); the step
        # returns both in the same layout it got them, so it compiles once.
        self._state_shardings = optimizer_state_shardings(
            self._optimizer, abstract, self._param_shardings, mesh,
            over_data=policy.shard_optimizer_state)
        schedule = training.learning_rate_schedule(config)
        self.sharded_step = None if mesh.devices.size == 1 else (
            "automatic" if kernels.collectives is None else "explicit")
        if self.sharded_step == "explicit":
            from capibara.model.sharded_step import make_explicit_train_step

            step = make_explicit_train_step(
                net, kernels.collectives, mesh, self._param_shardings, self._optimizer, schedule,
                prune)
            self.notes.extend(sharded_step_notes(spec, mesh))
        else:
            step = training.make_train_step(net.loss, self._optimizer, schedule, prune)
        self._train = compiled(
            step, static_argnames=("use_vq", "threshold", "remat", "train"),
            donate_argnums=(0, 1) if policy.donate else (),
            out_shardings=(self._param_shardings, self._state_shardings, None))
        self._compiled_train: tuple[dict[str, Any], Any, Any] | None = None
        self._opt_state = None
        self._checkpoints = None

    # ----------------------------------------------------------------- inputs

    def _place(self, array: Any) -> jax.Array:
        """Put a batch-major array on the mesh, split over ``data`` when it divides evenly."""
        array = jnp.asarray(array)
        data = self.mesh.shape["data"]
        batch_axis = "data" if array.ndim and array.shape[0] % data == 0 else None
        return jax.device_put(array, NamedSharding(self.mesh, P(batch_axis)))

    def _tokens(self, tokens: Any, what: str = "tokens") -> jax.Array:
        tokens = jnp.asarray(tokens)
        if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise ValueError(f"{what} must be an integer array [batch, seq], got "
                             f"{tokens.dtype}{list(tokens.shape)}")
        if tokens.shape[1] > self.spec.max_seq_len:
            raise ValueError(f"{what} length {tokens.shape[1]} exceeds "
                             f"max_seq_length={self.spec.max_seq_len}")
        return self._place(tokens)

    def _batch(self, batch: Any) -> dict[str, jax.Array]:
        if not isinstance(batch, Mapping):
            batch = {"tokens": batch}
        placed = {"tokens": self._tokens(batch["tokens"])}
        if batch.get("mask") is not None:
            placed["mask"] = self._place(batch["mask"])
        return placed

    def _static(self) -> dict[str, Any]:
        return {"use_vq": self._runtime.use_vq,
                "threshold": self._runtime.vq_adaptive_threshold if self._runtime.use_vq else None}

    # ----------------------------------------------------------------- computing

    def forward(self, tokens: Any) -> jax.Array:
        """Logits ``[batch, seq, vocab]`` (float32) for integer ``tokens [batch, seq]``."""
        return self._forward(self.params, self._tokens(tokens), **self._static())

    def loss(self, batch: Any) -> LossParts:
        """The training loss on ``batch`` (``{"tokens": [B, S], "mask": [B, S]}``
        or a token array), with each of its parts; see :class:`LossParts`."""
        return self._loss(self.params, self._batch(batch), **self._static())

    def generate(self, prompt: Any, max_new_tokens: int, *, seed: int = 0,
                 prompt_mask: Any = None) -> jax.Array:
        """``prompt [batch, len]`` followed by ``max_new_tokens`` generated tokens.

        Uses a cache: one prefill over the prompt, then one cached step per
        token (keys and values for attention blocks, a constant-size recurrent
        state and conv window for ``ssm`` blocks, the long conv's input history
        for ``hyena`` blocks). The config's ``temperature`` picks the token: 0 takes the
        argmax, otherwise a sample from ``softmax(logits / temperature)``
        drawn from ``seed`` (the same seed gives the same tokens).
        ``prompt_mask [batch, len]`` (bool) batches prompts of different
        lengths: each left-padded to ``len``, False on its padding, which no
        token attends to (rotary positions are relative, so the shift leaves
        every attention score as it was, up to rounding).
        """
        if max_new_tokens < 1:
            raise ValueError(f"{max_new_tokens=} must be at least 1")
        prompt = self._tokens(prompt, "prompt")
        if prompt.shape[1] + max_new_tokens > self.spec.max_seq_len:
            raise ValueError(f"prompt length {prompt.shape[1]} + {max_new_tokens=} exceeds "
                             f"max_seq_length={self.spec.max_seq_len}")
        temperature = jnp.asarray(self._runtime.temperature, jnp.float32)
        if prompt_mask is not None:
            prompt_mask = jnp.asarray(prompt_mask, bool)
            if prompt_mask.shape != prompt.shape:
                raise ValueError(f"prompt_mask shape {list(prompt_mask.shape)} differs from the "
                                 f"prompt's {list(prompt.shape)}")
            prompt_mask = self._place(prompt_mask)
        return self._generate(self.params, prompt, jax.random.key(seed), temperature, prompt_mask,
                              max_new_tokens=max_new_tokens, **self._static())

    def init_codebook(self, batch: Any, *, seed: int = 0) -> None:
        """Set the VQ codebook to hidden states of ``batch`` at the bottleneck.

        Randomly initialized codes lie far from every hidden state, so the
        adaptive threshold bypasses all of them until the codebook loss has
        pulled codes close; codes drawn from real hidden states are used from
        the first step (the data initialization VQ codecs use).
        """
        if not self.spec.use_vq:
            raise ValueError("this model has no VQ codebook (built with use_vq = false)")
        tokens = self._batch(batch)["tokens"]
        before = (jax.jit if self.policy.jit else _op_by_op)(self._net.before_bottleneck)
        rows = before(self.params, tokens).reshape(-1, self.spec.d_model)
        codes = self.spec.vq_codes
        chosen = jax.random.choice(jax.random.key(seed), rows.shape[0], (codes,),
                                   replace=rows.shape[0] < codes)
        codebook = rows[chosen].astype(self.params["codebook"].dtype)
        self.params = {**self.params,
                       "codebook": jax.device_put(codebook, self._param_shardings["codebook"])}

    # ----------------------------------------------------------------- training

    @property
    def opt_state(self) -> Any:
        """The optimizer state (created on first use)."""
        if self._opt_state is None:
            self._opt_state = jax.jit(self._optimizer.init,
                                      out_shardings=self._state_shardings)(self.params)
        return self._opt_state

    def train_step(self, batch: Any) -> dict[str, jax.Array]:
        """One optimizer step on ``batch``; returns the loss parts, gradient norm and
        learning rate. With :meth:`checkpoint_to` set, saves every
        ``save_checkpoint_steps`` steps. ``gradient_checkpointing`` recomputes
        each block's activations in the backward pass instead of storing them."""
        args = (self.params, self.opt_state, self._batch(batch), jnp.asarray(self.step, jnp.int32))
        static = self._train_static()
        ahead = self._compiled_train
        if ahead is not None and ahead[0] == static and _same_structure(args[2], ahead[1]):
            params, opt_state, metrics = ahead[2](*args)
        else:
            params, opt_state, metrics = self._train(*args, **static)
        self.params, self._opt_state = params, opt_state
        self.step += 1
        if self._checkpoints is not None:
            self._checkpoints.maybe_save(self.step, self.training_state())
        return metrics

    def _train_static(self) -> dict[str, Any]:
        return {"remat": self._remat, "train": True, **self._static()}

    def train_step_program(self, batch_shape: tuple[int, int]) -> tuple[Any, tuple, dict[str, Any]]:
        """The train step ahead of time: its jitted function, the abstract arguments
        (shapes, dtypes, shardings) it takes for token batches of ``batch_shape``
        in the order :meth:`train_step` passes them, and its static arguments for
        the current runtime settings."""
        def abstract(x: Any) -> jax.ShapeDtypeStruct:
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)

        data = self.mesh.shape["data"]
        tokens = NamedSharding(self.mesh, P("data" if batch_shape[0] % data == 0 else None))
        args = (jax.tree.map(abstract, self.params), jax.tree.map(abstract, self.opt_state),
                {"tokens": jax.ShapeDtypeStruct(tuple(batch_shape), jnp.int32, sharding=tokens)},
                jax.ShapeDtypeStruct((), jnp.int32))
        return self._train, args, self._train_static()

    def use_compiled_train_step(self, compiled: Any, args: tuple, static: dict[str, Any]) -> None:
        """Run :meth:`train_step` through ``compiled``, an executable of
        :meth:`train_step_program`'s ``args`` and ``static``, while the runtime
        settings are those and the batch has that structure (otherwise the
        jitted step runs, compiling what it needs)."""
        self._compiled_train = (dict(static), args[2], compiled)

    def train_step_memory(self, batch: Any) -> Any:
        """XLA's memory analysis of the compiled train step for ``batch``'s shape
        (``argument``, ``output``, ``temp``, ``alias`` sizes in bytes), to set beside the
        plan's estimate (``plan.memory``). Compiles the step once more, ahead of time."""
        lowered = self._train.lower(
            self.params, self.opt_state, self._batch(batch), jnp.asarray(self.step, jnp.int32),
            remat=self._remat, train=True, **self._static())
        return lowered.compile().memory_analysis()

    # ----------------------------------------------------------------- checkpoints

    def checkpoint_to(self, directory: Any) -> None:
        """Save checkpoints into ``directory`` as the config's ``[training]`` says:
        every ``save_checkpoint_steps``, keeping ``keep_checkpoint_max``,
        compressed if ``checkpoint_compression``, in the background if
        ``async_checkpointing`` (see :class:`capibara.model.checkpoint.CheckpointManager`)."""
        from capibara.model.checkpoint import CheckpointManager

        c = self._config
        self.close_checkpoints()
        self._checkpoints = CheckpointManager(
            directory, save_every=c.save_checkpoint_steps, keep_max=c.keep_checkpoint_max,
            compress=c.checkpoint_compression, asynchronous=c.async_checkpointing)

    def training_state(self) -> dict[str, Any]:
        """What a checkpoint holds: ``{"params", "opt_state", "step"}``."""
        return {"params": self.params, "opt_state": self.opt_state,
                "step": np.asarray(self.step, np.int64)}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        """Adopt a state of :meth:`training_state`'s structure (a restored checkpoint)."""
        self.params, self._opt_state = state["params"], state["opt_state"]
        self.step = int(state["step"])

    def _manager(self):
        if self._checkpoints is None:
            raise ValueError("no checkpoint directory: call model.checkpoint_to(directory) first")
        return self._checkpoints

    def save_checkpoint(self) -> None:
        """Save parameters, optimizer state and step now (see :meth:`checkpoint_to`)."""
        self._manager().save(self.step, self.training_state())

    def restore_checkpoint(self, step: int | None = None) -> int:
        """Load a checkpoint (default: the newest) into this model; return its step.

        A checkpoint whose arrays differ from this model's (another shape,
        dtype or structure) is refused with a :class:`ConfigError` naming them.
        """
        self.load_training_state(self._manager().restore(self.training_state(), step))
        return self.step

    def wait_for_checkpoints(self) -> None:
        """Block until a background checkpoint write has finished."""
        if self._checkpoints is not None:
            self._checkpoints.wait()

    def close_checkpoints(self) -> None:
        """Finish any background write and release the checkpoint directory."""
        if self._checkpoints is not None:
            self._checkpoints.close()
            self._checkpoints = None

    # ----------------------------------------------------------------- configuration

    def get_current_config(self) -> Any:
        """A snapshot copy of the model's configuration; changing it changes nothing here."""
        return copy.copy(self._config)

    def apply_config_updates(self, config: Any) -> None:
        """Adopt ``config``'s runtime-mutable fields, all or nothing.

        ``config`` is validated first (every cross-field rule) and refused
        if it has errors. Every field that differs from the model's current
        config must be runtime-mutable: a changed shape, device or training
        field is refused with an error naming each, since only a rebuilt model
        can honour it. Turning ``use_vq`` on for a model built without a
        codebook is refused too (the bypass cannot create one). Only what the change touches is
        compiled again: a new ``temperature`` compiles nothing.
        """
        from capibara.config.validate import check_config

        check_config(config)
        refused = live_update_diagnostics(self._config, config, built_with_vq=self.spec.use_vq)
        if refused:
            raise ConfigError([replace(d, notes=d.notes + ("apply_config_updates changed nothing",))
                               for d in refused])
        runtime = RuntimeSettings.from_config(config)
        self._config, self._runtime = copy.copy(config), runtime

    def compiled_counts(self) -> dict[str, int]:
        """How many programs each compiled function holds (one per static setting and
        shape); all 0 when the plan says ``jit = false``."""
        return {name: fn._cache_size() if self.policy.jit else 0 for name, fn in (
            ("forward", self._forward), ("loss", self._loss), ("generate", self._generate),
            ("train_step", self._train))}
