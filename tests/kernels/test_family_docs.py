"""The examples in the kernel families' package docstrings run and say what they print.

attention, conv, fft and scan run theirs beside their other tests; these four
families' examples had no test.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

pytestmark = pytest.mark.jax


@pytest.mark.parametrize("family", ["collective", "linalg", "moe", "vq"])
def test_package_docstring_examples(family: str) -> None:
    module = importlib.import_module(f"capibara.kernels.{family}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
