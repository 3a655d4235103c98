"""Checkpoints: parameters and optimizer state on disk, written atomically.

A checkpoint is a directory ``step_00000100/`` holding ``arrays.npz`` (one
entry per array leaf, never pickled) and ``manifest.json`` (a msgspec
document naming each leaf by its tree path with its shape and dtype, plus the
sha256 of ``arrays.npz``). It is built under a hidden temporary name and
renamed into place with ``os.replace`` only once both files are synced, so a
save that dies half way leaves the previous checkpoints untouched and no
half-written step visible::

    manager = CheckpointManager("runs/dev", save_every=1000, keep_max=5)
    manager.maybe_save(step, {"params": params, "opt_state": opt_state})
    state = manager.restore({"params": params, "opt_state": opt_state})

Restoring needs a template tree (the live model's state): the checkpoint must
have exactly its leaves, shapes and dtypes, otherwise a :class:`ConfigError`
lists every difference. Arrays come back with the template's shardings.

:func:`check_checkpoint` verifies a checkpoint without loading it (and
without JAX or NumPy, so ``capibara check CONFIG CHECKPOINT`` stays on the
light compile path): its manifest, its digest, and its parameter shapes
against the ones a config implies.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from typing import Mapping

import msgspec

from capibara.diagnostics import ConfigError, Diagnostic

__all__ = ["CheckpointManager", "Manifest", "ArrayEntry", "save_tree", "load_tree",
           "read_manifest", "resolve_checkpoint", "check_checkpoint", "is_checkpoint_dir"]

MISMATCH = "R201"
DAMAGED = "R202"
NOT_FOUND = "R203"

FORMAT = "capibara.checkpoint/1"
ARRAYS = "arrays.npz"
MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"^step_(\d{8,})$")
_TEMP_PREFIX = ".tmp."


class ArrayEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One array leaf: its tree path (``jax.tree_util.keystr``), shape and dtype name."""

    path: str
    shape: tuple[int, ...]
    dtype: str


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a checkpoint holds; ``arrays_sha256`` guards ``arrays.npz`` against damage."""

    format: str
    step: int
    arrays: tuple[ArrayEntry, ...]
    arrays_sha256: str


def _flatten(tree: Any) -> tuple[list[tuple[str, Any]], Any]:
    import jax

    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path), leaf) for path, leaf in leaves], treedef


def _storable(array):
    import numpy as np

    # The .npy format has no bfloat16/float8: store their bits as unsigned
    # integers of the same width; the manifest keeps the real dtype name.
    if array.dtype.kind in "biufc":
        return array
    return array.view(np.dtype(f"u{array.dtype.itemsize}"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_tree(directory: str | os.PathLike, step: int, tree: Any, *, compress: bool = True) -> Path:
    """Write ``tree`` as checkpoint ``directory/step_<step>`` atomically; return its path.

    Arrays are fetched to host memory first. An existing checkpoint for the
    same step is replaced only after the new one is complete.
    """
    import jax
    import numpy as np

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    named, _ = _flatten(jax.device_get(tree))
    arrays = [(path, np.asarray(leaf)) for path, leaf in named]
    final = root / f"step_{step:08d}"
    temp = root / f"{_TEMP_PREFIX}{final.name}.{uuid.uuid4().hex}"
    temp.mkdir()
    try:
        arrays_file = temp / ARRAYS
        with open(arrays_file, "wb") as handle:
            writer = np.savez_compressed if compress else np.savez
            writer(handle, **{f"a{i}": _storable(a) for i, (_, a) in enumerate(arrays)})
            handle.flush()
            os.fsync(handle.fileno())
        manifest = Manifest(
            format=FORMAT, step=step,
            arrays=tuple(ArrayEntry(path, tuple(a.shape), a.dtype.name) for path, a in arrays),
            arrays_sha256=_sha256(arrays_file))
        with open(temp / MANIFEST, "wb") as handle:
            handle.write(msgspec.json.format(msgspec.json.encode(manifest), indent=2))
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(temp)
        if final.exists():
            # A directory cannot be replaced by rename while it has files: move the
            # old one aside, put the new one in place, then drop the old one.
            retired = root / f"{_TEMP_PREFIX}{final.name}.retired.{uuid.uuid4().hex}"
            os.replace(final, retired)
            os.replace(temp, final)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(temp, final)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return final


def _damaged(path: Path, reason: str) -> ConfigError:
    return ConfigError([Diagnostic.error(
        DAMAGED, f"checkpoint `{path}` cannot be read: {reason}",
        help="restore an earlier step, or delete this directory and save again")])


def read_manifest(path: str | os.PathLike) -> Manifest:
    """The manifest of the checkpoint directory ``path``; :class:`ConfigError` if unreadable."""
    path = Path(path)
    try:
        manifest = msgspec.json.decode((path / MANIFEST).read_bytes(), type=Manifest)
    except (OSError, msgspec.DecodeError) as error:
        raise _damaged(path, f"`{MANIFEST}` is missing or malformed ({error})") from None
    if manifest.format != FORMAT:
        raise _damaged(path, f"format `{manifest.format}` is not `{FORMAT}`")
    return manifest


def _verify_digest(path: Path, manifest: Manifest) -> None:
    try:
        digest = _sha256(path / ARRAYS)
    except OSError as error:
        raise _damaged(path, f"`{ARRAYS}` is unreadable ({error.strerror or error})") from None
    if digest != manifest.arrays_sha256:
        raise _damaged(path, f"`{ARRAYS}` does not match the digest in its manifest")


def _mismatch(path: Path, problems: list[str]) -> ConfigError:
    return ConfigError([Diagnostic.error(
        MISMATCH, f"checkpoint `{path}` does not match the model",
        notes=problems,
        help="restore into a model built from the same configuration, "
             "or train from scratch in a new checkpoint directory")])


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` if it is a checkpoint, else the newest checkpoint in it (``R203`` if none)."""
    path = Path(path)
    if (path / MANIFEST).exists():
        return path
    steps = sorted(int(m.group(1)) for m in (_STEP_DIR.match(p.name) for p in _entries(path)) if m)
    if not steps:
        raise ConfigError([Diagnostic.error(
            NOT_FOUND, f"no checkpoint in `{path}`",
            notes=(f"a checkpoint is a `step_<N>` directory holding `{MANIFEST}` and `{ARRAYS}`",),
            help="check the directory, or start training to create one")])
    return path / f"step_{steps[-1]:08d}"


