"""The training job: the plan's model, grain batches, orbax checkpoints, a clean stop.

:func:`run` builds the plan's model (its mesh, remat, precision, donation
and kernels), restores the newest checkpoint of the run directory with the
data position saved beside it, compiles the train step ahead of the first
step or loads it from the plan's kernel cache, where an earlier job of the
same plan left it (:mod:`capibara.train.compiled_step`; the job says which
and logs a ``compile`` event), and trains: every step is the plan's
``train_step`` on this process's share of the global batch; every
``log_every`` steps a record; every ``eval_every`` steps the mean loss on
the held-out split; every ``save_checkpoint_steps`` a checkpoint. SIGINT or
SIGTERM stops it after the current step, with a checkpoint saved first, so
running the same command again continues where it stopped.

With several processes (``jax.distributed``), each process reads its own
windows of every global batch and the batch is assembled across them; a
SIGTERM to any process is agreed on through JAX's preemption sync point, so
all processes save the same step and stop together.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from capibara.train.progress import ProgressLine, RunLog
from capibara.train.setup import CHECKPOINTS, RUN_LOG, RUN_PLAN, TrainSetup

__all__ = ["TrainResult", "run", "memory_comparison"]


@dataclass
class TrainResult:
    """What a run did: the step it started from and reached, the losses it logged,
    and the signal that stopped it (``None`` when it ran to the end)."""

    start_step: int
    step: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    stopped_by: str | None = None
    model: Any = None
    #: How the train step was made ready: loaded from the kernel cache or compiled
    #: (``None`` when the plan runs op by op).
    step_compile: Any = None


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop finishes its step, saves and returns."""

    def __init__(self, signals: tuple[int, ...], *, forward_to: int | None = None) -> None:
        self.signal: int | None = None
        self._forward_to = forward_to
        self._previous = {}
        for number in signals:
            self._previous[number] = signal.signal(number, self._handle)

    def _handle(self, number, frame) -> None:
        if self.signal is not None and number == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: the user does not want to wait
        self.signal = number
        if self._forward_to is not None:
            os.kill(os.getpid(), self._forward_to)

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def memory_comparison(plan: Any, analysis: Any) -> str:
    """One line: the plan's per-device estimate of a training step beside XLA's own account
    (arguments + outputs + temporaries − donated buffers reused for outputs)."""
    mib = 1 << 20
    xla = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
           + analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)
    estimate = plan.memory.total
    return (f"memory     plan estimate {estimate / mib:.1f} MiB per device; XLA's compiled step "
            f"{xla / mib:.1f} MiB (arguments {analysis.argument_size_in_bytes / mib:.1f}, "
            f"temporaries {analysis.temp_size_in_bytes / mib:.1f}, outputs "
            f"{analysis.output_size_in_bytes / mib:.1f}, reused {analysis.alias_size_in_bytes / mib:.1f}); "
            f"estimate/XLA {estimate / xla:.2f}")


def _write_run_records(setup: TrainSetup) -> None:
    from capibara.plan import config_of_plan, write_plan_file

    setup.run_dir.mkdir(parents=True, exist_ok=True)
    if not (setup.run_dir / RUN_PLAN).exists():
        write_plan_file(setup.plan, setup.run_dir / RUN_PLAN)
    tokenizer = setup.run_dir / "tokenizer.model"  # kept with the run for generating from it
    if not tokenizer.exists():
        temp = tokenizer.with_name(".tokenizer.model.tmp")
        temp.write_bytes((setup.data_dir / setup.data.tokenizer).read_bytes())
        temp.replace(tokenizer)
    config_file = setup.run_dir / "config.toml"
    if not config_file.exists():
        text = config_of_plan(setup.plan).to_toml(full=True)
        temp = config_file.with_name(".config.toml.tmp")
        temp.write_text(f"# the resolved config of plan {setup.plan.digest}\n{text}")
        temp.replace(config_file)


