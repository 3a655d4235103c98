"""The JAX-free kernel contracts agree with the kernel families they describe."""

from __future__ import annotations

import inspect
from importlib import import_module
from pathlib import Path

import pytest

from capibara.kernels.contracts import CONTRACTS, contract, families

KERNELS = Path(__file__).resolve().parents[2] / "capibara" / "kernels"
FOLDERS = sorted(p.parent.name for p in KERNELS.glob("*/__init__.py"))
#: Families whose loader passes the plan's arrays by the variant's positional names.
POSITIONAL = ("attention", "vq", "scan", "fft", "conv")


def test_every_family_folder_has_a_contract_and_no_contract_lacks_a_folder() -> None:
    assert FOLDERS == list(families())


def test_names_that_are_not_families_have_no_contract() -> None:
    for name in ("base", "..os", "contracts", "", "attention/../linalg", None, 3):
        assert contract(name) is None


@pytest.mark.jax
@pytest.mark.parametrize("family", FOLDERS)
def test_contract_variants_and_parameters_match_the_family(family: str) -> None:
    variants = import_module(f"capibara.kernels.{family}").VARIANTS
    declared = CONTRACTS[family]
    assert set(declared.variants) == set(variants)
    for name, variant in variants.items():
        assert set(variant.defaults) <= set(declared.variants[name]), (family, name)


@pytest.mark.jax
@pytest.mark.parametrize("family", POSITIONAL)
def test_contract_arguments_are_the_variants_array_arguments(family: str) -> None:
    variants = import_module(f"capibara.kernels.{family}").VARIANTS
    for variant in variants.values():
        positional = [p.name for p in inspect.signature(variant.fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                      and p.default is p.empty]
        assert positional == list(CONTRACTS[family].arguments), (family, variant.name)


def test_checking_a_plan_imports_no_kernel_code() -> None:
    # The families' JAX-free spec modules may load; their variants and JAX may not.
    import subprocess
    import sys

    script = ("import sys\nfrom capibara.plan import validate_plan\n"
              "from capibara.testing.plans import small_plan\nvalidate_plan(small_plan())\n"
              "print(sorted(m for m in sys.modules if m.startswith(('jax', 'capibara.kernels.'))))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = eval(done.stdout)
    assert "capibara.kernels.contracts" in loaded, done.stdout
    heavy = [m for m in loaded if m == "jax" or m.startswith("jax.")
             or m.rsplit(".", 1)[-1] not in ("contracts", "specs", "selection", "spec", "cost")
             and m.count(".") > 2]
    assert not heavy, heavy
