"""The dispatch table (csrc/common/dispatch.h): slots, levels, extension features.

The slot rule is restated here from its documentation, not imported from C++: a slot
is usable when its ISA level <= the active level and the extension feature it needs is
present and not disabled; a stub runs its most preferred usable registered slot.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import nnforge
from nnforge import _core

# Slots in increasing preference: (name, level, extension feature or None).
SLOTS = [
    ("generic", "generic", None),
    ("avx2", "avx2", None),
    ("avx_vnni", "avx2", "avx_vnni"),
    ("avx512", "avx512", None),
    ("avx512_vnni", "avx512", "avx512_vnni"),
    ("avx512_bf16", "avx512", "avx512_bf16"),
]
LEVELS = ["generic", "avx2", "avx512"]
EXTENSIONS = ["avx512_bf16", "avx512_vnni", "avx_vnni"]
FEATURES = nnforge.cpu_features()


def expected_slot(registered, level, disabled=()):
    best = None
    for name, slot_level, feature in SLOTS:
        usable = LEVELS.index(slot_level) <= LEVELS.index(level) and (
            feature is None or (FEATURES[feature] and feature not in disabled))
        if usable and name in registered:
            best = name
    return best


def probe():
    slot, dot = _core.isa_probe()
    assert dot == 128, f"probe on slot {slot} computed {dot}, expected 64 products of 1*2 = 128"
    return slot


@pytest.fixture
def no_disabled():
    """Start with every feature enabled and restore the caller's set afterwards."""
    before = nnforge.disabled_features()
    nnforge.set_disabled_features([])
    yield
    nnforge.set_disabled_features(before)


def test_every_stub_has_a_generic_registration():
    rows = nnforge.dispatch_table()
    families = {r["family"] for r in rows}
    assert {"nn", "optim", "pool", "conv", "gemm"} <= families
    for r in rows:
        assert "generic" in r["registered"], f"{r['family']}.{r['op']} has no generic fallback"
        assert set(r["registered"]) <= {name for name, _, _ in SLOTS}


def test_feature_flags_are_booleans_and_consistent():
    for name in ("avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512vl", "avx512dq",
                 *EXTENSIONS, "amx_tile", "amx_bf16", "amx_int8"):
        assert isinstance(FEATURES[name], bool), name
    isas = nnforge.available_isas()
    assert ("avx512" in isas) == all(FEATURES[f] for f in ("avx512f", "avx512bw", "avx512vl",
                                                           "avx512dq", "avx2", "fma"))
    assert ("avx2" in isas) == all(FEATURES[f] for f in ("avx2", "fma", "f16c", "bmi2"))


@pytest.mark.parametrize("level", nnforge.available_isas())
def test_each_level_selects_a_slot_of_that_level_or_below(level, no_disabled):
    with nnforge.use_isa(level):
        for r in nnforge.dispatch_table():
            assert r["active"] == expected_slot(r["registered"], level), f"{r['family']}.{r['op']}"
            slot_level = dict((n, lv) for n, lv, _ in SLOTS)[r["active"]]
            assert LEVELS.index(slot_level) <= LEVELS.index(level)
        gemm = next(r for r in nnforge.dispatch_table() if r["op"] == "sgemm")
        assert gemm["variant"].startswith(gemm["active"] + "_")  # auto = that slot's variant


@pytest.mark.parametrize("level", nnforge.available_isas())
def test_probe_runs_the_best_slot_of_each_level(level, no_disabled):
    with nnforge.use_isa(level):
        assert probe() == expected_slot([n for n, _, _ in SLOTS], level)


@pytest.mark.parametrize("feature", EXTENSIONS)
def test_probe_selects_each_extension_slot_when_present(feature, no_disabled):
    # Disable every better slot's feature so this one is the best left.
    if not FEATURES[feature]:
        pytest.skip(f"CPU lacks {feature}")
    name, level, _ = next(s for s in SLOTS if s[2] == feature)
    better = [f for _, _, f in SLOTS[[s[0] for s in SLOTS].index(name) + 1:] if f]
    with nnforge.use_isa(level), nnforge.disable_features(*better):
        assert probe() == feature


