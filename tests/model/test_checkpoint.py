"""Checkpoints: round trips, rotation, atomic saves, and refusing a mismatched tree."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from capibara.model import checkpoint
from capibara.model.checkpoint import CheckpointManager, load_tree, save_tree
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
    return {"params": params, "opt_state": opt_state}


def assert_trees_equal(a, b) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32))


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip_keeps_values_dtypes_and_structure(tmp_path, compress) -> None:
    state = make_state()
    path = save_tree(tmp_path, 7, state, compress=compress)
    assert path.name == "step_00000007"
    restored = load_tree(path, make_state(seed=1))
    assert_trees_equal(restored, state)
    assert restored["params"]["blocks"]["w"].dtype == jnp.bfloat16


def test_manifest_names_every_leaf_and_arrays_are_not_pickled(tmp_path) -> None:
    state = make_state()
    path = save_tree(tmp_path, 1, state)
    manifest = checkpoint.read_manifest(path)
    paths = [entry.path for entry in manifest.arrays]
    assert "['params']['embed']" in paths and len(paths) == len(jax.tree.leaves(state))
    with np.load(path / checkpoint.ARRAYS, allow_pickle=False) as stored:
        assert len(stored.files) == len(paths)


def test_keeps_at_most_keep_max_and_saves_on_schedule(tmp_path) -> None:
    manager = CheckpointManager(tmp_path, save_every=2, keep_max=3)
    saved = [step for step in range(1, 12) if manager.maybe_save(step, make_state(step))]
    assert saved == [2, 4, 6, 8, 10]
    assert manager.steps() == [6, 8, 10]
    assert_trees_equal(manager.restore(make_state()), make_state(10))
    assert_trees_equal(manager.restore(make_state(), step=6), make_state(6))


def test_asynchronous_save_writes_the_state_as_it_was(tmp_path) -> None:
    manager = CheckpointManager(tmp_path, save_every=1, keep_max=2, asynchronous=True)
    state = make_state(3)
    manager.save(1, state)
    manager.save(2, make_state(4))
    manager.close()
    assert manager.steps() == [1, 2]
    assert_trees_equal(manager.restore(make_state(), step=1), state)


def test_failed_save_leaves_last_good_checkpoint(tmp_path, monkeypatch) -> None:
    manager = CheckpointManager(tmp_path, save_every=1, keep_max=5)
    good = make_state(1)
    manager.save(1, good)

    def write_half_then_fail(handle, **arrays):
        handle.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        manager.save(2, make_state(2))
    monkeypatch.undo()
    assert manager.steps() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["step_00000001"]
    assert_trees_equal(manager.restore(make_state()), good)


def test_failed_resave_of_same_step_keeps_the_old_one(tmp_path, monkeypatch) -> None:
    good = make_state(1)
    save_tree(tmp_path, 5, good)
    monkeypatch.setattr(checkpoint, "_sha256", lambda path: (_ for _ in ()).throw(OSError("io")))
    with pytest.raises(OSError):
        save_tree(tmp_path, 5, make_state(2))
    monkeypatch.undo()
    assert_trees_equal(load_tree(tmp_path / "step_00000005", make_state()), good)
    save_tree(tmp_path, 5, make_state(2))
    assert_trees_equal(load_tree(tmp_path / "step_00000005", make_state()), make_state(2))


def test_process_killed_mid_save_leaves_no_visible_step(tmp_path) -> None:
    # A real crash: the writer process dies (no exception handling runs) after
    # writing the arrays but before the rename.
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from capibara.model import checkpoint
        from test_checkpoint import make_state
        checkpoint.save_tree({str(tmp_path)!r}, 1, make_state(1))
        checkpoint._fsync_dir = lambda path: os._exit(3)
        checkpoint.save_tree({str(tmp_path)!r}, 2, make_state(2))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 3, proc.stderr
    assert any(p.name.startswith(".tmp.") for p in tmp_path.iterdir())
    manager = CheckpointManager(tmp_path, save_every=1, keep_max=5)
    assert manager.steps() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["step_00000001"]
    assert_trees_equal(manager.restore(make_state()), make_state(1))


def test_refuses_a_checkpoint_with_other_shapes(tmp_path) -> None:
    save_tree(tmp_path, 1, make_state(width=8))
    with pytest.raises(ConfigError) as caught:
        load_tree(tmp_path / "step_00000001", make_state(width=16))
    text = str(caught.value)
    assert text.startswith("error[R201]: checkpoint")
    assert "`['params']['embed']` has shape (16, 8) in the checkpoint, the model expects (16, 16)" in text
    assert "help: restore into a model built from the same configuration" in text


def test_refuses_missing_and_extra_leaves(tmp_path) -> None:
    state = make_state()
    save_tree(tmp_path, 1, state)
    other = {**state, "params": {**state["params"], "extra": jnp.zeros(3)}}
    del other["params"]["norm"]
    with pytest.raises(ConfigError) as caught:
        load_tree(tmp_path / "step_00000001", other)
    notes = caught.value.diagnostics[0].notes
    assert "`['params']['extra']` is in the model but not in the checkpoint" in notes
    assert any("['params']['norm']` is in the checkpoint but not in the model" in n for n in notes)


def test_refuses_a_damaged_checkpoint(tmp_path) -> None:
    path = save_tree(tmp_path, 1, make_state())
    data = bytearray((path / checkpoint.ARRAYS).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / checkpoint.ARRAYS).write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"error\[R202\].*does not match the digest"):
        load_tree(path, make_state())
    (path / checkpoint.MANIFEST).write_text("{")
    with pytest.raises(ConfigError, match=r"error\[R202\].*malformed"):
        load_tree(path, make_state())


def test_restore_from_an_empty_directory_says_so(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"error\[R203\]: no checkpoint in"):
        CheckpointManager(tmp_path, save_every=1, keep_max=1).restore(make_state())


# --------------------------------------------------------------------------- checking without loading


def test_check_compares_parameter_shapes_without_loading(tmp_path) -> None:
    state = make_state()
    save_tree(tmp_path, 2, state)
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
    path = save_tree(tmp_path / "run", 1, make_state())
    (path / checkpoint.ARRAYS).write_bytes(b"not an archive")
    assert [d.code for d in checkpoint.check_checkpoint(tmp_path / "run")] == ["R202"]
    (tmp_path / "empty").mkdir()
    assert [d.code for d in checkpoint.check_checkpoint(tmp_path / "empty")] == ["R203"]
    assert checkpoint.is_checkpoint_dir(tmp_path / "run") and checkpoint.is_checkpoint_dir(path)
    assert not checkpoint.is_checkpoint_dir(tmp_path / "empty")


def test_capibara_check_of_a_checkpoint_imports_neither_jax_nor_numpy() -> None:
    script = textwrap.dedent("""
        import io, sys
        import capibara.cli.app as cli
        out = io.StringIO()
        status = cli.main(["check", "--no-env", "tests/golden/checkpoints/tiny",
                           "tests/golden/R202-damaged-checkpoint.toml"], out=out)
        assert status == 0, out.getvalue()
        print(sorted(m for m in ("jax", "jaxlib", "numpy") if m in sys.modules))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-1] == "[]", proc.stdout
