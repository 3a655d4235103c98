"""``capibara run PLAN``: load a plan, compile its kernels, run them.

    capibara run PLAN [--benchmark] [--repeat N] [--generate N] [--no-warmup]
    capibara run PLAN --generate N --checkpoint RUN_DIR [--prompt TEXT | --prompt-ids 1,2,3]
    capibara run PLAN --coordinator HOST:PORT --num-processes N --process-id I

Runs each kernel of the plan on random inputs of the plan's shapes and prints
the time per call, the achieved GFLOP/s (compute-bound families) or GB/s
(bandwidth-bound ones), and a digest of the output (equal across runs of one
plan on one machine). ``--benchmark`` reports the median of ``--repeat``
calls after a warm-up call. ``--generate N`` builds the plan's model and
generates N tokens, from the weights of a training run's newest checkpoint
with ``--checkpoint`` (a text ``--prompt`` uses the run's tokenizer). With ``--coordinator`` the process joins a
``jax.distributed`` job and all-reduces over the global mesh of every
process's devices, checking the sum.

Before JAX starts, the plan's process settings apply
(:mod:`capibara.runtime.environment`): a GPU plan's memory variables,
``jax_debug_mode``'s NaN/Inf checks, a ``jax.profiler`` trace into
``--run-dir`` (``trace_execution``, ``profile_performance``,
``performance_profiling``), the ``capibara`` logger's level and JSON lines
(``log_level``, ``debug_mode``, ``structured_logging``), ``fast_startup`` as
``--no-warmup``, and ``distributed_training``/``world_size``/``local_rank`` as the
defaults of ``--num-processes``/``--process-id`` (the flags win; without
``--coordinator`` JAX looks for a cluster manager).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any, TextIO

from capibara.cli.output import print_diagnostics
from capibara.diagnostics import ConfigError

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2
#: ``--generate`` continues a fixed prompt of this many tokens.
PROMPT_LENGTH = 8

def _log() -> Any:
    """The logger of a run's events, at the plan's ``log_level`` (JSON lines with
    ``structured_logging``); ``logging`` is imported only when a run starts."""
    import logging

    return logging.getLogger("capibara.run")


def add_verb(verbs: Any, add_message_format) -> None:
    run = verbs.add_parser("run", help="load a plan, compile and run its kernels (or generate)")
    run.add_argument("plan", metavar="PLAN")
    run.add_argument("--benchmark", action="store_true",
                     help="time each kernel: median of --repeat calls after a warm-up call")
    run.add_argument("--repeat", type=int, default=5, metavar="N",
                     help="with --benchmark: timed calls per kernel (default 5)")
    run.add_argument("--generate", type=int, metavar="N",
                     help="build the plan's model and generate N tokens")
    run.add_argument("--checkpoint", metavar="RUN_DIR",
                     help="with --generate: the weights of a training run's newest checkpoint")
    prompt = run.add_mutually_exclusive_group()
    prompt.add_argument("--prompt", metavar="TEXT",
                        help="with --generate: a text prompt, encoded by the run's tokenizer")
    prompt.add_argument("--prompt-ids", metavar="I,J,...",
                        type=lambda text: [int(i) for i in text.split(",") if i.strip()],
                        help="with --generate: the prompt as token ids")
    run.add_argument("--no-warmup", action="store_true", help="skip AOT compilation")
    run.add_argument("--coordinator", metavar="HOST:PORT",
                     help="join a jax.distributed job whose process 0 listens here")
    run.add_argument("--num-processes", type=int, metavar="N",
                     help="processes in the job (default: the plan's `world_size` when "
                          "`distributed_training` is on)")
    run.add_argument("--process-id", type=int, metavar="I",
                     help="this process's index, 0 to N-1 (default: the plan's `local_rank` "
                          "when `distributed_training` is on)")
    run.add_argument("--run-dir", metavar="DIR",
                     help="where a profiler trace goes when the plan asks for one "
                          "(`trace_execution`, `profile_performance`, `performance_profiling`); "
                          "default runs/PLAN-STEM")
    add_message_format(run)
    # glibc reads its tunables at start-up: the command re-executes itself with
    # huge pages for XLA's buffers before doing anything (capibara.runtime.hugepages).
    run.set_defaults(run=run_plan, huge_pages=True)


# --------------------------------------------------------------------------- arguments


def usage_error(args: argparse.Namespace) -> str | None:
    """What is wrong with ``run``'s arguments on their own (before any plan is
    read), as one line, or ``None``; the caller exits 2 with it."""
    if args.repeat < 1:
        return "--repeat must be at least 1"
    if args.generate is not None and args.generate < 1:
        return "--generate must be at least 1 token"
    distributed = (args.coordinator, args.num_processes, args.process_id)
    if any(value is not None for value in distributed):
        # --coordinator may be left out: the plan's distributed fields give the other two,
        # and without it JAX looks for a cluster manager (SLURM, Open MPI, Kubernetes).
        if args.coordinator is not None and (args.num_processes is None or args.process_id is None):
            return "--coordinator, --num-processes and --process-id go together"
        if (args.num_processes is None) != (args.process_id is None):
            return "--num-processes and --process-id go together"
        if args.num_processes is not None and args.num_processes < 1:
            return "--num-processes must be at least 1"
        if args.num_processes is not None and not 0 <= args.process_id < args.num_processes:
            return (f"--process-id must be between 0 and {args.num_processes - 1} "
                    f"(--num-processes {args.num_processes})")
        if args.coordinator is not None:
            return coordinator_error(args.coordinator)
    return None


_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


def coordinator_error(address: str) -> str | None:
    """Why ``address`` is not a ``HOST:PORT`` this machine can reach, or ``None``."""
    import ipaddress
    import socket

    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit() or not 1 <= int(port) <= 65535:
        return "--coordinator wants HOST:PORT with a port from 1 to 65535 (e.g. 127.0.0.1:8476)"
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        if not (len(host) <= 253 and _HOST_NAME.fullmatch(host)):
            return "--coordinator wants HOST:PORT, and its host is not a host name or IP address"
        try:
            socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return "--coordinator: its host name does not resolve on this machine"
    return None


def generate_error(tokens: int, prompt_length: int, max_seq_length: int) -> str | None:
    """Why the plan's model cannot generate ``tokens`` after a prompt, or ``None``."""
    room = max_seq_length - prompt_length
    if tokens > room:
        return (f"--generate {tokens} does not fit: the model holds {max_seq_length} tokens "
                f"(max_seq_length) and the prompt takes {prompt_length}, so at most "
                f"{max(room, 0)} can be generated")
    return None


