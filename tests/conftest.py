"""Shared pytest configuration: the golden-file flag, hypothesis profiles, and the
``shared_dir`` fixture for files that only a full checkout has beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

#: ``../shared`` beside the repository (benchmark configs, the toml-test suite): a user's
#: clone has none. Tests that need it skip with the reason, unless
#: ``CAPIBARA_REQUIRE_SHARED`` is set (CI sets it), where its absence fails them.
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir():
    """``../shared``; the test is skipped, with the reason, where a clone has none."""
    if not SHARED.is_dir():
        message = f"{SHARED} not found: a full checkout has it beside the repository"
        if os.environ.get("CAPIBARA_REQUIRE_SHARED"):
            pytest.fail(message + " (CAPIBARA_REQUIRE_SHARED is set)")
        pytest.skip(message)
    return SHARED

settings.register_profile(
    "default", max_examples=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "fast", max_examples=10, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long", max_examples=2000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/*.out from the current output (review the diff)")


# `make test-fast` runs the JAX-free stages' tests with CAPIBARA_TEST_TIER=fast;
# this keeps that tier honest: a test that pulls JAX in belongs to the full suite.
def pytest_sessionfinish(session, exitstatus):
    import sys

    if os.environ.get("CAPIBARA_TEST_TIER") == "fast" and "jax" in sys.modules and exitstatus == 0:
        session.exitstatus = 1
        sys.stderr.write("\nerror: the fast tier imported JAX; move the test that needs it "
                         "out of the fast directories (Makefile: FAST_TESTS)\n")
