"""Checkpoints: stopping, saving and resuming from Python trains exactly as
one uninterrupted run; trainopt.load_checkpoint needs only the directory."""
import os

import numpy as np
import pytest

import trainopt
from conftest import small_mlp, toy_data


def losses_of(model, x, y, **fit):
    out = []
    cb = trainopt.callbacks.LambdaCallback(on_step_end=lambda s, logs: out.append(logs["loss"]))
    model.fit(x, y, verbose=0, callbacks=[cb], seed=7, **fit)
    return out


def test_resume_is_bit_identical(tmp_path):
    x, y = toy_data(80)
    opt = trainopt.optim.AdamW(lr=1e-2)
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy",
                          optimizer=opt) as m:
        whole = losses_of(m, x, y, epochs=3)
        final = m.state()
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy",
                          optimizer=opt) as m:
        first = losses_of(m, x, y, epochs=3, steps=7)  # stops in epoch 2
        path = m.save_checkpoint(tmp_path / "run")
        assert os.path.basename(path) == "ckpt-000000000007.ckpt"
    m = trainopt.load_checkpoint(tmp_path / "run")
    assert (m.step, m.epoch, m.batch_in_epoch) == (7, 1, 2)
    rest = losses_of(m, x, y, epochs=2)
    assert first + rest == whole
    resumed = m.state()
    assert all(np.array_equal(final[k], resumed[k]) for k in final)
    m.close()


def test_model_checkpoint_callback_and_errors(tmp_path):
    x, y = toy_data(64)
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy") as m:
        cb = trainopt.callbacks.ModelCheckpoint(tmp_path / "ck", keep=2)
        m.fit(x, y, epochs=3, callbacks=[cb], verbose=0)
        names = sorted(os.listdir(tmp_path / "ck"))
        assert names == ["ckpt-000000000008.ckpt", "ckpt-000000000012.ckpt", "model.trainopt"]
    # Another model's checkpoint is refused, naming the file and the difference.
    with trainopt.compile(small_mlp(hidden=8), batch_size=16, loss="cross_entropy") as other:
        with pytest.raises(trainopt.TrainoptError, match="ckpt-000000000012.ckpt"):
            other.load_checkpoint(tmp_path / "ck")
    with pytest.raises(trainopt.TrainoptError, match="does not exist"):
        trainopt.load_checkpoint(tmp_path / "nothing")
    # A corrupted checkpoint: refused, never a crash.
    bad = tmp_path / "ck" / "ckpt-000000000012.ckpt"
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(trainopt.TrainoptError, match="CRC|corrupt"):
        trainopt.load_checkpoint(bad)