def _print_errors(error: ConfigError, fmt: str) -> None:
    print_diagnostics(error.diagnostics, fmt, sys.stderr)


def _rate(amount: float, unit: str, seconds: float) -> str:
    if unit == "FLOP":
        return f"{amount / seconds / 1e9:9.1f} GFLOP/s"
    return f"{amount / seconds / 1e9:9.1f} GB/s"


def _distributed(args: argparse.Namespace, out: TextIO) -> int:
    """Join the job, then all-reduce each process's id+1 over every device."""
    import jax

    # CPU devices of different processes talk through gloo (jax's CPU collectives).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    no_coordinator = ("pass --coordinator HOST:PORT (process 0 listens there), or run under a "
                      "cluster manager JAX detects (SLURM, Open MPI, Kubernetes)")
    if args.coordinator is None and _cluster_manager() is False:
        raise ConfigError([distributed_diagnostic(
            args, f"cannot join a {args.num_processes}-process job: no coordinator",
            notes=("no --coordinator was given, and no cluster manager JAX knows is in the "
                   "environment",), help=no_coordinator)])
    try:
        jax.distributed.initialize(args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)
    except Exception as failed:  # unreachable, refused, timed out: the network's, not ours
        first = str(failed).strip().splitlines()[:1]
        where = f" at {args.coordinator}" if args.coordinator else ""
        sys.stderr.write(f"error: could not join the jax.distributed job{where}"
                         f"{': ' + first[0] if first else ''}\n")
        return EXIT_ERRORS
    for diagnostic in distributed_disagreements(args, jax.process_count(), jax.process_index()):
        print_diagnostics([diagnostic], args.message_format, sys.stderr)
    try:
        import numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

        from capibara.kernels.collective import collective
        from capibara.runtime.loader import load_plan

        compiled = load_plan(args.plan)
        specs = [k.spec for k in compiled.kernels if k.spec.family == "collective"]
        implementation = specs[0].implementation if specs else "reference"
        devices = jax.devices()
        mesh = Mesh(np.array(devices), ("data",))
        local = np.full((jax.local_device_count(), 4), args.process_id + 1.0, np.float32)
        x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local)
        y = collective("all_reduce", mesh, "data", implementation=implementation)(x)
        got = float(np.asarray(y.addressable_shards[0].data).ravel()[0])
        expected = float(sum((p + 1) * jax.local_device_count() for p in range(args.num_processes)))
        status = "ok" if got == expected else "MISMATCH"
        out.write(f"process {args.process_id}/{args.num_processes}: all_reduce "
                  f"(collective/{implementation}) over {len(devices)} devices: sum {got:g}, "
                  f"expected {expected:g}: {status}\n")
        return EXIT_OK if got == expected else EXIT_ERRORS
    finally:
        jax.distributed.shutdown()


