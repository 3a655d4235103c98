"""Checkpoints on orbax: round trips, rotation, one writer per directory, no lost step, refusals."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings, strategies as st

from capibara.model import checkpoint
from capibara.model.checkpoint import CheckpointManager
from capibara.diagnostics import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def make_state(seed: int = 0, width: int = 8):
    keys = jax.random.split(jax.random.key(seed), 3)
    params = {
        "embed": jax.random.normal(keys[0], (16, width), jnp.float32),
        "blocks": {"w": jax.random.normal(keys[1], (2, width, width)).astype(jnp.bfloat16)},
        "norm": jnp.ones((width,), jnp.float32),
    }
    optimizer = optax.adamw(1e-3)
    opt_state = optimizer.init(params)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
    _, opt_state = optimizer.update(grads, opt_state, params)
    return {"params": params, "opt_state": opt_state, "step": np.asarray(seed, np.int64)}


def assert_trees_equal(a, b) -> None:
    """Bit for bit: same structure, dtypes, shapes and bytes."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def visible(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_keeps_values_dtypes_and_structure(tmp_path, compress) -> None:
    state = make_state(3)
    with CheckpointManager(tmp_path, save_every=1, keep_max=2, compress=compress) as manager:
        assert manager.save(7, state)
        restored = manager.restore(make_state(1))
    assert_trees_equal(restored, state)
    assert restored["params"]["blocks"]["w"].dtype == jnp.bfloat16
    assert visible(tmp_path) == ["7"]


def test_keeps_at_most_keep_max_and_saves_on_schedule(tmp_path) -> None:
    with CheckpointManager(tmp_path, save_every=2, keep_max=3) as manager:
        saved = [step for step in range(1, 12) if manager.maybe_save(step, make_state(step))]
        assert saved == [2, 4, 6, 8, 10]
        assert manager.steps() == [6, 8, 10]
        assert_trees_equal(manager.restore(make_state()), make_state(10))
        assert_trees_equal(manager.restore(make_state(), step=6), make_state(6))
    assert visible(tmp_path) == ["10", "6", "8"]


def test_asynchronous_save_writes_the_state_as_it_was(tmp_path) -> None:
    with CheckpointManager(tmp_path, save_every=1, keep_max=2, asynchronous=True) as manager:
        manager.save(1, make_state(3))
        manager.save(2, make_state(4))
        manager.save(3, make_state(5))
        manager.wait()
        assert manager.steps() == [2, 3]
        assert_trees_equal(manager.restore(make_state(), step=2), make_state(4))


def test_saving_a_step_again_keeps_the_complete_copy(tmp_path) -> None:
    with CheckpointManager(tmp_path, save_every=1, keep_max=2) as manager:
        assert manager.save(5, make_state(1))
        assert not manager.save(5, make_state(2))
        assert_trees_equal(manager.restore(make_state()), make_state(1))


def test_a_second_manager_is_refused_while_the_first_lives(tmp_path) -> None:
    first = CheckpointManager(tmp_path, save_every=1, keep_max=2)
    first.save(1, make_state(1))
    with pytest.raises(ConfigError) as caught:
        CheckpointManager(tmp_path, save_every=1, keep_max=2)
    (found,) = caught.value.diagnostics
    assert found.code == "R204" and f"process {os.getpid()}" in found.message
    reader = CheckpointManager(tmp_path, save_every=1, keep_max=2, read_only=True)
    assert_trees_equal(reader.restore(make_state()), make_state(1))
    first.close()
    with CheckpointManager(tmp_path, save_every=1, keep_max=2) as second:
        assert second.steps() == [1]


def test_grain_iterator_position_is_saved_with_the_step(tmp_path) -> None:
    import grain

    dataset = grain.MapDataset.range(100).shuffle(seed=1).batch(4)
    iterator = iter(dataset.to_iter_dataset())
    for _ in range(3):
        next(iterator)
    with CheckpointManager(tmp_path, save_every=1, keep_max=2) as manager:
        manager.save(3, make_state(), data_iterator=iterator)
        expected = [next(iterator).tolist() for _ in range(2)]
        fresh = iter(dataset.to_iter_dataset())
        manager.restore(make_state(), data_iterator=fresh)
    assert [next(fresh).tolist() for _ in range(2)] == expected


# --------------------------------------------------------------------------- refusals


def test_refuses_a_checkpoint_with_other_shapes_listing_every_difference(tmp_path) -> None:
    with CheckpointManager(tmp_path, save_every=1, keep_max=2) as manager:
        manager.save(1, make_state(width=8))
        other = make_state(width=16)
        other["params"]["extra"] = jnp.zeros(3)
        del other["params"]["norm"]
        with pytest.raises(ConfigError) as caught:
            manager.restore(other)
    text = str(caught.value)
    assert text.startswith("error[R201]: checkpoint")
    notes = caught.value.diagnostics[0].notes
    assert "`['params']['embed']` has shape (16, 8) in the checkpoint, the model expects (16, 16)" in notes
    assert "`['params']['extra']` is in the model but not in the checkpoint" in notes
    assert "`['params']['norm']` is in the checkpoint but not in the model" in notes
    assert "help: restore into a model built from the same configuration" in text