def is_checkpoint_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a checkpoint or a directory of them (complete or left
    half-written by an interrupted save)."""
    path = Path(path)
    if (path / MANIFEST).is_file():
        return True
    return any(_STEP_DIR.match(p.name) or p.name.startswith(_TEMP_PREFIX + "step_")
               for p in _entries(path) if p.is_dir())


def _entries(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []


def check_checkpoint(path: str | os.PathLike,
                     parameter_shapes: Mapping[str, tuple[int, ...]] | None = None) -> list[Diagnostic]:
    """Every problem with the checkpoint at ``path`` (a step, or a directory of steps).

    Reads the manifest and hashes the arrays, never loads them. With
    ``parameter_shapes`` (:meth:`capibara.compiler.model_spec.ModelSpec.parameter_shapes`),
    the checkpoint's parameters must have exactly those paths and shapes.
    """
    try:
        step = resolve_checkpoint(path)
        manifest = read_manifest(step)
    except ConfigError as error:
        return list(error.diagnostics)
    found: list[Diagnostic] = []
    if parameter_shapes is not None:
        stored = {entry.path[len(_PARAMS):]: entry.shape for entry in manifest.arrays
                  if entry.path.startswith(_PARAMS)}
        problems = _shape_problems(stored, parameter_shapes, prefix=_PARAMS)
        if problems:
            found += _mismatch(step, problems).diagnostics
    try:
        _verify_digest(step, manifest)
    except ConfigError as error:
        found += error.diagnostics
    return found


#: Where a model's checkpoints keep its parameters (``Model`` saves
#: ``{"params": ..., "opt_state": ..., "step": ...}``).
_PARAMS = "['params']"


def _shape_problems(stored: Mapping[str, tuple[int, ...]], wanted: Mapping[str, tuple[int, ...]],
                    *, prefix: str = "") -> list[str]:
    problems = [f"`{prefix}{path}` is in the checkpoint but not in the model"
                for path in stored if path not in wanted]
    for path, shape in wanted.items():
        if path not in stored:
            problems.append(f"`{prefix}{path}` is in the model but not in the checkpoint")
        elif tuple(stored[path]) != tuple(shape):
            problems.append(f"`{prefix}{path}` has shape {tuple(stored[path])} in the checkpoint, "
                            f"the model expects {tuple(shape)}")
    return problems


def load_tree(path: str | os.PathLike, like: Any) -> Any:
    """Read the checkpoint directory ``path`` into the structure of ``like``.

    Every leaf must match ``like``'s path, shape and dtype; arrays are placed
    with the shardings of ``like``'s leaves when those are JAX arrays.
    """
    import jax
    import numpy as np

    path = Path(path)
    manifest = read_manifest(path)
    expected, treedef = _flatten(like)
    problems = _mismatches(manifest, expected)
    if problems:
        raise _mismatch(path, problems)
    _verify_digest(path, manifest)
    arrays_file = path / ARRAYS
    try:
        with np.load(arrays_file, allow_pickle=False) as stored:
            host = [stored[f"a{i}"].view(jax.numpy.dtype(entry.dtype)).reshape(entry.shape)
                    for i, entry in enumerate(manifest.arrays)]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise _damaged(path, f"`{ARRAYS}` is unreadable ({error})") from None
    placed = [jax.device_put(array, leaf.sharding) if isinstance(leaf, jax.Array) else array
              for array, (_, leaf) in zip(host, expected)]
    return jax.tree_util.tree_unflatten(treedef, placed)


def _mismatches(manifest: Manifest, expected: list[tuple[str, Any]]) -> list[str]:
    import numpy as np

    stored = {entry.path: entry for entry in manifest.arrays}
    wanted = {path: leaf for path, leaf in expected}
    problems = _shape_problems({p: e.shape for p, e in stored.items()},
                               {p: tuple(np.shape(leaf)) for p, leaf in wanted.items()})
    for path, leaf in wanted.items():
        entry = stored.get(path)
        dtype = np.dtype(leaf.dtype).name
        if entry is not None and entry.shape == tuple(np.shape(leaf)) and entry.dtype != dtype:
            problems.append(f"`{path}` has dtype {entry.dtype} in the checkpoint, "
                            f"the model expects {dtype}")
    return problems


class CheckpointManager:
    """Saves every ``save_every`` steps into ``directory``, keeping the newest ``keep_max``.

    With ``asynchronous=True`` a save copies the arrays to host memory and
    writes them on a background thread, so training continues during the disk
    write; the next save (or :meth:`wait`) waits for the previous one and
    re-raises its error, if any.
    """

    def __init__(self, directory: str | os.PathLike, *, save_every: int, keep_max: int,
                 compress: bool = True, asynchronous: bool = False) -> None:
        if save_every < 1 or keep_max < 1:
            raise ValueError(f"{save_every=} and {keep_max=} must be at least 1")
        self.directory = Path(directory)
        self.save_every = save_every
        self.keep_max = keep_max
        self.compress = compress
        self._pool = ThreadPoolExecutor(max_workers=1) if asynchronous else None
        self._pending: Future | None = None
        self._discard_stale_temporaries()

    def _discard_stale_temporaries(self) -> None:
        # Left behind only by a process that died mid-save; never a complete step.
        if self.directory.is_dir():
            for entry in self.directory.iterdir():
                if entry.name.startswith(_TEMP_PREFIX):
                    shutil.rmtree(entry, ignore_errors=True)

    def steps(self) -> list[int]:
        """Steps with a complete checkpoint, oldest first."""
        if not self.directory.is_dir():
            return []
        found = (_STEP_DIR.match(entry.name) for entry in self.directory.iterdir())
        return sorted(int(match.group(1)) for match in found if match)

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def path(self, step: int) -> Path:
        return self.directory / f"step_{step:08d}"

    def should_save(self, step: int) -> bool:
        return step > 0 and step % self.save_every == 0

    def maybe_save(self, step: int, tree: Any) -> bool:
        """Save when ``step`` is a multiple of ``save_every``; return whether it did."""
        if not self.should_save(step):
            return False
        self.save(step, tree)
        return True

    def save(self, step: int, tree: Any) -> None:
        """Save ``tree`` as ``step`` now (in the background when asynchronous), then prune."""
        import jax

        self.wait()
        host = jax.device_get(tree)
        if self._pool is None:
            self._write(step, host)
        else:
            self._pending = self._pool.submit(self._write, step, host)

    def _write(self, step: int, host_tree: Any) -> None:
        save_tree(self.directory, step, host_tree, compress=self.compress)
        for old in self.steps()[:-self.keep_max]:
            shutil.rmtree(self.path(old), ignore_errors=True)

    def wait(self) -> None:
        """Block until a background save finishes; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Load ``step`` (default: the newest) into the structure of ``like``."""
        self.wait()
        path = resolve_checkpoint(self.directory) if step is None else self.path(step)
        return load_tree(path, like)

    def close(self) -> None:
        """Finish any background save and stop the writer thread."""
        self.wait()
        if self._pool is not None:
            self._pool.shutdown()
