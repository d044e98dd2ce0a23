"""nnforge.text: tokenizers round-trip, the bundled corpus, the split, context windows."""
import numpy as np
import pytest

from nnforge import text


def test_corpus_is_pydoc_topics_in_key_order():
    from pydoc_data import topics
    corpus = text.load_corpus()
    keys = sorted(topics.topics)
    assert corpus.startswith(topics.topics[keys[0]]) and corpus.endswith(topics.topics[keys[-1]])
    assert len(corpus) == sum(len(v) for v in topics.topics.values())
    assert len(corpus) > 100_000


def test_corpus_from_file(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("héllo — wörld ✓\n", encoding="utf-8")
    assert text.load_corpus(str(p)) == "héllo — wörld ✓\n"


def test_char_tokenizer_round_trip():
    corpus = text.load_corpus()
    tok = text.CharTokenizer.from_text(corpus)
    assert tok.chars == sorted(set(corpus)) and tok.vocab_size == len(set(corpus))
    ids = tok.encode(corpus[:5000])
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < tok.vocab_size
    assert tok.decode(ids) == corpus[:5000]
    again = text.tokenizer_from_json(tok.to_json())
    assert again.chars == tok.chars
    np.testing.assert_array_equal(again.encode(corpus[:100]), ids[:100])
    assert tok.encode("").shape == (0,) and tok.decode([]) == ""


def test_char_tokenizer_errors():
    tok = text.CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match="'z' is not in"):
        tok.encode("abz")
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="distinct"):
        text.CharTokenizer(["a", "a"])


def test_byte_tokenizer_round_trip():
    tok = text.ByteTokenizer()
    s = "naïve café — 日本語 🐍\x00\n"
    ids = tok.encode(s)
    assert ids.dtype == np.int64 and len(ids) == len(s.encode("utf-8")) and ids.max() < 256
    assert tok.decode(ids) == s
    assert tok.decode(ids[:-3].tolist() + [0xF0]).endswith("\ufffd")  # a cut character: replaced, no error
    assert isinstance(text.tokenizer_from_json(tok.to_json()), text.ByteTokenizer)
    with pytest.raises(ValueError, match="256"):
        tok.decode([256])


def test_train_val_split_is_contiguous():
    ids = np.arange(1000)
    tr, va = text.train_val_split(ids, 0.1)
    assert len(tr) == 900 and len(va) == 100
    np.testing.assert_array_equal(np.concatenate([tr, va]), ids)
    with pytest.raises(ValueError, match="val_fraction"):
        text.train_val_split(ids, 1.0)
    with pytest.raises(ValueError, match="too few"):
        text.train_val_split(np.arange(3), 0.1)


def test_windows_are_shifted_slices_of_the_stream():
    stream = np.random.default_rng(0).integers(0, 50, 500)
    w = text.TextWindows(stream, context=16, seed=7)
    x, y = w.batch(9)
    assert x.shape == y.shape == (9, 16) and x.dtype == y.dtype == np.int64
    assert x.flags.c_contiguous and y.flags.c_contiguous
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    for row_x, row_y in zip(x, y):  # each row is stream[s:s+16], its target stream[s+1:s+17]
        starts = [s for s in range(len(stream) - 16) if np.array_equal(stream[s:s + 16], row_x)]
        assert any(np.array_equal(stream[s + 1:s + 17], row_y) for s in starts)


def test_windows_seeded_and_cover_the_stream():
    stream = np.arange(200)
    a = text.TextWindows(stream, 10, seed=3)
    b = text.TextWindows(stream, 10, seed=3)
    c = text.TextWindows(stream, 10, seed=4)
    xa, _ = a.batch(50)
    np.testing.assert_array_equal(xa, b.batch(50)[0])
    assert not np.array_equal(xa, c.batch(50)[0])
    starts = np.concatenate([a.batch(500)[0][:, 0] for _ in range(4)])
    assert starts.min() == 0 and starts.max() == 200 - 10 - 1  # the last full window is reachable


def test_windows_errors():
    with pytest.raises(ValueError, match="more than context=10"):
        text.TextWindows(np.arange(10), 10)
    with pytest.raises(ValueError, match="context"):
        text.TextWindows(np.arange(10), 0)


def test_stream_rows_continue_across_batches():
    ids = np.arange(1000)
    s = text.TextStream(ids, context=7, batch_size=5, seed=3)
    x1, y1 = s.batch(5)
    assert s.restarted and x1.shape == (5, 7) and x1.dtype == np.int64
    np.testing.assert_array_equal(y1, x1 + 1)            # ids are positions: y is the next token
    x2, _ = s.batch()
    assert not s.restarted
    np.testing.assert_array_equal(x2[:, 0], x1[:, -1] + 1)  # row b continues row b
    row = np.diff(x1[:, 0])
    assert (row == row[0]).all() and row[0] >= 7 * ((1000 - 7) // 5 // 7)  # equal rows over the stream


def test_stream_restarts_each_pass_at_a_seeded_offset():
    ids = np.arange(200)
    s = text.TextStream(ids, context=4, batch_size=3, seed=0)
    firsts, n = [], 0
    for _ in range(60):
        x, y = s.batch()
        assert x.max() < 200 and y.max() < 200
        if s.restarted:
            firsts.append(int(x[0, 0]))
            n = 0
        n += 1
        assert n <= (200 - 1 - firsts[-1]) // 3 // 4
    assert len(firsts) >= 3 and all(0 <= f < 4 for f in firsts)
    t = text.TextStream(ids, context=4, batch_size=3, seed=0)
    for _ in range(7):
        t.batch()
    state = t.state()
    want = [t.batch() for _ in range(30)]
    u = text.TextStream(ids, context=4, batch_size=3, seed=99)
    u.set_state(state)
    for (wx, wy), (gx, gy) in zip(want, (u.batch() for _ in range(30))):
        np.testing.assert_array_equal(wx, gx)
        np.testing.assert_array_equal(wy, gy)


def test_stream_errors():
    with pytest.raises(ValueError, match=r"\(batch_size \+ 1\) \* context = 40"):
        text.TextStream(np.arange(39), context=10, batch_size=3)
    s = text.TextStream(np.arange(40), context=10, batch_size=3)
    s.batch(3)
    with pytest.raises(ValueError, match="3 rows"):
        s.batch(4)
    with pytest.raises(ValueError):
        text.TextStream(np.arange(40), context=0, batch_size=3)
