"""No plan records a kernel the model does not run: build the model from a plan,
run forward, loss and a train step, and count the calls of every kernel spec.

A representative subset, not the whole golden matrix (each model costs a
compile): the development config (attention, linalg, vq, moe) and the hybrid
example (attention, linalg, scan, conv, fft), compiled for this host at small
shapes. Collective specs (plans for more than one device) are not run by the
model yet; :attr:`Model.notes` says so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from capibara.compiler.driver import compile_sources
from capibara.model.facade import Model
from capibara.runtime.loader import load_plan

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["model.hidden_size=32", "model.num_heads=2", "model.max_seq_length=32",
         "model.vocab_size=64", "deployment.batch_size=2", "sparsity.mor_num_experts=4"]
CASES = {"development": ("configs/development/development.toml", ["model.num_layers=2"]),
         "hybrid_long_context": ("configs/examples/hybrid_long_context.toml",
                                 ["model.num_layers=4", "model.ssm_state_size=4"])}


def counted(fn, name, counts):
    def call(*args, **kwargs):
        counts[name] += 1
        return fn(*args, **kwargs)

    return call


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_kernel_spec_of_the_plan_is_called(case: str, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    path, sets = CASES[case]
    result = compile_sources([path], target="cpu", env=None, overrides=SMALL + sets)
    assert result.plan is not None, [str(d) for d in result.diagnostics]
    compiled = load_plan(result.plan, cache=False)
    counts: Counter[str] = Counter()
    for kernel in compiled.kernels:
        kernel.fn = counted(kernel.fn, kernel.spec.name, counts)
    model = Model.from_plan(compiled)
    # vq and moe bind per-call values (the runtime threshold, dropless routing) in the
    # model's bundle: each plan has at most one spec of either, counted there.
    by_family = {k.spec.family: k.spec.name for k in compiled.kernels}
    kernels = model._net.kernels
    wrapped = {name: counted(getattr(kernels, name), by_family[family], counts)
               for name, family in (("vq", "vq"), ("moe", "moe"), ("moe_dropless", "moe"))
               if family in by_family}
    model._net.kernels = replace(kernels, **wrapped)

    batch = np.arange(2 * 32, dtype=np.int32).reshape(2, 32) % 64
    model.forward(batch)
    model.train_step(batch)
    never = [k.spec.name for k in compiled.kernels if counts[k.spec.name] == 0]
    assert not never, f"the plan records kernels the model never called: {never}"