def run(setup: TrainSetup, *, steps: int | None = None, log_every: int = 10,
        eval_every: int | None = None, eval_batches: int = 4, seed: int = 0,
        progress: bool | None = None, out: TextIO = sys.stderr,
        handle_signals: bool = True, show_memory: bool = False) -> TrainResult:
    """Train ``setup``'s plan on its data into its run directory (see the module doc).

    ``steps``: the step to stop at (default: the schedule's ``decay_steps``).
    ``eval_every``: default every ``save_checkpoint_steps``. ``progress``:
    draw the progress line (default: only on a terminal). ``show_memory``:
    print the plan's memory estimate beside XLA's analysis of the compiled
    step (one more compile of the step).
    """
    import grain
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P

    from capibara.model.checkpoint import CheckpointManager
    from capibara.data.source import eval_batches as held_out_batches, training_batches
    from capibara.model import Model
    from capibara.runtime import load_plan
    from capibara.train.compiled_step import prepare_train_step

    plan = setup.plan
    training = plan.training
    total = steps if steps is not None else int(training["decay_steps"])
    eval_every = eval_every or int(training["save_checkpoint_steps"])
    if total < 1 or log_every < 1 or eval_every < 1 or eval_batches < 1:
        raise ValueError(f"{total=}, {log_every=}, {eval_every=} and {eval_batches=} must be positive")
    compiled = load_plan(plan)  # the plan's compilation and kernel caches, unless it says not to
    model = Model.from_plan(compiled)
    processes, index = jax.process_count(), jax.process_index()
    primary = index == 0
    seq, global_batch = plan.model.max_seq_length, plan.batch.global_size
    if global_batch % processes:
        raise ValueError(f"the plan's global batch {global_batch} does not split over "
                         f"{processes} processes")
    if primary:
        _write_run_records(setup)
    batches = training_batches(setup.data_dir, seq_len=seq, global_batch=global_batch, seed=seed,
                               process_index=index, process_count=processes, manifest=setup.data)
    # Read ahead on a thread or two, so the step never waits for its batch.
    iterator = iter(batches.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=8)))
    held_out = held_out_batches(setup.data_dir, seq_len=seq, global_batch=global_batch,
                                batches=eval_batches, process_index=index,
                                process_count=processes, manifest=setup.data)
    sharding = NamedSharding(model.mesh, P("data") if global_batch % model.mesh.shape["data"] == 0
                             else P())

    def place(local: np.ndarray) -> jax.Array:
        return jax.make_array_from_process_local_data(sharding, local, (global_batch, seq))

    manager = CheckpointManager(
        setup.run_dir / CHECKPOINTS, save_every=int(training["save_checkpoint_steps"]),
        keep_max=int(training["keep_checkpoint_max"]),
        compress=bool(training["checkpoint_compression"]),
        asynchronous=bool(training["async_checkpointing"]), primary=primary)
    try:
        if manager.steps():
            model.load_training_state(manager.restore(model.training_state(), data_iterator=iterator))
    except BaseException:
        manager.close()  # a refused checkpoint must not keep the directory locked
        raise
    log = RunLog(setup.run_dir / RUN_LOG, enabled=primary)
    metadata = {"plan": plan.digest, "data": setup.data.digest, "seed": seed}
    if model.step:
        log.write(event="resume", step=model.step, plan=plan.digest)
    else:
        log.write(event="start", step=0, plan=plan.digest, data=setup.data.digest)
    result = TrainResult(start_step=model.step, step=model.step, model=model)
    # Compiled before the first step (or loaded: a resumed run of the same plan skips
    # tracing and compiling it), so the step's timing windows never include it.
    result.step_compile = prepare_train_step(model, compiled.executables, (global_batch, seq))
    if result.step_compile is not None and primary:
        out.write(result.step_compile.describe() + "\n")
        log.write(event="compile", step=model.step, program="train_step",
                  from_cache=result.step_compile.from_cache,
                  seconds=round(result.step_compile.seconds, 3),
                  **({"not_kept": result.step_compile.not_kept}
                     if result.step_compile.not_kept else {}))

    def evaluate() -> float:
        losses = [model.loss(place(batch)).cross_entropy for batch in held_out]
        value = float(np.mean([float(x) for x in losses]))
        result.eval_losses.append((model.step, value))
        log.write(step=model.step, eval_loss=value)
        return value

    if processes > 1:
        from jax.experimental import multihost_utils

        # SIGTERM to any process reaches all of them through the coordination service
        # (JAX's preemption notifier); Ctrl-C is turned into one, so it stops them all too.
        def stop_requested() -> bool:
            return multihost_utils.reached_preemption_sync_point(model.step)
        stop = _StopFlag((signal.SIGINT,) if handle_signals else (), forward_to=signal.SIGTERM)
    else:
        stop = _StopFlag((signal.SIGINT, signal.SIGTERM) if handle_signals else ())

        def stop_requested() -> bool:
            return stop.signal is not None

    if show_memory and primary:
        out.write(memory_comparison(plan, model.train_step_memory(
            place(np.zeros((global_batch // processes, seq), np.int32)))) + "\n")
    bar = ProgressLine(model.step, total, stream=out, enabled=progress if primary else False)
    tokens_per_step = global_batch * seq
    window_start, window_steps = time.perf_counter(), 0
    try:
        while model.step < total:
            metrics = model.train_step(place(next(iterator)))
            window_steps += 1
            if model.step % log_every == 0 or model.step == total:
                loss = float(metrics["total"])  # waits for the step: the timing window ends here
                now = time.perf_counter()
                rate = tokens_per_step * window_steps / (now - window_start)
                record = {k: float(v) for k, v in metrics.items()}
                log.write(step=model.step, loss=loss, cross_entropy=record["cross_entropy"],
                          learning_rate=record["learning_rate"], grad_norm=record["grad_norm"],
                          tokens_per_second=round(rate, 1))
                result.losses.append((model.step, loss))
                bar.update(window_steps, loss=loss, tokens_per_second=rate,
                           learning_rate=record["learning_rate"])
                window_start, window_steps = time.perf_counter(), 0
            manager.maybe_save(model.step, model.training_state(), data_iterator=iterator,
                               metadata=metadata)
            if model.step % eval_every == 0:
                bar.write(f"step {model.step}: eval loss {evaluate():.4f}")
            if stop_requested():
                result.stopped_by = signal.Signals(stop.signal).name if stop.signal else "SIGTERM"
                break
        manager.save(model.step, model.training_state(), data_iterator=iterator,
                     metadata=metadata)
        if result.stopped_by is None and (not result.eval_losses
                                          or result.eval_losses[-1][0] != model.step):
            evaluate()
        log.write(event="stop" if result.stopped_by else "finish", step=model.step,
                  signal=result.stopped_by)
    finally:
        bar.close()
        stop.restore()
        manager.close()
        log.close()
    result.step = model.step
    return result
