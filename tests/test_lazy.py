"""capibara.lazy.lazy_exports: a name's module is imported on first use, once."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from capibara.lazy import lazy_exports

ROOT = Path(__file__).resolve().parents[1]


def test_a_name_loads_its_module_on_first_use_and_stays() -> None:
    sys.modules.pop("colorsys", None)
    namespace: dict = {}
    getattr_ = lazy_exports("pkg", namespace, {"rgb_to_hsv": "colorsys"})
    assert "colorsys" not in sys.modules  # declaring the export imports nothing
    function = getattr_("rgb_to_hsv")
    assert function is sys.modules["colorsys"].rgb_to_hsv
    assert namespace["rgb_to_hsv"] is function  # later lookups skip __getattr__


def test_an_unknown_name_is_the_usual_attribute_error() -> None:
    getattr_ = lazy_exports("pkg", {}, {"rgb_to_hsv": "colorsys"})
    with pytest.raises(AttributeError, match="^module 'pkg' has no attribute 'hsv'$"):
        getattr_("hsv")


#: Every package whose ``__init__`` exports names lazily.
LAZY_PACKAGES = sorted(
    ".".join(init.parent.relative_to(ROOT).parts)
    for init in (ROOT / "capibara").rglob("__init__.py") if "lazy_exports(" in init.read_text())


def test_the_scan_finds_the_lazy_packages() -> None:
    assert {"capibara", "capibara.config.legacy", "capibara.kernels.scan"} <= set(LAZY_PACKAGES)


@pytest.mark.jax
@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_lazy_export_resolves(package: str) -> None:
    """A renamed or moved function would otherwise surface only when a user first
    touches its name."""
    module = importlib.import_module(package)
    for name in module.__all__:
        getattr(module, name)
