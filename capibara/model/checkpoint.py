"""Checkpoints on orbax-checkpoint: parameters, optimizer state and data position, never lost.

A checkpoint directory holds one folder per saved step, written by orbax's
``CheckpointManager`` (arrays in its OCDBT/zarr format, written by the
processes that hold their shards, no gather to one host)::

    runs/dev/
      .capibara-lock       held by the live writer; names it (pid, host)
      100/                 a complete step: `state` (arrays), `manifest` (JSON),
      200/                 and `data` (the grain iterator state) when training saved it
      300.orbax-checkpoint-tmp-1733212345/   a save in progress

What :class:`CheckpointManager` guarantees on top of orbax:

- a step folder appears only complete (orbax writes under a temporary name
  and renames it into place), and is removed only by retention
  (``keep_max``), which renames it away before deleting it, so no crash
  leaves a half-deleted step that looks complete;
- a step that already has a complete checkpoint is never replaced: saving
  it again keeps the existing copy (so no instant exists without one);
- one writer per directory: a second manager is refused while the first
  lives (an exclusive lock, released by the kernel when its owner dies), and
  temporaries are removed only by a manager that holds the lock, so an
  in-progress save is never deleted by another process;
- every array's bits are fingerprinted when saved and checked when restored:
  damage is ``R202``, a checkpoint of another model ``R201`` (every
  difference listed), before anything is placed on a device.

::

    manager = CheckpointManager("runs/dev", save_every=1000, keep_max=5)
    manager.maybe_save(step, {"params": params, "opt_state": opt_state})
    state = manager.restore({"params": params, "opt_state": opt_state})

:func:`check_checkpoint` verifies a checkpoint without JAX and without
loading arrays (so ``capibara check CONFIG CHECKPOINT`` stays on the light
compile path): its manifest, its orbax files, and its parameter shapes
against a config's. It does not read array contents; restoring does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid
from pathlib import Path
from typing import Any, Mapping

from capibara.diagnostics import ConfigError, Diagnostic
from capibara.files import read_regular_file

__all__ = ["CheckpointManager", "check_checkpoint", "is_checkpoint_dir", "resolve_checkpoint",
           "read_manifest", "UNVERIFIED"]

MISMATCH = "R201"
DAMAGED = "R202"
NOT_FOUND = "R203"
IN_USE = "R204"

FORMAT = "capibara.checkpoint/2"
#: Item names inside a step folder.
STATE, MANIFEST, DATA = "state", "manifest", "data"
LOCK = ".capibara-lock"
_STEP_DIR = re.compile(r"^(\d+)$")
_ORBAX_TEMP = ".orbax-checkpoint-tmp"
_DELETING = ".deleting-"
_MAX_JSON_BYTES = 64 << 20  # a manifest lists leaves: far below this even for huge models

#: What :func:`check_checkpoint` does not verify, for the CLI to say plainly.
UNVERIFIED = ("array contents are not read by `capibara check`; restoring a checkpoint checks "
              "every array against the fingerprint saved with it")


# --------------------------------------------------------------------------- reading (no JAX)


def _damaged(path: Path, reason: str) -> ConfigError:
    return ConfigError([Diagnostic.error(
        DAMAGED, f"checkpoint `{path}` cannot be read: {reason}",
        help="restore an earlier step, or delete this directory and save again")])


def _mismatch(path: Path, problems: list[str]) -> ConfigError:
    return ConfigError([Diagnostic.error(
        MISMATCH, f"checkpoint `{path}` does not match the model",
        notes=problems,
        help="restore into a model built from the same configuration, "
             "or train from scratch in a new checkpoint directory")])


def _read_json(path: Path) -> Any:
    """A small JSON file, read bounded and only if it is a regular file."""
    return json.loads(read_regular_file(path, _MAX_JSON_BYTES))


def _entries(path: Path) -> list[Path]:
    try:
        return list(path.iterdir())
    except OSError:
        return []


def complete_steps(directory: str | os.PathLike) -> list[int]:
    """Steps with a complete checkpoint folder in ``directory``, oldest first."""
    found = (_STEP_DIR.match(p.name) for p in _entries(Path(directory)) if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` if it is a step folder, else the newest step in it (``R203`` if none)."""
    path = Path(path)
    if (path / MANIFEST).is_dir():
        return path
    steps = complete_steps(path)
    if not steps:
        interrupted = [p.name for p in _entries(path) if _ORBAX_TEMP in p.name]
        raise ConfigError([Diagnostic.error(
            NOT_FOUND, f"no checkpoint in `{path}`",
            notes=(("a save was interrupted before it finished: "
                    f"{', '.join(sorted(interrupted))}",) if interrupted else ())
            + ("a checkpoint is a folder named after its step, holding `state` and `manifest`",),
            help="check the directory, or start training to create one")])
    return path / str(steps[-1])


