"""Compiled kernels kept between processes.

JAX's persistent compilation cache skips XLA compilation in a second process,
but not tracing and lowering, which cost a warm ``load_plan`` + ``warmup``
~0.2 s of its ~0.3 s. This cache keeps each kernel's compiled executable
(``jax.experimental.serialize_executable``) next to that cache, so a second
process that loads the same plan deserializes it in a few milliseconds.

An entry is found only by a key that covers everything the executable depends
on and the plan digest does not: capibara's kernel and loader source, the
JAX and jaxlib versions, the backend and its version, the XLA flags and the
JAX settings that change lowering, and the devices the kernel runs on. A plan's digest already covers its shapes, dtypes and
parameters (it names the directory).

Entries are pickles, JAX's own format for serialized executables, and loading
one runs code: they are read only from a directory this user owns and no one
else can write (see :func:`capibara.runtime.loader.cache_dir`), and only from files
with the same guarantee. A damaged, truncated or foreign entry is compiled
again and replaced; writes go through a temporary file and a rename, so a
process that dies mid-write leaves no half entry.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from capibara.resources import owned_by_user_alone

__all__ = ["ExecutableCache", "source_fingerprint"]

#: Bumped when the entry layout changes; part of every key.
ENTRY_FORMAT = 2


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


@dataclass(frozen=True)
class ExecutableCache:
    """Serialized executables of one plan's kernels on one set of devices.

    ``directory`` must be private to this user (the loader checks); ``devices``
    are the devices of the plan's mesh, in mesh order.
    """

    directory: Path
    devices: Sequence[Any]

    def key(self, kernel: Any) -> str:
        """The entry name for a bound kernel (see the module docstring)."""
        import jax
        import jaxlib

        client = self.devices[0].client
        parts = (
            ENTRY_FORMAT, source_fingerprint(), jax.__version__, jaxlib.__version__,
            client.platform, client.platform_version,
            # settings that change what the same code lowers or compiles to
            os.environ.get("XLA_FLAGS", ""), os.environ.get("LIBTPU_INIT_ARGS", ""),
            jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision,
            tuple((d.id, d.device_kind) for d in self.devices),
            kernel.spec.name, kernel.spec.family, kernel.implementation,
            kernel.fallback_allowed,
        )
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]

    def _path(self, kernel: Any) -> Path:
        return self.directory / f"{self.key(kernel)}.executable"

    def load(self, kernel: Any) -> tuple[Any, list[str]] | None:
        """``(compiled, notes)`` saved for ``kernel``, or ``None`` when there is no
        usable entry (a damaged one is removed so the next store replaces it)."""
        from jax.experimental.serialize_executable import deserialize_and_load

        path = self._path(kernel)
        try:
            if not owned_by_user_alone(path):
                return None
            entry = pickle.loads(path.read_bytes())
            by_id = {d.id: d for d in self.devices[0].client.devices()}
            compiled = deserialize_and_load(entry["executable"], entry["in_tree"],
                                            entry["out_tree"],
                                            execution_devices=[by_id[i] for i in entry["devices"]])
            return compiled, list(entry["notes"])
        except FileNotFoundError:
            return None
        except Exception:  # truncated, from another JAX build, …: compile again
            path.unlink(missing_ok=True)
            return None

    def store(self, kernel: Any, compiled: Any, notes: Sequence[str]) -> bool:
        """Save ``compiled`` for ``kernel``; ``False`` when it cannot be serialized
        (some executables cannot) or the directory cannot be written."""
        from jax.experimental.serialize_executable import serialize

        try:
            executable, in_tree, out_tree = serialize(compiled)
            # The devices it runs on, in order: one for a single-device kernel,
            # the mesh's for a sharded one; loading must name the same.
            devices = [d.id for d in compiled.runtime_executable().local_devices()]
            data = pickle.dumps({"executable": executable, "in_tree": in_tree,
                                 "out_tree": out_tree, "devices": devices,
                                 "notes": list(notes)})
        except Exception:  # serialization is best effort: the kernel still runs
            return False
        path = self._path(kernel)
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
