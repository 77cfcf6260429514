"""Datasets: .npz, IDX (gzip), token files, normalization."""
import gzip

import numpy as np
import pytest

import trainopt
from conftest import small_mlp, toy_data
from trainopt import nn


def write_idx(path, array, compress=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}
    a = np.ascontiguousarray(array)
    head = bytes([0, 0, codes[a.dtype], a.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in a.shape)
    body = a.astype(a.dtype.newbyteorder(">")).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(head + body)


def test_npz_and_idx(tmp_path):
    x, y = toy_data(64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy") as m:
        a = m.evaluate(str(tmp_path / "d.npz"))
        assert a == m.evaluate(x, y)
    images = (np.arange(40 * 20) % 256).astype(np.uint8).reshape(40, 4, 5)
    labels = (np.arange(40) % 5).astype(np.uint8)
    write_idx(tmp_path / "img.gz", images, compress=True)
    write_idx(tmp_path / "lab", labels)
    d = trainopt.load_idx(tmp_path / "img.gz", tmp_path / "lab")
    assert np.array_equal(d.arrays["x"], images) and np.array_equal(d.arrays["y"], labels)
    with trainopt.compile(small_mlp(), batch_size=8, loss="cross_entropy") as m:
        # uint8 data is scaled by 1/255 (as trainopt-run): same as giving floats.
        scaled = images.reshape(40, 20).astype(np.float32) / 255
        assert np.allclose(m.predict(d), m.predict(scaled), rtol=1e-5, atol=1e-6)
        raw = trainopt.Dataset({"x": images}, scale=1.0)
        assert np.allclose(m.predict(raw), m.predict(images.reshape(40, 20).astype(np.float32)))


def test_bad_files(tmp_path):
    (tmp_path / "e.npz").write_bytes(b"")
    with pytest.raises(trainopt.DataError, match="e.npz"):
        trainopt.load_npz(tmp_path / "e.npz")
    (tmp_path / "g.idx").write_bytes(b"garbage!")
    with pytest.raises(trainopt.DataError, match="not an IDX file"):
        trainopt.load_idx(tmp_path / "g.idx")
    write_idx(tmp_path / "short", np.zeros((4, 3), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-2])
    with pytest.raises(trainopt.DataError, match="IDX header says"):
        trainopt.load_idx(tmp_path / "short")
    with pytest.raises(trainopt.DataError, match="cannot read"):
        trainopt.load_idx(tmp_path / "missing")


def test_token_file(tmp_path):
    """llm.c's format: windows of the model's sequence length."""
    T, V = 8, 12
    tokens = (np.arange(8 * 16 + 1) % V).astype(np.uint16)
    header = np.zeros(256, np.int32)
    header[:3] = [20240520, 1, tokens.size]
    (tmp_path / "t.bin").write_bytes(header.tobytes() + tokens.tobytes())
    g = trainopt.Graph("lm", seed=0)
    net = nn.Sequential(nn.Embedding(V, 16), nn.Linear(16, V))
    g.output("logits", net(g.input("x", [-1, T], dtype="i64")))
    with trainopt.compile(g, batch_size=4, loss="cross_entropy", class_axis=-1,
                          optimizer=trainopt.optim.Adam(lr=3e-2)) as m:
        data = trainopt.load_tokens(tmp_path / "t.bin")
        m.fit(data, epochs=20, verbose=0)
        assert m.step == 20 * 4  # 16 windows of 8, batches of 4
        assert m.history["loss"][-1] < 0.1 < m.history["loss"][0]
    header[0] = 1
    (tmp_path / "h.bin").write_bytes(tokens.tobytes()[:-1])
    with pytest.raises(trainopt.DataError, match="whole number of 2-byte tokens"):
        trainopt.load_tokens(tmp_path / "h.bin")