def is_checkpoint_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a step folder or a directory of them (complete or interrupted)."""
    path = Path(path)
    if (path / MANIFEST).is_dir() or (path / LOCK).is_file():
        return True
    return any(_STEP_DIR.match(p.name) or _ORBAX_TEMP in p.name
               for p in _entries(path) if p.is_dir())


def read_manifest(step_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a step folder: ``{"format", "step", "arrays": [{path, shape, dtype,
    fingerprint}], "metadata": {...}}``; :class:`ConfigError` (``R202``) if unreadable."""
    step_dir = Path(step_dir)
    try:
        manifest = _read_json(step_dir / MANIFEST / "metadata")
    except (OSError, ValueError) as error:
        raise _damaged(step_dir, f"its manifest is missing or malformed ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise _damaged(step_dir, f"its manifest's format `{found}` is not `{FORMAT}`")
    arrays = manifest.get("arrays")
    if not isinstance(arrays, list) or not all(
            isinstance(a, dict) and isinstance(a.get("path"), str) and isinstance(a.get("shape"), list)
            and isinstance(a.get("dtype"), str) for a in arrays):
        raise _damaged(step_dir, "its manifest does not list the arrays")
    return manifest


def _verify_files(step_dir: Path, manifest: Mapping[str, Any]) -> None:
    """The orbax files a complete step has, and a tree of the manifest's size."""
    for name in ("_CHECKPOINT_METADATA", f"{STATE}/_METADATA", f"{STATE}/manifest.ocdbt"):
        if not (step_dir / name).is_file():
            raise _damaged(step_dir, f"`{name}` is missing")
    try:
        tree = _read_json(step_dir / STATE / "_METADATA")
        leaves = sum(not entry["value_metadata"].get("skip_deserialize", False)
                     for entry in tree["tree_metadata"].values())
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise _damaged(step_dir, f"`{STATE}/_METADATA` is malformed ({error})") from None
    if leaves != len(manifest["arrays"]):
        raise _damaged(step_dir, f"`{STATE}` holds {leaves} arrays, its manifest lists "
                                 f"{len(manifest['arrays'])}")


#: Where a training state keeps its parameters (``{"params": ..., "opt_state": ..., "step": ...}``).
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


def check_checkpoint(path: str | os.PathLike,
                     parameter_shapes: Mapping[str, tuple[int, ...]] | None = None) -> list[Diagnostic]:
    """Every problem with the checkpoint at ``path`` (a step, or a directory of steps).

    Reads the manifest and the orbax metadata, never the arrays (see
    :data:`UNVERIFIED`). With ``parameter_shapes``
    (:meth:`capibara.compiler.model_spec.ModelSpec.parameter_shapes`) the checkpoint's
    parameters must have exactly those paths and shapes.
    """
    try:
        step = resolve_checkpoint(path)
        manifest = read_manifest(step)
        _verify_files(step, manifest)
    except ConfigError as error:
        return list(error.diagnostics)
    if parameter_shapes is None:
        return []
    stored = {entry["path"][len(_PARAMS):]: tuple(entry["shape"]) for entry in manifest["arrays"]
              if entry["path"].startswith(_PARAMS)}
    problems = _shape_problems(stored, parameter_shapes, prefix=_PARAMS)
    return list(_mismatch(step, problems).diagnostics) if problems else []


# --------------------------------------------------------------------------- the lock


class _Lock:
    """An exclusive ``flock`` on ``directory/.capibara-lock`` holding its owner's pid and host.

    The kernel releases it when the owner dies, so a crash never leaves the
    directory locked; while the owner lives, nobody else writes or cleans.
    """

    def __init__(self, directory: Path) -> None:
        import fcntl

        path = directory / LOCK
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self._fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(self._fd)
            raise ConfigError([Diagnostic.error(
                IN_USE, f"checkpoint directory `{directory}` is in use by {owner}",
                notes=("one process at a time saves into a checkpoint directory, so no "
                       "process removes another's save in progress",),
                help="wait for that run to finish, stop it, or use another directory")]) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"process {os.getpid()} on {socket.gethostname()}".encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


# --------------------------------------------------------------------------- fingerprints


def _fingerprint(x):
    import jax
    import jax.numpy as jnp

    if x.dtype == jnp.bool_:
        x = x.astype(jnp.uint8)
    width = x.dtype.itemsize
    unsigned = {1: jnp.uint8, 2: jnp.uint16}.get(width, jnp.uint32)
    bits = jax.lax.bitcast_convert_type(x, unsigned).reshape(-1).astype(jnp.uint32)
    weights = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2654435761) + jnp.uint32(1)
    return jnp.sum(bits * weights, dtype=jnp.uint32) ^ jnp.uint32(bits.size)


