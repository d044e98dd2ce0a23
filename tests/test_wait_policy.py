"""nnforge's OpenMP wait policy: GOMP_SPINCOUNT set at import only when nobody chose one,
and `nnforge bench mixed` (nnforge alternating with NumPy / PyTorch calls)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nnforge import _wait_policy

# Prints what the child saw after `import nnforge` (run with a clean OpenMP environment).
PROBE = ("import os, json, nnforge; "
         "print(json.dumps([os.environ.get('GOMP_SPINCOUNT'), nnforge._config.config()['omp_wait']]))")
OMP_VARS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "NNFORGE_SPINCOUNT")


def probe(code: str = PROBE, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in OMP_VARS}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


def seen(code: str = PROBE, **env: str) -> list:
    proc = probe(code, **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_default_spincount_is_set_when_nobody_chose_one():
    count, line = seen()
    assert count == str(_wait_policy.DEFAULT_SPINCOUNT)
    assert line == f"GOMP_SPINCOUNT={count} (nnforge default)"


@pytest.mark.parametrize("var, value", [("GOMP_SPINCOUNT", "123"), ("OMP_WAIT_POLICY", "passive"),
                                        ("OMP_WAIT_POLICY", "active")])
def test_the_users_choice_stands(var, value):
    count, line = seen(**{var: value})
    assert count == (value if var == "GOMP_SPINCOUNT" else None)
    assert "user" in line


@pytest.mark.parametrize("value", ["0", "5000"])
def test_nnforge_spincount_picks_the_count(value):
    assert seen(NNFORGE_SPINCOUNT=value) == [value, f"GOMP_SPINCOUNT={value} (NNFORGE_SPINCOUNT)"]


def test_nnforge_spincount_default_leaves_libgomp_alone():
    count, line = seen(NNFORGE_SPINCOUNT="default")
    assert count is None and "libgomp's own" in line


@pytest.mark.parametrize("value", ["abc", "-1", "1e4"])
def test_bad_nnforge_spincount_fails_at_import_naming_it(value):
    proc = probe("import nnforge", NNFORGE_SPINCOUNT=value)
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr and "NNFORGE_SPINCOUNT" in proc.stderr and repr(value) in proc.stderr


def test_libgomp_loaded_first_is_left_as_it_is():
    # As when torch (which bundles libgomp.so.1) is imported before nnforge.
    code = "import ctypes; ctypes.CDLL('libgomp.so.1'); " + PROBE
    count, line = seen(code)
    assert count is None and "already loaded" in line


# --- nnforge bench mixed ------------------------------------------------------------------------
def test_mixed_child_times_every_case():
    from nnforge.bench import mixed
    res = mixed._child("nnforge", [16], iters=2, repeats=1)
    labels = [c["case"] for c in res["cases"]]
    assert labels[0] == "matmul 16^3 | numpy @" and labels[-1] == "MLP step | NumPy loss"
    for c in res["cases"]:
        assert all(c[k] > 0 for k in ("alone_nnf", "alone_peer", "mix_nnf", "mix_peer")), c


def test_mixed_runs_each_policy_in_its_own_process(capsys):
    from nnforge.cli import main
    assert main(["bench", "mixed", "--policies", "nnforge,spin=0", "--sizes", "16", "--iters", "2",
                 "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "| numpy @" in line]
    assert [r.split()[5] for r in rows] == ["nnforge", "spin=0"]
    assert "mixed / alone" in out


def test_mixed_rejects_an_unknown_policy():
    from nnforge.cli import main
    with pytest.raises(ValueError, match="unknown policy 'fast'"):
        main(["bench", "mixed", "--policies", "fast"])
