"""Bad input is a Python exception with a clear message, never a crash, and
leaves no file behind."""
import os

import numpy as np
import pytest

import trainopt
from conftest import small_mlp, toy_data
from trainopt import nn


def test_shape_errors_while_building():
    g = trainopt.Graph("bad")
    x = g.input("x", [-1, 784])
    enc = nn.Sequential(nn.Linear(100, 32))
    with g.scope("encoder"):
        with pytest.raises(trainopt.ShapeError, match=r"matmul in 'encoder.0': the inner dims "
                           r"differ \(784 against 100\)"):
            enc(x)
    with pytest.raises(trainopt.ShapeError, match=r"batch_norm_train.*BatchNorm2d\(8\) expects "
                       r"an NCHW input with 8 channels"):
        nn.BatchNorm2d(8)(g.input("img", [-1, 3, 8, 8]))
    with pytest.raises(trainopt.ShapeError, match="MultiheadAttention"):
        nn.MultiheadAttention(16, 4)(g.input("seq", [-1, 5, 12]))
    with pytest.raises(ValueError, match="not divisible"):
        nn.MultiheadAttention(10, 4)
    with pytest.raises(trainopt.ShapeError, match="indices must be integers"):
        nn.Embedding(10, 4)(g.input("f", [-1, 5]))


def test_missing_files_and_compile_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        trainopt.compile(str(tmp_path / "none.onnx"), batch_size=8)
    with pytest.raises(FileNotFoundError, match="no such ONNX model file"):
        trainopt.from_onnx(tmp_path / "none.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model")
    with pytest.raises(trainopt.TrainoptError, match="junk.onnx"):
        trainopt.compile(junk, batch_size=8)
    with pytest.raises(trainopt.TrainoptError, match="Unknown command line argument "
                       "'--no-such-flag"):
        trainopt.compile(small_mlp(), batch_size=8, no_such_flag=1)
    with pytest.raises(trainopt.TrainoptError, match="--batch-size"):
        trainopt.compile(small_mlp(), loss="cross_entropy")
    with pytest.raises(ValueError, match="'emit' is compile's own"):
        trainopt.compile(small_mlp(), batch_size=8, emit="mlir")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        trainopt.compile(small_mlp(), batch_size=0)
    with pytest.raises(TypeError, match="trainopt.optim.Optimizer or a name"):
        trainopt.compile(small_mlp(), batch_size=8, optimizer=3)
    # A failed compile with output= leaves nothing there.
    out = tmp_path / "m.trainopt"
    with pytest.raises(trainopt.TrainoptError):
        trainopt.compile(small_mlp(), batch_size=8, loss="no_such_loss", output=out)
    assert not out.exists()


def test_corrupted_artifact(tmp_path):
    out = tmp_path / "m.trainopt"
    trainopt.compile(small_mlp(), batch_size=8, loss="cross_entropy", output=out).close()
    data = bytearray(out.read_bytes())
    for name, bad in (("truncated", data[: len(data) // 2]),
                      ("flipped", data[:100] + bytes([data[100] ^ 0x40]) + data[101:]),
                      ("empty", b"")):
        path = tmp_path / f"{name}.trainopt"
        path.write_bytes(bytes(bad))
        with pytest.raises(trainopt.TrainoptError, match=f"{name}.trainopt"):
            trainopt.Model(path)
    with pytest.raises(trainopt.TrainoptError, match="none.trainopt"):
        trainopt.Model(tmp_path / "none.trainopt")


def test_wrong_data():
    x, y = toy_data(64)
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy") as m:
        with pytest.raises(trainopt.DataError, match=r"samples of shape \[21\].*input 'x' of "
                           r"shape \[16, 20\]"):
            m.fit(np.zeros((64, 21), np.float32), y, verbose=0)
        with pytest.raises(trainopt.DataError, match=r"label 7 at index 3 is outside \[0, 5\)"):
            bad = y.copy()
            bad[3] = 7
            m.fit(x, bad, verbose=0)
        with pytest.raises(trainopt.DataError, match="is float64 with non-integer values; the model's 'labels' takes class indices"):
            m.fit(x, y + np.float32(0.5), verbose=0)
        with pytest.raises(trainopt.DataError, match="dtype <U1; expected numbers"):
            m.fit(np.full((64, 20), "a"), y, verbose=0)
        with pytest.raises(trainopt.DataError, match="the arrays: 'y' has 10 samples, 'x' has 64"):
            m.fit(x, y[:10], verbose=0)
        with pytest.raises(trainopt.DataError, match="no array for the labels 'labels'"):
            m.fit({"x": x}, verbose=0)
        with pytest.raises(trainopt.DataError, match="8 samples make no batch of 16"):
            m.fit(x[:8], y[:8], verbose=0)
        assert m.step == 0  # nothing ran


def test_divergence_stops_training():
    x, y = toy_data(64)
    x[5, 0] = np.nan
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy") as m:
        with pytest.raises(trainopt.TrainoptError, match=r"the loss is nan at step 1"):
            m.fit(x, y, shuffle=False, verbose=0)
        m.fit(x, y, shuffle=False, verbose=0, allow_nan=True)


def test_closed_model_and_export_of_a_graph(tmp_path):
    m = trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy")
    with pytest.raises(trainopt.TrainoptError, match="holds no ONNX model"):
        m.export_onnx(tmp_path / "m.onnx")
    assert not os.path.exists(tmp_path / "m.onnx")
    m.close()
    with pytest.raises(trainopt.TrainoptError, match="closed"):
        m.predict(toy_data(16)[0])