def run_plan(args: argparse.Namespace, out: TextIO) -> int:
    if (problem := usage_error(args)) is not None:
        sys.stderr.write(f"error: {problem}\n")
        return EXIT_USAGE
    settings = _process_setup(args, out)
    if isinstance(settings, int):
        return settings
    from capibara.runtime.environment import jax_flags, profiling

    with jax_flags(settings) as notes, profiling(settings, _run_dir(args)) as traced:
        for note in notes:
            out.write(f"note       {note}\n")
        status = _run_plan(args, out, settings)
    if traced is not None:
        out.write(f"trace      jax.profiler trace of this run in {traced} "
                  f"({', '.join(settings.trace_fields)})\n")
    return status


def _run_dir(args: argparse.Namespace) -> str:
    from pathlib import Path

    stem = Path(args.plan).name.removesuffix(".json").removesuffix(".msgpack").removesuffix(".plan")
    return args.run_dir or str(Path("runs") / stem)


def _process_setup(args: argparse.Namespace, out: TextIO) -> Any:
    """Read the plan (JAX-free) and apply what it asks of the process before JAX
    starts (capibara.runtime.environment): GPU memory variables, logging, and the
    distributed defaults and warm-up switch for the flags left unset. Returns the
    settings, or an exit status when the plan cannot be read."""
    from capibara.plan import load_plan_file
    from capibara.runtime.environment import apply_environment, configure_logging, process_settings

    try:
        plan = load_plan_file(args.plan)
    except ConfigError as error:
        _print_errors(error, args.message_format)
        return EXIT_ERRORS
    settings = process_settings(plan)
    for note in apply_environment(settings):
        out.write(f"note       {note}\n")
    configure_logging(settings)
    if settings.num_processes is not None and settings.num_processes > 1:
        if args.num_processes is None:
            args.num_processes = settings.num_processes
        if args.process_id is None:
            args.process_id = settings.process_id
    args.expected_processes = (settings.num_processes, settings.process_id, plan)
    if settings.skip_warmup and not args.no_warmup:
        args.no_warmup = True
        out.write("note       fast_startup: kernels compile on first call, not ahead of time\n")
    return settings


