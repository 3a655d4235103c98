"""Kernels kept between processes as JAX exports.

JAX's persistent compilation cache skips XLA compilation in a second process,
but not tracing and lowering, which cost most of a warm ``load_plan`` +
``warmup``. This cache keeps each kernel's traced and lowered program as a
serialized :mod:`jax.export` (StableHLO and the argument layout, a flatbuffer:
reading one parses data and never runs code), so a second process that loads
the same plan skips tracing; compiling the export is then a hit in JAX's own
persistent cache beside it. (On a CPU, lowering a call of an export makes JAX
set up LAPACK, importing scipy once per process: most of a warm start's cost.)

Besides kernels it keeps other programs of a plan (:class:`Program`): the
training job keeps its whole train step here (:mod:`capibara.train.compiled_step`).

An entry is found only by a key that covers everything the program depends on
and the plan digest does not: the capibara source it is traced from (the
kernels and their loader for a kernel, the whole package for a train step),
the JAX and jaxlib versions, the backend and its version, the XLA flags and
the JAX settings that change lowering, and the devices the program runs on.
A plan's digest already covers its shapes, dtypes and parameters (it names
the directory).

An entry is trusted only when it is known to be what the kernel would trace
to: its header names the key it was written for and a checksum of its body,
the export it holds takes exactly the kernel's argument shapes and dtypes, and
the process that wrote it compiled the kernel from the written bytes, not from
what it traced. Anything else (damaged, truncated, stale, from another
version, not a regular file of this user's alone) is a miss: the kernel is
traced again and the entry replaced. Writes go through a temporary file and a
rename, so a reader never sees half an entry, and two processes writing the
same entry at once both write a whole one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

__all__ = ["ExecutableCache", "Loaded", "Program", "package_fingerprint", "source_fingerprint"]

#: Bumped when the entry layout changes; part of every key.
ENTRY_FORMAT = 3
MAGIC = b"capibara kernel export\n"
SUFFIX = ".export"
#: An exported kernel is its StableHLO (kilobytes to a few MB); anything larger is not ours.
MAX_ENTRY_BYTES = 64 << 20
MAX_HEADER_BYTES = 1 << 20


@functools.lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """A hash of the code that decides what a kernel compiles to: every module
    under ``capibara/kernels`` and the loader that binds them (~1 ms)."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    files = sorted((package / "kernels").rglob("*.py")) + [package / "runtime" / "loader.py"]
    for path in files:
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def package_fingerprint() -> str:
    """A hash of every module of the capibara package: what a train step is traced
    from reaches from the network through the kernels to the optimizer's setup."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@dataclass
class Program:
    """A jitted function of arrays the cache can keep, besides a kernel.

    ``fn`` is called with the array arguments and ``static`` (its static
    keyword arguments); ``identity`` is what, beside the parts every key
    has, decides what it compiles to (its name, the source it is traced
    from, the static arguments). ``donate_argnums`` and ``mesh`` are how the
    executable built from the saved export takes its arguments.
    """

    fn: Callable[..., Any]
    identity: tuple
    static: Mapping[str, Any] = field(default_factory=dict)
    donate_argnums: tuple[int, ...] = ()
    mesh: Any = None
    notes: list[str] = field(default_factory=list)


def _program(kernel: Any) -> Program:
    """``kernel`` as a :class:`Program` (a bound kernel, or a program already)."""
    if isinstance(kernel, Program):
        return kernel
    return Program(
        fn=kernel.fn, notes=kernel.notes, donate_argnums=(0,) if kernel.donates else (),
        mesh=getattr(kernel.sharding, "mesh", None),
        identity=(source_fingerprint(), kernel.spec.name, kernel.spec.family,
                  kernel.implementation, kernel.fallback_allowed, kernel.donates))


@dataclass(frozen=True)
class Loaded:
    """A kernel (or :class:`Program`) compiled from its export: ``compiled``
    takes and returns what the kernel does; ``notes`` were made when it was
    traced; ``not_kept`` says why the export could not be saved, if it could not."""

    compiled: Any
    notes: list[str]
    not_kept: str | None = None


# --------------------------------------------------------------------------- pytree types

_REGISTERED: set[str] = set()


def _tuple_types(tree: Any) -> list[type]:
    """The NamedTuple types in a pytree of values (the kernels' inputs and outputs)."""
    found: list[type] = []

    def walk(node: Any) -> None:
        if isinstance(node, tuple) and hasattr(type(node), "_fields"):
            if type(node) not in found:
                found.append(type(node))
        if isinstance(node, (tuple, list)):
            for child in node:
                walk(child)
        elif isinstance(node, dict):
            for child in node.values():
                walk(child)

    walk(tree)
    return found


def _type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _register(cls: type) -> None:
    """Let ``jax.export`` write and read ``cls`` (a NamedTuple) by its name."""
    from jax import export

    name = _type_name(cls)
    if name not in _REGISTERED:
        export.register_namedtuple_serialization(cls, serialized_name=name)
        _REGISTERED.add(name)


#: Packages whose NamedTuples an entry may name: capibara's kernel results, and
#: optax's optimizer states (a train step takes and returns them).
_TUPLE_PACKAGES = ("capibara.", "optax.")


def _resolve(name: str) -> type | None:
    """A NamedTuple of capibara's or optax's named in an entry, from modules
    already imported (reading an entry imports nothing); ``None`` if there is none."""
    module_name, _, qualname = name.partition(":")
    if not module_name.startswith(_TUPLE_PACKAGES) or module_name not in sys.modules:
        return None
    target: Any = sys.modules[module_name]
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if isinstance(target, type) and issubclass(target, tuple) and hasattr(target, "_fields"):
        return target
    return None


# --------------------------------------------------------------------------- the cache


@dataclass(frozen=True)
class ExecutableCache:
    """Exported kernels of one plan on one set of devices.

    ``directory`` must be private to this user (the loader checks); ``devices``
    are the devices of the plan's mesh, in mesh order.
    """

    directory: Path
    devices: Sequence[Any]

    def key(self, kernel: Any) -> str:
        """The entry name for a bound kernel or a :class:`Program` (see the module docstring)."""
        import jax
        import jaxlib

        client = self.devices[0].client
        parts = (
            ENTRY_FORMAT, jax.__version__, jaxlib.__version__,
            client.platform, client.platform_version,
            # settings that change what the same code lowers or compiles to
            os.environ.get("XLA_FLAGS", ""), os.environ.get("LIBTPU_INIT_ARGS", ""),
            jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision,
            tuple((d.id, d.device_kind) for d in self.devices),
            *_program(kernel).identity,
        )
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]

    def _path(self, kernel: Any) -> Path:
        return self.directory / f"{self.key(kernel)}{SUFFIX}"

    def load(self, kernel: Any, structs: Any) -> Loaded | None:
        """``kernel`` (a bound kernel or a :class:`Program`) compiled from its saved
        export, or ``None`` when there is no entry that matches it (the caller
        traces it and :meth:`store`\\ s it)."""
        from jax import export

        program = _program(kernel)
        body = self._read(self._path(kernel), self.key(kernel))
        if body is None:
            return None
        payload, header = body
        try:
            for name in header["tree_types"]:
                cls = _resolve(name)
                if cls is None:
                    return None
                _register(cls)
            exported = export.deserialize(bytearray(payload))
            if not self._matches(exported, structs):
                return None
            compiled = self._compile(exported, program, structs)
        except Exception:  # whole but not usable here (another JAX's, say): trace again
            return None
        return Loaded(compiled, list(header["notes"]))

    def store(self, kernel: Any, structs: Any) -> Loaded | str:
        """Trace ``kernel`` (a bound kernel or a :class:`Program`) for ``structs``
        (shapes and dtypes), save the export, and compile it from the saved bytes.
        When it cannot be kept, why (some cannot be exported: host callbacks,
        custom calls without a stable form); the caller then compiles it the
        ordinary way."""
        import jax
        from jax import export

        program = _program(kernel)
        before = len(program.notes)
        try:
            exported = export.export(program.fn, platforms=(self.devices[0].platform,))(
                *structs, **program.static)
            types = _tuple_types(structs) + _tuple_types(
                jax.tree.unflatten(exported.out_tree, exported.out_avals))
            for cls in types:
                _register(cls)
            payload = bytes(exported.serialize())
            # What this process runs is what a later one will read back.
            written = export.deserialize(bytearray(payload))
            if not self._matches(written, structs):
                raise ValueError("the export does not take the program's arguments")
            compiled = self._compile(written, program, structs)
        except ImportError as missing:  # jax.export's serialization needs flatbuffers
            del program.notes[before:]  # the ordinary compile traces (and notes) again
            return f"{missing.name or missing} is not installed (pip install 'capibara[kernel-cache]')"
        except Exception as refused:
            del program.notes[before:]
            return f"it cannot be exported: {type(refused).__name__}: {str(refused)[:200]}"
        notes = program.notes[before:]  # made while tracing (a variant refused)
        if not self._write(self._path(kernel), self.key(kernel), payload,
                           {"notes": list(notes), "tree_types": [_type_name(c) for c in types]}):
            return Loaded(compiled, list(notes), f"{self.directory} cannot be written")
        return Loaded(compiled, list(notes))

    # ----------------------------------------------------------------- checks

    def _matches(self, exported: Any, structs: Any) -> bool:
        """Whether ``exported`` takes exactly the arguments the kernel is called with."""
        import jax

        leaves, tree = jax.tree.flatten((structs, {}))
        if exported.in_tree != tree or len(exported.in_avals) != len(leaves):
            return False
        if exported.nr_devices != len(self.devices):
            return False
        if self.devices[0].platform not in exported.platforms:
            return False
        return all(a.shape == tuple(s.shape) and a.dtype == s.dtype
                   for a, s in zip(exported.in_avals, leaves))

    def _compile(self, exported: Any, program: Program, structs: Any) -> Any:
        import jax

        donate = program.donate_argnums
        if exported.nr_devices == 1:
            return jax.jit(exported.call, donate_argnums=donate).lower(*structs).compile()
        # Laid out over the program's devices, in mesh order, as when it was exported.
        import numpy as np
        from jax.sharding import Mesh

        mesh = program.mesh or Mesh(np.array(self.devices), ("devices",))
        args, _ = jax.tree.unflatten(exported.in_tree, exported.in_shardings_jax(mesh))
        outs = jax.tree.unflatten(exported.out_tree, exported.out_shardings_jax(mesh))
        return jax.jit(exported.call, in_shardings=args, out_shardings=outs,
                       donate_argnums=donate).lower(*structs).compile()

    # ----------------------------------------------------------------- files

    @staticmethod
    def _read(path: Path, key: str) -> tuple[bytes, dict] | None:
        """The body and header of the entry at ``path``, if it is whole and for ``key``."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid()
                    or info.st_mode & 0o022 or info.st_size > MAX_ENTRY_BYTES):
                return None
            with os.fdopen(os.dup(fd), "rb") as handle:
                data = handle.read(MAX_ENTRY_BYTES + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        if not data.startswith(MAGIC):
            return None
        end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER_BYTES)
        if end < 0:
            return None
        try:
            header = json.loads(data[len(MAGIC):end])
            payload = data[end + 1:]
            whole = (header["format"] == ENTRY_FORMAT and header["key"] == key
                     and header["bytes"] == len(payload)
                     and header["sha256"] == hashlib.sha256(payload).hexdigest()
                     and isinstance(header["notes"], list)
                     and all(isinstance(n, str) for n in header["notes"])
                     and isinstance(header["tree_types"], list)
                     and all(isinstance(n, str) for n in header["tree_types"]))
        except (ValueError, KeyError, TypeError):
            return None
        return (payload, header) if whole else None

    def _write(self, path: Path, key: str, payload: bytes, extra: dict) -> bool:
        header = {"format": ENTRY_FORMAT, "key": key, "bytes": len(payload),
                  "sha256": hashlib.sha256(payload).hexdigest(), **extra}
        data = MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + payload
        try:
            fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".part")
        except OSError:
            return False
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except OSError:
            Path(temporary).unlink(missing_ok=True)
            return False
        return True

