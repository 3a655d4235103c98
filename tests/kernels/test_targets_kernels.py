"""Registry: every implementation the catalog or the optimizer can name exists in its
family's ``VARIANTS``, and takes the static parameters the optimizer writes.

This test imports the kernel families (and so JAX); the compile path never does.
A family that has not been written yet is skipped, not passed.
"""

from __future__ import annotations

import inspect

import pytest

from capibara.compiler.driver import compile_config
from capibara.compiler.kernel_uses import kernel_uses
from capibara.config.model_config import ModularModelConfig
from capibara.compiler.passes.select_kernels import SELECTORS
from capibara.targets import CATALOG


def variants(family: str):
    module = pytest.importorskip(f"capibara.kernels.{family}",
                                 reason=f"kernel family `{family}` is not written yet")
    return module.VARIANTS


CATALOG_PAIRS = sorted({(family, name) for target in CATALOG.values()
                        for family, names in target.kernels.items() for name in names})
LOWERED_FAMILIES = sorted({use.family for use in kernel_uses(ModularModelConfig())})


@pytest.mark.parametrize("family, name", CATALOG_PAIRS, ids=[f"{f}/{n}" for f, n in CATALOG_PAIRS])
def test_catalog_implementations_exist(family: str, name: str) -> None:
    assert name in variants(family), f"the catalog lists {family}/{name}, which does not exist"


@pytest.mark.parametrize("family, name", sorted(SELECTORS), ids=[f"{f}/{n}" for f, n in sorted(SELECTORS)])
def test_selectable_implementations_exist(family: str, name: str) -> None:
    assert name in variants(family)


@pytest.mark.parametrize("family", LOWERED_FAMILIES)
def test_every_lowered_family_has_a_reference(family: str) -> None:
    assert "reference" in variants(family)


def test_selectors_are_listed_in_the_catalog() -> None:
    """A selector nobody's catalog entry lists could never run."""
    assert set(SELECTORS) <= set(CATALOG_PAIRS)


@pytest.mark.parametrize("target", ["cpu", "cpu-amx", "cpu-arm", "gpu-h100", "tpu_v4-32", "tpu_v6e-8"])
@pytest.mark.parametrize("mode", ["default", "aggressive", "conservative"])
def test_chosen_params_are_keyword_arguments_of_the_variant(target: str, mode: str) -> None:
    config = ModularModelConfig(hidden_size=256, num_layers=2, compile_mode=mode, vq_precision="int8"
                                if target == "cpu-arm" else "auto", tpu_mesh_shape="auto")
    plan = compile_config(config, CATALOG[target]).plan
    assert plan is not None
    for spec in plan.kernels:
        variant = variants(spec.family)[spec.implementation]
        accepted = inspect.signature(variant.fn).parameters
        unknown = set(spec.params) - set(accepted)
        assert not unknown, f"{spec.name}: {spec.family}/{spec.implementation} takes no {unknown}"
        assert CATALOG[target].platform in variant.platforms
