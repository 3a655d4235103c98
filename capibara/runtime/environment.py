"""What a plan asks of the process around JAX: GPU memory, debug checks, profiling,
logging and the distributed defaults.

``capibara run`` (and the ``train`` and ``serve`` verbs) call these in order::

    settings = process_settings(plan)           # JAX-free: read the plan's fields
    notes = apply_environment(settings)         # before JAX initializes a backend
    configure_logging(settings)
    import jax
    with jax_flags(settings) as notes, profiling(settings, run_directory):
        ...                                     # NaN/Inf checks and a trace when asked

Each returns (or the caller prints) one note per thing it did, so the load
notes say what took effect. This module imports no JAX at import time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, MutableMapping

__all__ = ["ProcessSettings", "process_settings", "apply_environment", "configure_logging",
           "jax_flags", "profiling", "LOGGER_NAME", "JsonLineFormatter"]

#: The logger the package logs through; its level and format follow the plan.
LOGGER_NAME = "capibara"

#: The JAX flags ``jax_debug_mode`` turns on: NaN and Inf checks after every operation.
DEBUG_FLAGS = ("jax_debug_nans", "jax_debug_infs")


@dataclass(frozen=True)
class ProcessSettings:
    """The process-level settings a plan records (see the module docstring).

    ``environment``: variables JAX reads when it starts a backend
    (``XLA_PYTHON_CLIENT_MEM_FRACTION`` from ``gpu_memory_fraction``,
    ``XLA_PYTHON_CLIENT_PREALLOCATE`` from ``gpu_memory_growth``).
    ``jax_flags``: ``jax.config`` switches (``jax_debug_mode``). ``trace``: write
    a ``jax.profiler`` trace (``trace_execution``, ``profile_performance`` or
    ``performance_profiling``). ``log_level`` (``DEBUG`` under ``debug_mode``)
    and ``structured_logging`` (JSON lines). ``num_processes``/``process_id``:
    the defaults ``distributed_training``, ``world_size`` and ``local_rank``
    give a multi-process run (``None`` without ``distributed_training``).
    ``skip_warmup``: ``fast_startup``. ``platform`` is the plan's target platform.
    """

    platform: str
    environment: Mapping[str, str] = field(default_factory=dict)
    jax_flags: Mapping[str, bool] = field(default_factory=dict)
    trace: bool = False
    trace_fields: tuple[str, ...] = ()
    log_level: str = "INFO"
    structured_logging: bool = True
    num_processes: int | None = None
    process_id: int | None = None
    skip_warmup: bool = False


def _value(plan: Any, name: str) -> Any:
    from capibara.config.fields import FIELD_BY_NAME

    return plan.config[FIELD_BY_NAME[name].path]


def process_settings(plan: Any) -> ProcessSettings:
    """The :class:`ProcessSettings` of a :class:`~capibara.plan.Plan` (JAX-free)."""
    environment = {
        "XLA_PYTHON_CLIENT_MEM_FRACTION": f"{float(_value(plan, 'gpu_memory_fraction')):g}",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false" if _value(plan, "gpu_memory_growth") else "true",
    }
    debug = bool(_value(plan, "jax_debug_mode"))
    tracing = tuple(name for name in ("trace_execution", "profile_performance",
                                      "performance_profiling") if _value(plan, name))
    distributed = bool(_value(plan, "distributed_training"))
    return ProcessSettings(
        platform=plan.target.platform, environment=environment,
        jax_flags={flag: True for flag in DEBUG_FLAGS} if debug else {},
        trace=bool(tracing), trace_fields=tracing,
        log_level="DEBUG" if _value(plan, "debug_mode") else str(_value(plan, "log_level")),
        structured_logging=bool(_value(plan, "structured_logging")),
        num_processes=int(_value(plan, "world_size")) if distributed else None,
        process_id=int(_value(plan, "local_rank")) if distributed else None,
        skip_warmup=bool(_value(plan, "fast_startup")))


def _backend_started() -> bool:
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return bool(xla_bridge.backends_are_initialized())


def apply_environment(settings: ProcessSettings,
                      environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Set the GPU memory variables before JAX starts a backend; return the load notes.

    Only for a GPU plan (no other backend reads them). A variable the user
    already set wins (it is theirs, and JAX reads it anyway). Once a backend
    has started the variables can no longer act, and the note says so
    instead of pretending.
    """
    if settings.platform != "gpu":
        return []
    if _backend_started():
        return ["gpu_memory_fraction/gpu_memory_growth not applied: JAX had already started "
                "its backend in this process"]
    notes = []
    for name, value in settings.environment.items():
        if name in environ and environ[name] != value:
            notes.append(f"{name}={environ[name]} from the environment wins over the plan's {value}")
            continue
        environ[name] = value
        notes.append(f"{name}={value} ({_FROM[name]})")
    return notes


_FROM = {"XLA_PYTHON_CLIENT_MEM_FRACTION": "gpu_memory_fraction",
         "XLA_PYTHON_CLIENT_PREALLOCATE": "gpu_memory_growth"}


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                 + f".{int(record.msecs):03d}Z",
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


_HANDLER_MARK = "_capibara_handler"


def configure_logging(settings: ProcessSettings, stream: Any = None) -> logging.Logger:
    """The ``capibara`` logger at the plan's level, writing to ``stream`` (stderr),
    as JSON lines with ``structured_logging``; calling again replaces its handler."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonLineFormatter() if settings.structured_logging else
                         logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(settings.log_level)
    logger.propagate = False
    return logger


@contextlib.contextmanager
def jax_flags(settings: ProcessSettings) -> Iterator[list[str]]:
    """The plan's ``jax.config`` switches for the block (imports JAX), restored after
    it so an in-process caller keeps its own; yields the notes to print."""
    if not settings.jax_flags:
        yield []
        return
    import jax

    before = {flag: getattr(jax.config, flag) for flag in settings.jax_flags}
    for flag, value in settings.jax_flags.items():
        jax.config.update(flag, value)
    try:
        yield [f"jax_debug_mode: {', '.join(settings.jax_flags)} on (every operation is "
               "checked, and slower)"]
    finally:
        for flag, value in before.items():
            jax.config.update(flag, value)


@contextlib.contextmanager
def profiling(settings: ProcessSettings, directory: str | os.PathLike[str]) -> Iterator[Path | None]:
    """A ``jax.profiler`` trace of the block into ``directory`` when the plan asks
    for one; yields the directory (``None`` when not tracing)."""
    if not settings.trace:
        yield None
        return
    import jax

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    with jax.profiler.trace(str(path)):
        yield path
