"""Shared fixtures: every ISA path this CPU has, fresh-but-reported seeds, tolerances."""
from __future__ import annotations

import os
import secrets

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import nnforge

# Hypothesis profiles (tests/test_properties.py): "nnforge" keeps the default suite fast;
# --hypothesis-profile=long runs many more examples. No example database is written.
_HYPOTHESIS = dict(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("nnforge", max_examples=20, **_HYPOTHESIS)
settings.register_profile("long", max_examples=400, **_HYPOTHESIS)
settings.load_profile("nnforge")

ISAS = nnforge.available_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test once per SIMD path this CPU supports (generic always)."""
    with nnforge.use_isa(request.param):
        yield request.param


@pytest.fixture
def seed(request):
    """A fresh seed per test (or NNFORGE_TEST_SEED to replay); shown when a test fails."""
    value = int(os.environ.get("NNFORGE_TEST_SEED", secrets.randbits(32)))
    request.node.user_properties.append(("seed", value))
    return value


@pytest.fixture
def rng(seed):
    return np.random.default_rng(seed)


@pytest.fixture
def threads():
    """Restore the thread count after a test that changes it."""
    before = nnforge.get_num_threads()
    yield
    nnforge.set_num_threads(before)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        seeds = [v for k, v in item.user_properties if k == "seed"]
        if seeds:
            report.sections.append(("seed", f"replay with NNFORGE_TEST_SEED={seeds[0]}"))


def fp32_dot_tol(k: int, magnitude: float = 1.0) -> float:
    """Error bound for a float32 dot product of length k with |terms| <= magnitude.

    Worst case grows like k * eps; blocked/tree orders give ~sqrt(k) in practice.
    We use a bound between the two (eps * (k + 2) * magnitude scaled by a small
    constant) so that a real bug (a dropped or doubled term) always exceeds it.
    """
    eps = np.finfo(np.float32).eps
    return 2.0 * eps * (k + 2) * magnitude