def test_refuses_damaged_arrays_and_manifests(tmp_path) -> None:
    with CheckpointManager(tmp_path, save_every=1, keep_max=2, compress=False) as manager:
        manager.save(1, make_state())
    # The merged OCDBT data of the step: one flipped bit in it must not reach the model.
    for data_file in (tmp_path / "1" / "state" / "d").iterdir():
        data = bytearray(data_file.read_bytes())
        data[len(data) // 2] ^= 0x01
        data_file.write_bytes(bytes(data))
    reader = CheckpointManager(tmp_path, save_every=1, keep_max=2, read_only=True)
    with pytest.raises(ConfigError, match=r"error\[R202\]"):
        reader.restore(make_state())
    (tmp_path / "1" / "manifest" / "metadata").write_text("{")
    with pytest.raises(ConfigError, match=r"error\[R202\].*malformed"):
        reader.restore(make_state())


def test_restore_from_an_empty_directory_says_so(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"error\[R203\]: no checkpoint in"):
        CheckpointManager(tmp_path, save_every=1, keep_max=1).restore(make_state())


# --------------------------------------------------------------------------- crashes


class Killed(BaseException):
    """A simulated kill: derives from BaseException so no `except Exception` cleanup runs."""


def _kill_at(monkeypatch, when: int) -> None:
    """The ``when``-th rename or tree removal from now dies before doing anything."""
    calls = {"n": 0}
    real_rename, real_rmtree = os.rename, shutil.rmtree

    def counted(real):
        def call(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == when:
                raise Killed()
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(os, "rename", counted(real_rename))
    monkeypatch.setattr(shutil, "rmtree", counted(real_rmtree))


_OPS = st.lists(st.one_of(
    st.tuples(st.just("save"), st.integers(1, 6)),
    st.tuples(st.just("kill"), st.integers(1, 6), st.integers(1, 6)),
    st.tuples(st.just("second"))), min_size=1, max_size=6)


@settings(max_examples=max(4, settings.default.max_examples // 8))
@given(ops=_OPS)
def test_no_sequence_of_saves_kills_and_second_managers_loses_a_completed_step(ops) -> None:
    import tempfile

    keep = 3
    with tempfile.TemporaryDirectory() as directory, pytest.MonkeyPatch.context() as patch:
        root = Path(directory)
        manager = CheckpointManager(root, save_every=1, keep_max=keep)
        completed: dict[int, int] = {}  # step -> seed of the state it holds
        for op in ops:
            if op[0] == "save":
                step = op[1]
                if manager.save(step, make_state(step * 10)):
                    completed[step] = step * 10
            elif op[0] == "kill":
                _, step, when = op
                _kill_at(patch, when)
                try:
                    if manager.save(step, make_state(step * 10 + 1)):
                        completed[step] = step * 10 + 1  # the kill came after the save finished
                except Killed:
                    pass
                patch.undo()
                if (root / str(step)).is_dir() and step not in completed:
                    completed[step] = step * 10 + 1  # renamed into place before the kill
                manager._lock.release()  # the process is gone: the kernel drops its lock
                manager = CheckpointManager(root, save_every=1, keep_max=keep)
            else:
                with pytest.raises(ConfigError, match="R204"):
                    CheckpointManager(root, save_every=1, keep_max=keep)
            present = manager.steps()
            newest = sorted(completed)[-keep:]
            assert set(newest) <= set(present), (ops, present, newest)
            for step in present:
                assert_trees_equal(manager.restore(make_state(), step=step), make_state(completed[step]))
        manager.close()


# --------------------------------------------------------------------------- checking without loading


def test_check_compares_parameter_shapes_without_loading(tmp_path) -> None:
    with CheckpointManager(tmp_path, save_every=1, keep_max=2) as manager:
        manager.save(2, make_state())
    shapes = {"['embed']": (16, 8), "['blocks']['w']": (2, 8, 8), "['norm']": (8,)}
    assert checkpoint.check_checkpoint(tmp_path, shapes) == []
    other = {**shapes, "['embed']": (32, 8), "['extra']": (3,)}
    del other["['norm']"]
    (found,) = checkpoint.check_checkpoint(tmp_path, other)
    assert found.code == "R201"
    assert found.notes == (
        "`['params']['norm']` is in the checkpoint but not in the model",
        "`['params']['embed']` has shape (16, 8) in the checkpoint, the model expects (32, 8)",
        "`['params']['extra']` is in the model but not in the checkpoint")


def test_check_reports_damage_and_missing_checkpoints(tmp_path) -> None:
    with CheckpointManager(tmp_path / "run", save_every=1, keep_max=2) as manager:
        manager.save(1, make_state())
    (tmp_path / "run" / "1" / "state" / "_METADATA").unlink()
    assert [d.code for d in checkpoint.check_checkpoint(tmp_path / "run")] == ["R202"]
    (tmp_path / "empty").mkdir()
    assert [d.code for d in checkpoint.check_checkpoint(tmp_path / "empty")] == ["R203"]
    assert checkpoint.is_checkpoint_dir(tmp_path / "run")
    assert checkpoint.is_checkpoint_dir(tmp_path / "run" / "1")
    assert not checkpoint.is_checkpoint_dir(tmp_path / "empty")


def test_capibara_check_of_a_checkpoint_imports_neither_jax_nor_numpy() -> None:
    script = textwrap.dedent("""
        import io, sys
        import capibara.cli.app as cli
        out = io.StringIO()
        status = cli.main(["check", "--no-env", "tests/golden/checkpoints/tiny",
                           "tests/golden/R202-damaged-checkpoint.toml"], out=out)
        assert status == 0, out.getvalue()
        assert "array contents are not read" in out.getvalue(), out.getvalue()
        print(sorted(m for m in ("jax", "jaxlib", "numpy") if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "[]", proc.stdout