def _run_plan(args: argparse.Namespace, out: TextIO, settings: Any) -> int:
    # --num-processes/--process-id (or the plan's distributed fields, their defaults)
    # without --coordinator: JAX looks for a cluster manager, else R303.
    if args.coordinator is not None or (args.num_processes or 0) > 1:
        try:
            return _distributed(args, out)
        except ConfigError as error:
            _print_errors(error, args.message_format)
            return EXIT_ERRORS
    import jax  # first, so "loaded in" below is the plan's time, not JAX's import

    from capibara.runtime.loader import load_plan

    try:
        start = time.perf_counter()
        compiled = load_plan(args.plan)
        loaded = time.perf_counter() - start
    except ConfigError as error:
        _print_errors(error, args.message_format)
        return EXIT_ERRORS
    plan = compiled.plan
    _log().info("loaded plan %s for %s on %s in %.0f ms", plan.digest[:19], plan.target.name,
              compiled.platform, loaded * 1e3)
    out.write(f"plan       {plan.digest[:19]}… for {plan.target.name} on {compiled.platform} "
              f"(mesh {list(plan.mesh.shape)}), loaded in {loaded * 1e3:.0f} ms\n")
    for note in compiled.notes:
        out.write(f"note       {note}\n")
    if compiled.cache is not None:
        out.write(f"cache      {compiled.cache}\n")
    if compiled.platform == "cpu":
        from capibara.runtime.hugepages import current

        out.write(f"memory     {current().detail}\n")
    if args.generate is not None:  # the model compiles its own step functions
        custom_prompt = args.prompt is not None or args.prompt_ids is not None
        problem = None if custom_prompt else generate_error(  # a given prompt is checked once encoded
            args.generate, PROMPT_LENGTH, plan.model.max_seq_length)
        if problem is not None:
            sys.stderr.write(f"error: {problem}\n")
            return EXIT_USAGE
        return _generate(compiled, args.generate, out, args)
    if not args.no_warmup:
        timings = compiled.warmup(progress=sys.stderr)
        out.write(f"warmup     {sum(timings.values()):.2f} s for {len(timings)} kernels\n")
    for kernel in compiled.kernels:
        inputs = kernel.example_inputs()
        fn = kernel.compiled or kernel.fn
        # first call: compile if not warmed up; its result's digest lets runs be compared
        digest = _digest(jax.block_until_ready(fn(*inputs)))
        times = []
        for _ in range(args.repeat if args.benchmark else 1):
            if kernel.donates:  # the call consumed its input: make a fresh one, untimed
                inputs = jax.block_until_ready(kernel.example_inputs())
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*inputs))
            times.append(time.perf_counter() - t0)
        seconds = sorted(times)[len(times) // 2]  # the median (upper, for an even count)
        _log().debug("kernel %s: %d calls, median %.3f ms", kernel.spec.name, len(times),
                   seconds * 1e3)
        amount, unit = kernel.work()
        variant = f"{kernel.spec.family}/{kernel.implementation}"
        out.write(f"{kernel.spec.name:20s} {variant:24s} "
                  f"{seconds * 1e3:9.2f} ms {_rate(amount, unit, seconds)}  out {digest}\n")
    return EXIT_OK


def _cluster_manager() -> bool | None:
    """Whether a cluster manager JAX auto-detects is in the environment (``None``: unknown,
    the detection is JAX's private API and may move)."""
    try:
        from jax._src.clusters import ClusterEnv

        return any(cluster.is_env_present() for cluster in ClusterEnv._cluster_types)
    except Exception:  # any change in JAX's internals: let initialize() decide
        return None


#: The plan's distributed fields disagree with the job JAX joined (or could not join).
DISTRIBUTED_MISMATCH = "R303"


def distributed_diagnostic(args: argparse.Namespace, message: str, *, warning: bool = False,
                           notes: tuple[str, ...] = (), help: str | None = None) -> Any:
    """A diagnostic about the distributed fields, naming where the plan's values came from."""
    from capibara.diagnostics import Diagnostic

    _, _, plan = getattr(args, "expected_processes", (None, None, None))
    notes = list(notes)
    if plan is not None:
        for path in ("deployment.distributed_training", "deployment.world_size",
                     "deployment.local_rank"):
            notes.append(f"`{path}` = {str(plan.config[path]).lower()} "
                         f"({plan.provenance.get(path, 'unknown')})")
    make = Diagnostic.warning if warning else Diagnostic.error
    return make(DISTRIBUTED_MISMATCH, message, notes=notes, help=help)


def distributed_disagreements(args: argparse.Namespace, count: int, index: int) -> list[Any]:
    """Warnings where the job JAX joined differs from the plan's ``world_size``/``local_rank``
    (the flags won; the plan's fields are only their defaults)."""
    expected, rank, _ = getattr(args, "expected_processes", (None, None, None))
    if expected is None:
        return []
    found = []
    if count != expected:
        found.append(distributed_diagnostic(
            args, f"JAX sees {count} processes, the plan's `world_size` says {expected}",
            warning=True, help="the command line wins; set `deployment.world_size` to match"))
    if index != rank:
        found.append(distributed_diagnostic(
            args, f"this is process {index}, the plan's `local_rank` says {rank}", warning=True,
            help="the command line wins; set `deployment.local_rank` to match"))
    return found


def _digest(result: Any) -> str:
    """A short hash of every output array's bytes (the same inputs and executable
    give the same digest in every process)."""
    import hashlib

    import jax
    import numpy as np

    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(result):
        digest.update(np.asarray(leaf).tobytes())
    return digest.hexdigest()[:12]


def _generate(compiled: Any, tokens: int, out: TextIO, args: argparse.Namespace) -> int:
    import numpy as np

    from capibara.diagnostics import escape
    from capibara.model.facade import Model

    start = time.perf_counter()
    model = Model.from_plan(compiled)
    built = time.perf_counter() - start
    tokenizer = None
    if args.checkpoint or args.prompt is not None or args.prompt_ids is not None:
        from capibara.train.inference import prompt_ids, restore_weights, run_tokenizer

        try:
            if args.checkpoint:
                out.write(f"weights    step {restore_weights(model, args.checkpoint)} of "
                          f"{escape(args.checkpoint)}\n")
                tokenizer = run_tokenizer(args.checkpoint)
            if args.prompt is not None or args.prompt_ids is not None:
                ids = prompt_ids(args.prompt or "", args.prompt_ids, tokenizer, model.spec.vocab_size)
            else:
                ids = [i % model.spec.vocab_size for i in range(1, PROMPT_LENGTH + 1)]
        except ConfigError as error:
            _print_errors(error, args.message_format)
            return EXIT_ERRORS
        if len(ids) + tokens > model.spec.max_seq_len:
            sys.stderr.write(f"error: the prompt ({len(ids)} tokens) and --generate {tokens} exceed "
                             f"the model's max_seq_length {model.spec.max_seq_len}\n")
            return 2
        prompt = np.asarray([ids], np.int32)
    else:
        prompt = np.arange(1, PROMPT_LENGTH + 1, dtype=np.int32)[None, :] % model.spec.vocab_size
    model.generate(prompt, tokens)  # the first call compiles prefill and the decode loop
    start = time.perf_counter()
    result = np.asarray(model.generate(prompt, tokens))  # np.asarray waits for the device
    seconds = time.perf_counter() - start
    generated = result[0, prompt.shape[1]:].tolist()
    out.write(f"model      built in {built:.2f} s\n")
    for note in model.notes:
        out.write(f"note       {note}\n")
    out.write(f"generate   {tokens} tokens in {seconds:.2f} s ({tokens / seconds:.1f} tokens/s): "
              f"{generated}\n")
    if tokenizer is not None:  # escaped: generated text never drives the terminal
        out.write(f'text       "{escape(tokenizer.decode(result[0].tolist()))}"\n')
    return EXIT_OK
