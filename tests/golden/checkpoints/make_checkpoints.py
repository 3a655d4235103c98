"""Writes the checkpoints of the golden cases of `capibara check CONFIG CHECKPOINT` (README.md).

Run from the repository root: `python tests/golden/checkpoints/make_checkpoints.py`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jax

from capibara.model.checkpoint import CheckpointManager
from capibara.model.params import init_params
from capibara.compiler.model_spec import ModelSpec
from capibara.config.sources import resolve_config

HERE = Path(__file__).resolve().parent


def main() -> None:
    config = resolve_config([HERE.parents[1] / "golden" / "R202-damaged-checkpoint.toml"], env=None).config
    params = init_params(ModelSpec.from_config(config), jax.random.key(0))
    for name in ("tiny", "damaged", "interrupted"):
        shutil.rmtree(HERE / name, ignore_errors=True)
        with CheckpointManager(HERE / name, save_every=1, keep_max=1, compress=True) as manager:
            manager.save(3, {"params": params})
        (HERE / name / ".capibara-lock").unlink()
    (HERE / "damaged" / "3" / "state" / "manifest.ocdbt").unlink()
    # What a run killed during its first save leaves: only orbax's temporary folder.
    (HERE / "interrupted" / "3").rename(HERE / "interrupted" / "3.orbax-checkpoint-tmp")
    (HERE / "interrupted" / "3.orbax-checkpoint-tmp" / "_CHECKPOINT_METADATA").unlink()


if __name__ == "__main__":
    main()