@pytest.mark.parametrize("feature", EXTENSIONS)
def test_disabling_a_feature_falls_back(feature, no_disabled):
    name, level, _ = next(s for s in SLOTS if s[2] == feature)
    if level not in nnforge.available_isas():
        pytest.skip(f"needs ISA level {level}")
    better = [f for _, _, f in SLOTS[[s[0] for s in SLOTS].index(name) + 1:] if f]
    off = [*better, feature]
    with nnforge.use_isa(level), nnforge.disable_features(*off):
        assert sorted(nnforge.disabled_features()) == sorted(off)
        slot = probe()
        assert slot != feature
        assert slot == expected_slot([n for n, _, _ in SLOTS], level, off)
        row = next(r for r in nnforge.dispatch_table() if r["op"] == "isa_probe")
        assert row["active"] == slot
    assert nnforge.disabled_features() == []  # restored


def test_avx512_fallback_chain(no_disabled):
    if "avx512" not in nnforge.available_isas():
        pytest.skip("needs avx512")
    offs = ([], ["avx512_bf16"], ["avx512_bf16", "avx512_vnni"])
    chain = []
    with nnforge.use_isa("avx512"):
        for off in offs:
            with nnforge.disable_features(*off):
                chain.append(probe())
    all_slots = [n for n, _, _ in SLOTS]
    assert chain == [expected_slot(all_slots, "avx512", off) for off in offs]
    if FEATURES["avx512_bf16"] and FEATURES["avx512_vnni"]:
        assert chain == ["avx512_bf16", "avx512_vnni", "avx512"]


def test_disabled_features_leave_plain_kernels_alone(rng, no_disabled):
    # Stubs without extension slots keep their level's slot; results are unchanged.
    import numpy as np

    a = rng.standard_normal((33, 17)).astype(np.float32)
    b = rng.standard_normal((17, 9)).astype(np.float32)
    before = nnforge.ops.matmul(a, b)
    with nnforge.disable_features(*EXTENSIONS):
        assert sorted(nnforge.disabled_features()) == sorted(EXTENSIONS)
        np.testing.assert_array_equal(nnforge.ops.matmul(a, b), before)
        for r in nnforge.dispatch_table():
            if r["op"] != "isa_probe":
                assert r["active"] == expected_slot(r["registered"], nnforge.get_isa(), EXTENSIONS)


def test_unknown_feature_names_are_refused(no_disabled):
    nnforge.set_disabled_features(["avx_vnni"])
    with pytest.raises(ValueError, match=r"unknown CPU feature 'sse9' \(known: avx512_bf16, avx512_vnni, avx_vnni\)"):
        nnforge.set_disabled_features(["avx512_bf16", "sse9"])
    assert nnforge.disabled_features() == ["avx_vnni"]  # nothing changed
    with pytest.raises(ValueError, match="unknown CPU feature"):
        with nnforge.disable_features("amx"):
            pass
    assert nnforge.disabled_features() == ["avx_vnni"]
    with pytest.raises(TypeError, match="list of feature names"):
        nnforge.set_disabled_features("avx_vnni")
    with pytest.raises(TypeError, match="feature names are str"):
        nnforge.set_disabled_features([3])


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120)


def test_env_var_disables_features_at_import():
    code = "import nnforge; print(','.join(nnforge.disabled_features())); print(nnforge._core.isa_probe()[0])"
    proc = run_python(code, NNFORGE_DISABLE=" avx512_bf16 ,avx512_vnni", NNFORGE_ISA="generic")
    assert proc.returncode == 0, proc.stderr
    disabled, slot = proc.stdout.split()
    assert disabled == "avx512_bf16,avx512_vnni"
    assert slot == "generic"


def test_env_var_unknown_feature_fails_import_clearly():
    proc = run_python("import nnforge", NNFORGE_DISABLE="avx512_bf16,sse9")
    assert proc.returncode != 0
    assert "unknown CPU feature 'sse9'" in proc.stderr
    assert "avx_vnni" in proc.stderr  # the known names are listed