_fingerprint_leaves = None


def _fingerprints(tree: Any) -> list[int]:
    """A 32-bit fingerprint of each leaf's bits, computed where the leaf lives.

    Integer sums wrap exactly and in any order, so the value does not depend
    on how the array is sharded or on how many processes hold it.
    """
    global _fingerprint_leaves
    import jax
    import jax.numpy as jnp
    import numpy as np

    if _fingerprint_leaves is None:  # one jitted function: compiled once per tree shape
        _fingerprint_leaves = jax.jit(lambda leaves: [_fingerprint(x) for x in leaves])
    leaves = [jnp.asarray(x) for x in jax.tree.leaves(tree)]
    return [int(v) for v in np.asarray(jax.device_get(_fingerprint_leaves(leaves)))]


def _describe(tree: Any) -> list[dict[str, Any]]:
    import jax
    import numpy as np

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [{"path": jax.tree_util.keystr(path), "shape": list(np.shape(leaf)),
             "dtype": np.dtype(leaf.dtype).name} for path, leaf in leaves]


def _leaf_problems(stored: list[Mapping[str, Any]], wanted: list[Mapping[str, Any]]) -> list[str]:
    problems = _shape_problems({a["path"]: tuple(a["shape"]) for a in stored},
                               {a["path"]: tuple(a["shape"]) for a in wanted})
    by_path = {a["path"]: a for a in stored}
    for entry in wanted:
        other = by_path.get(entry["path"])
        if other is not None and other["shape"] == entry["shape"] and other["dtype"] != entry["dtype"]:
            problems.append(f"`{entry['path']}` has dtype {other['dtype']} in the checkpoint, "
                            f"the model expects {entry['dtype']}")
    return problems


# --------------------------------------------------------------------------- the manager


