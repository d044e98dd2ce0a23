"""nnforge.data: batching, splits, k-fold, standardisation, digits and the MNIST IDX reader."""
import gzip
import struct
import sys

import numpy as np
import pytest

import nnforge
from nnforge import data


def test_batches_cover_everything_in_order_without_shuffle():
    x = np.arange(23 * 3).reshape(23, 3)
    y = np.arange(23)
    got = list(data.batches(x, y, batch_size=5))
    assert [len(b[0]) for b in got] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in got]), y)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in got]), x)
    assert data.num_batches(23, 5) == 5 and data.num_batches(23, 5, drop_last=True) == 4


def test_batches_drop_last_and_shuffle_are_seeded():
    y = np.arange(50)
    nnforge.seed(3)
    a = [b[0] for b in data.batches(y, batch_size=8, shuffle=True, drop_last=True)]
    nnforge.seed(3)
    b = [b[0] for b in data.batches(y, batch_size=8, shuffle=True, drop_last=True)]
    assert len(a) == 6 and all(len(t) == 8 for t in a)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    flat = np.concatenate(a)
    assert len(np.unique(flat)) == 48 and not np.array_equal(flat, np.arange(48))
    # pairs stay aligned under shuffling
    for xb, yb in data.batches(y * 10, y, batch_size=7, shuffle=True, rng=1):
        np.testing.assert_array_equal(xb, yb * 10)


def test_batches_reject_bad_input():
    with pytest.raises(ValueError, match="same length"):
        list(data.batches(np.zeros(3), np.zeros(4)))
    with pytest.raises(ValueError, match="batch_size"):
        list(data.batches(np.zeros(3), batch_size=0))


def test_train_val_test_split_sizes_and_disjointness():
    x = np.arange(101)
    (tr,), (va,), (te,) = data.train_val_test_split(x, val_fraction=0.1, test_fraction=0.2, rng=0)
    assert (len(tr), len(va), len(te)) == (101 - 10 - 20, 10, 20)
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va, te])), x)


def test_stratified_split_keeps_class_proportions():
    y = np.repeat(np.arange(4), [40, 30, 20, 10])
    x = np.arange(100)
    (xtr, ytr), (xva, yva), (xte, yte) = data.train_val_test_split(x, y, val_fraction=0.1, test_fraction=0.2,
                                                                   rng=0, stratify=y)
    np.testing.assert_array_equal(np.bincount(yte, minlength=4), [8, 6, 4, 2])
    np.testing.assert_array_equal(np.bincount(yva, minlength=4), [4, 3, 2, 1])
    np.testing.assert_array_equal(y[xtr], ytr)
    with pytest.raises(ValueError, match="< 1"):
        data.train_val_test_split(x, val_fraction=0.5, test_fraction=0.5)


def test_kfold_every_sample_validated_exactly_once():
    n, k = 23, 5
    seen = []
    for tr, va in data.kfold(n, k, rng=0):
        assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == n
        assert len(va) in (4, 5)
        seen.append(va)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(n))
    with pytest.raises(ValueError):
        list(data.kfold(3, 5))


