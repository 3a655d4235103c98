"""capibara train: a job that resumes exactly, stops cleanly on a signal, and reports."""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import jax
import numpy as np
import pytest

import capibara
import capibara.cli.app as cli
from capibara.model import Model

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "golden" / "data" / "tiny"  # 64 pieces, prepared from data/tales.txt

CONFIG = """
[model]
hidden_size = 16
num_layers = 1
num_heads = 2
vocab_size = 64
max_seq_length = 16

[vector_quantization]
enabled = false

[sparsity]
enabled = false

[deployment]
batch_size = 4

[training]
learning_rate = 0.01
warmup_steps = 1
decay_steps = 6
save_checkpoint_steps = 2
keep_checkpoint_max = 3
async_checkpointing = true
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tiny.toml"
    path.write_text(CONFIG)
    return path


def train(config: Path, run_dir: Path, **options):
    return capibara.train(config, data=DATA, run_dir=run_dir, target="cpu", env=None,
                          log_every=1, eval_every=3, eval_batches=2, progress=False, **options)


def params_of(result) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(result.model.params)]


@pytest.fixture(scope="module")
def uninterrupted(config, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return run_dir, train(config, run_dir)


def test_a_run_trains_to_the_last_step_and_records_it(uninterrupted) -> None:
    run_dir, result = uninterrupted
    assert (result.start_step, result.step, result.stopped_by) == (0, 6, None)
    assert [step for step, _ in result.losses] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(loss) for _, loss in result.losses)
    assert [step for step, _ in result.eval_losses] == [3, 6]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if not p.name.startswith(".")) \
        == ["2", "4", "6"]
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert records[0]["event"] == "start" and records[-1]["event"] == "finish"
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]
    plan = capibara.load_plan_file(run_dir / "train.plan.json")
    assert records[0]["plan"] == plan.digest
    assert "[training]" in (run_dir / "config.toml").read_text()


def test_a_signal_stops_after_saving_and_the_rerun_ends_where_the_uninterrupted_one_did(
        config, uninterrupted, tmp_path, monkeypatch) -> None:
    _, expected = uninterrupted
    real_step = Model.train_step

    def step_then_sigterm_at_three(self, batch):
        metrics = real_step(self, batch)
        if self.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the job's handler, in this thread
        return metrics

    monkeypatch.setattr(Model, "train_step", step_then_sigterm_at_three)
    stopped = train(config, tmp_path)
    monkeypatch.undo()
    assert (stopped.step, stopped.stopped_by) == (3, "SIGTERM")
    assert "3" in os.listdir(tmp_path / "checkpoints")  # saved on the way out, off the schedule
    resumed = train(config, tmp_path)
    assert (resumed.start_step, resumed.step) == (3, 6)
    # The same batches in the same order, the same optimizer state: the same run.
    assert [loss for _, loss in resumed.losses] == pytest.approx(
        [loss for step, loss in expected.losses if step > 3], rel=1e-5)
    for got, want in zip(params_of(resumed), params_of(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_cli_report_and_a_finished_run_resumed_again(config, uninterrupted, capsys) -> None:
    run_dir, _ = uninterrupted
    out = io.StringIO()
    assert cli.main(["report", str(run_dir)], out=out) == 0
    text = out.getvalue()
    assert "steps      1 to 6 (6 logged)" in text and "curve" in text and "finish" in text
    out = io.StringIO()
    status = cli.main(["train", str(config), "--target", "cpu", "--no-env", "--data", str(DATA),
                       "--run-dir", str(run_dir), "--steps", "6", "--show-memory"], out=out)
    err = capsys.readouterr().err
    assert status == 0, err
    assert "steps 6 → 6 (resumed at step 6)" in out.getvalue()
    assert "memory     plan estimate" in err and "estimate/XLA" in err


def test_set_on_a_plan_is_a_usage_error(uninterrupted, capsys) -> None:
    run_dir, _ = uninterrupted
    status = cli.main(["train", str(run_dir / "train.plan.json"), "--set", "model.num_layers=2",
                       "--data", str(DATA), "--run-dir", str(run_dir)], out=io.StringIO())
    assert status == 2 and "--set changes a config" in capsys.readouterr().err


def test_run_generates_from_the_runs_checkpoint_with_its_tokenizer(uninterrupted, capsys) -> None:
    run_dir, _ = uninterrupted
    out = io.StringIO()
    status = cli.main(["run", str(run_dir / "train.plan.json"), "--generate", "3",
                       "--checkpoint", str(run_dir), "--prompt", "The sun"], out=out)
    assert status == 0, capsys.readouterr().err
    text = out.getvalue()
    assert f"weights    step 6 of {run_dir}" in text
    assert 'text       "The sun' in text
    status = cli.main(["run", str(run_dir / "train.plan.json"), "--generate", "2",
                       "--prompt-ids", "1,99"], out=io.StringIO())
    assert status == 1 and "outside the model's vocabulary of 64" in capsys.readouterr().err
    status = cli.main(["run", str(run_dir / "train.plan.json"), "--generate", "8",
                       "--prompt-ids", ",".join(["1"] * 12)], out=io.StringIO())
    assert status == 2 and "exceed the model's max_seq_length 16" in capsys.readouterr().err


def test_a_run_moved_to_a_host_with_other_cpu_flags_resumes(config, uninterrupted, tmp_path) -> None:
    """A preempted job restarted elsewhere: only the host's CPU flags and memory differ."""
    import shutil
    from dataclasses import replace

    from capibara.compiler import compile_sources
    from capibara.plan import write_plan_file
    from capibara.targets import get_target

    run_dir, done = uninterrupted
    moved = tmp_path / "moved"
    shutil.copytree(run_dir, moved)
    here = get_target("cpu")
    elsewhere = replace(here, cpu_features=here.cpu_features ^ {"avx_vnni"},
                        memory_per_device_gib=(here.memory_per_device_gib or 8.0) * 2)
    recorded = compile_sources([config], target=elsewhere, env=None).plan
    assert recorded.digest != done.model.plan.digest
    (moved / "train.plan.json").unlink()
    write_plan_file(recorded, moved / "train.plan.json")

    resumed = train(config, moved, steps=7)
    assert (resumed.start_step, resumed.step) == (6, 7)

    other = compile_sources([config], target=elsewhere, env=None,
                            overrides=["training.learning_rate=0.02"]).plan
    (moved / "train.plan.json").unlink()
    write_plan_file(other, moved / "train.plan.json")
    with pytest.raises(capibara.ConfigError) as refused:
        train(config, moved, steps=8)
    errors = [d for d in refused.value.diagnostics if d.is_error]
    assert [d.code for d in errors] == ["R205"]
    assert [n for n in errors[0].notes if "`training.learning_rate`" in n]
    assert not [n for n in errors[0].notes if "cpu_features" in n or "memory" in n]