class CheckpointManager:
    """Saves every ``save_every`` steps into ``directory``, keeping the newest ``keep_max``.

    ``compress``: zstd-compressed array chunks; ``asynchronous``: a save
    returns once the arrays are copied off the devices and orbax writes them
    in the background (the next save, :meth:`wait` or :meth:`close` waits for
    it). ``primary`` is the process that locks, cleans and prunes (process 0
    of a multi-process job; every process calls save and restore).
    ``read_only`` opens without the lock, for restoring only.
    """

    def __init__(self, directory: str | os.PathLike, *, save_every: int, keep_max: int,
                 compress: bool = True, asynchronous: bool = False, primary: bool | None = None,
                 read_only: bool = False) -> None:
        if save_every < 1 or keep_max < 1:
            raise ValueError(f"{save_every=} and {keep_max=} must be at least 1")
        import jax
        import orbax.checkpoint as ocp

        self.directory = Path(directory).absolute()
        self.save_every, self.keep_max = save_every, keep_max
        self.read_only = read_only
        self.primary = jax.process_index() == 0 if primary is None else primary
        self._lock: _Lock | None = None
        if not read_only:
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.primary:
                self._lock = _Lock(self.directory)
                self._discard_abandoned()
        self._orbax = ocp.CheckpointManager(
            self.directory,
            item_handlers={STATE: ocp.PyTreeCheckpointHandler(use_compression=compress),
                           MANIFEST: ocp.JsonCheckpointHandler(), DATA: _grain_handler()},
            options=ocp.CheckpointManagerOptions(
                max_to_keep=None, enable_async_checkpointing=asynchronous,
                cleanup_tmp_directories=False, create=not read_only, read_only=read_only))

    def _discard_abandoned(self) -> None:
        # Under the lock, a temporary folder belongs to no live writer: it is what a
        # process that died mid-save (or mid-prune) left, never a complete step.
        for entry in _entries(self.directory):
            if _ORBAX_TEMP in entry.name or entry.name.startswith(".") and _DELETING in entry.name:
                shutil.rmtree(entry, ignore_errors=True)

    # ----------------------------------------------------------------- steps

    def steps(self) -> list[int]:
        """Steps with a complete checkpoint, oldest first."""
        return complete_steps(self.directory)

    def latest_step(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def path(self, step: int) -> Path:
        return self.directory / str(step)

    def should_save(self, step: int) -> bool:
        return step > 0 and step % self.save_every == 0

    # ----------------------------------------------------------------- saving

    def maybe_save(self, step: int, tree: Any, **extra: Any) -> bool:
        """Save when ``step`` is a multiple of ``save_every``; return whether it did."""
        return self.should_save(step) and self.save(step, tree, **extra)

    def save(self, step: int, tree: Any, *, data_iterator: Any = None,
             metadata: Mapping[str, Any] | None = None) -> bool:
        """Save ``tree`` (and the grain ``data_iterator``'s position) as ``step``; prune.

        Returns ``False`` without writing when ``step`` already has a complete
        checkpoint: the existing copy is kept (see the module doc).
        """
        import orbax.checkpoint as ocp

        if self.read_only:
            raise ValueError("this checkpoint manager was opened read-only")
        self.wait()
        if step in self.steps():
            return False
        manifest = {"format": FORMAT, "step": int(step), "metadata": dict(metadata or {}),
                    "arrays": [dict(entry, fingerprint=fp) for entry, fp in
                               zip(_describe(tree), _fingerprints(tree))]}
        items = {STATE: ocp.args.PyTreeSave(tree), MANIFEST: ocp.args.JsonSave(manifest)}
        if data_iterator is not None:
            items[DATA] = _grain_save(data_iterator)
        self._orbax.reload()
        self._orbax.save(step, args=ocp.args.Composite(**items), force=True)
        if not self._orbax._options.enable_async_checkpointing:  # noqa: SLF001 (orbax has no getter)
            self._prune()
        return True

    def wait(self) -> None:
        """Block until a background save has finished, then apply retention."""
        self._orbax.wait_until_finished()
        self._prune()

    def _prune(self) -> None:
        if not self.primary or self.read_only:
            return
        for old in self.steps()[:-self.keep_max]:
            # Renamed first: a crash during the delete leaves a temporary, not a broken step.
            doomed = self.directory / f".{old}{_DELETING}{uuid.uuid4().hex}"
            try:
                os.rename(self.path(old), doomed)
            except FileNotFoundError:
                continue
            shutil.rmtree(doomed, ignore_errors=True)

    # ----------------------------------------------------------------- restoring

    def restore(self, like: Any, step: int | None = None, *, data_iterator: Any = None) -> Any:
        """Load ``step`` (default: the newest) into the structure, shardings and dtypes of
        ``like``; with ``data_iterator``, move it to the position saved with the step.

        A checkpoint of another structure, shape or dtype is refused with
        ``R201`` listing every difference; damaged arrays with ``R202``.
        """
        import jax
        import orbax.checkpoint as ocp

        self.wait()
        path = resolve_checkpoint(self.directory) if step is None else self.path(step)
        if not path.is_dir():
            raise ConfigError([Diagnostic.error(
                NOT_FOUND, f"no checkpoint for step {step} in `{self.directory}`",
                notes=(f"saved steps: {', '.join(map(str, self.steps())) or 'none'}",),
                help="pick one of the saved steps")])
        manifest = read_manifest(path)
        _verify_files(path, manifest)
        problems = _leaf_problems(manifest["arrays"], _describe(like))
        if problems:
            raise _mismatch(path, problems)
        items = {STATE: ocp.args.PyTreeRestore(
            item=like, restore_args=ocp.checkpoint_utils.construct_restore_args(like))}
        if data_iterator is not None:
            if not (path / DATA).is_dir():
                raise _damaged(path, "it holds no data position, and one was asked for")
            items[DATA] = _grain_restore(data_iterator)
        self._orbax.reload()
        try:
            restored = self._orbax.restore(int(path.name), args=ocp.args.Composite(**items))
        except (ValueError, OSError, KeyError) as error:
            raise _damaged(path, f"orbax could not read it ({type(error).__name__}: "
                                 f"{str(error).splitlines()[0] if str(error) else ''})") from None
        state = restored[STATE]
        damaged = [entry["path"] for entry, fp in zip(manifest["arrays"], _fingerprints(state))
                   if entry.get("fingerprint") != fp]
        if damaged:
            raise _damaged(path, f"{len(damaged)} array(s) differ from what was saved: "
                                 f"{', '.join(f'`{p}`' for p in damaged[:5])}")
        # Restored leaves take the template's leaf types (e.g. numpy scalars stay numpy).
        return jax.tree.map(lambda _, new: new, like, state)

    def metadata(self, step: int | None = None) -> dict[str, Any]:
        """The ``metadata`` saved with ``step`` (default: the newest)."""
        path = resolve_checkpoint(self.directory) if step is None else self.path(step)
        return read_manifest(path).get("metadata", {})

    def close(self) -> None:
        """Finish any background save, release the directory."""
        try:
            self.wait()
            self._orbax.close()
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> "CheckpointManager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _grain_handler():
    import grain

    return grain.checkpoint.CheckpointHandler()


def _grain_save(iterator: Any):
    import grain

    return grain.checkpoint.CheckpointSave(iterator)


def _grain_restore(iterator: Any):
    import grain

    return grain.checkpoint.CheckpointRestore(iterator)