def test_standardizer_fits_on_train_only(rng):
    tr = rng.normal(5.0, 3.0, size=(200, 4))
    tr[:, 2] = 7.0  # constant feature: centred, not divided by ~0
    te = rng.normal(5.0, 3.0, size=(50, 4))
    st = data.Standardizer().fit(tr)
    out = st.transform(tr)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out[:, [0, 1, 3]].std(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(st.transform(te), (te - tr.mean(0)) / np.where(tr.std(0) < 1e-8, 1, tr.std(0)),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        st.transform(np.zeros((3, 5)))


def test_load_digits():
    x, y = data.load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32 and y.shape == (1797,)
    assert set(np.unique(y)) == set(range(10)) and x.max() == 16.0


def test_load_digits_without_sklearn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install \"nnforge\[train\]\""):
        data.load_digits()


def _idx_bytes(arr: np.ndarray, type_code: int = 0x08) -> bytes:
    return bytes([0, 0, type_code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _write(path, payload: bytes):
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)
    return path


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, rng, suffix):
    imgs = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    p = _write(tmp_path / f"imgs{suffix}", _idx_bytes(imgs))
    np.testing.assert_array_equal(data.read_idx(p), imgs)
    ints = rng.integers(-1000, 1000, size=(4, 2)).astype(">i4")
    p2 = _write(tmp_path / f"ints{suffix}", _idx_bytes(ints, 0x0C))
    got = data.read_idx(p2)
    assert got.dtype == np.int32 and np.array_equal(got, ints)


def test_read_idx_rejects_corrupt_files(tmp_path):
    good = _idx_bytes(np.zeros((3, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(_write(tmp_path / "a", b"\x12\x34" + good[2:]))
    with pytest.raises(ValueError, match="data bytes"):
        data.read_idx(_write(tmp_path / "b", good[:-1]))
    with pytest.raises(ValueError, match="shorter"):
        data.read_idx(_write(tmp_path / "c", b"\x00\x00"))
    with pytest.raises(ValueError, match="header"):
        data.read_idx(_write(tmp_path / "d", good[:9]))
    (tmp_path / "e.gz").write_bytes(b"not gzip data")
    with pytest.raises(ValueError, match="cannot read"):
        data.read_idx(tmp_path / "e.gz")


def _write_mnist(folder, rng, n_train=6, n_test=4, gz=True):
    sfx = ".gz" if gz else ""
    xs = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        lbls = rng.integers(0, 10, size=n, dtype=np.uint8)
        _write(folder / f"{stem}-images-idx3-ubyte{sfx}", _idx_bytes(imgs))
        _write(folder / f"{stem}-labels-idx1-ubyte{sfx}", _idx_bytes(lbls))
        xs[stem] = (imgs, lbls)
    return xs


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_finds_files(tmp_path, rng, gz):
    ref = _write_mnist(tmp_path, rng, gz=gz)
    (xtr, ytr), (xte, yte) = data.load_mnist(tmp_path)
    np.testing.assert_array_equal(xtr, ref["train"][0])
    np.testing.assert_array_equal(ytr, ref["train"][1])
    np.testing.assert_array_equal(xte, ref["t10k"][0])
    np.testing.assert_array_equal(yte, ref["t10k"][1])


def test_load_mnist_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_mnist(tmp_path)
    _write_mnist(tmp_path, rng)
    _write(tmp_path / "t10k-labels-idx1-ubyte.gz", _idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(ValueError, match="labels"):
        data.load_mnist(tmp_path)


@pytest.mark.parametrize("module,call", [
    ("sklearn.model_selection", lambda: data.train_val_test_split(np.arange(10), rng=0)),
    ("sklearn.model_selection", lambda: list(data.kfold(10, 2))),
    ("sklearn.preprocessing", lambda: data.Standardizer().fit(np.zeros((3, 2)))),
])
def test_sklearn_helpers_without_sklearn_say_what_to_install(monkeypatch, module, call):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=r"needs scikit-learn .*pip install \"nnforge\[train\]\""):
        call()


def test_splits_are_sklearns_and_seeded():
    from sklearn.model_selection import StratifiedKFold

    y = np.repeat(np.arange(3), [12, 9, 6])
    a = data.train_val_test_split(np.arange(27), y, val_fraction=0.2, test_fraction=0.2, rng=4, stratify=y)
    b = data.train_val_test_split(np.arange(27), y, val_fraction=0.2, test_fraction=0.2, rng=4, stratify=y)
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa[0], pb[0])
    np.testing.assert_array_equal(np.sort(np.concatenate([p[0] for p in a])), np.arange(27))
    folds = list(data.kfold(27, 3, stratify=y, rng=0))
    for _, va in folds:
        np.testing.assert_array_equal(np.bincount(y[va]), [4, 3, 2])  # each fold keeps the proportions
    seed = int(np.random.default_rng(0).integers(0, 2 ** 31 - 1))
    want = StratifiedKFold(3, shuffle=True, random_state=seed).split(np.arange(27), y)
    for (tr, va), (wtr, wva) in zip(folds, want):
        np.testing.assert_array_equal(va, wva)
        np.testing.assert_array_equal(tr, wtr)
    unshuffled = list(data.kfold(10, 2, shuffle=False))
    np.testing.assert_array_equal(unshuffled[0][1], np.arange(5))
