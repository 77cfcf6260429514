"""fit, evaluate and predict on Fashion-MNIST, callbacks and history."""
import numpy as np

import trainopt
from conftest import small_mlp, toy_data
from trainopt import nn


def test_fashion_mnist_subset(fashion):
    """A small CNN built in Python, 10,000 training samples, 2 epochs:
    at least 84% on 2,000 test samples (measured 86-87%)."""
    train, test = fashion
    train = trainopt.Dataset({k: v[:10000] for k, v in train.arrays.items()})
    test = trainopt.Dataset({k: v[:2000] for k, v in test.arrays.items()})
    g = trainopt.Graph("cnn", seed=0)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 14 * 14, 64), nn.ReLU(),
                        nn.Linear(64, 10))
    g.output("logits", net(g.input("x", [-1, 1, 28, 28])))
    with trainopt.compile(g, batch_size=64, loss="cross_entropy",
                          optimizer=trainopt.optim.AdamW(lr=1e-3)) as m:
        history = m.fit(train, epochs=2, validation_data=test, verbose=0)
        assert set(history) >= {"loss", "val_loss", "val_accuracy", "lr", "grad_norm"}
        assert len(history["loss"]) == 2 and history["loss"][1] < history["loss"][0]
        result = m.evaluate(test)
        assert result["samples"] == 2000
        assert result["accuracy"] >= 0.84, result
        assert result["accuracy"] == history["val_accuracy"][-1]
        # predict agrees with evaluate's accuracy, partial last batch included.
        logits = m.predict(test.arrays["x"])
        assert logits.shape == (2000, 10)
        assert np.mean(logits.argmax(1) == test.arrays["y"]) == result["accuracy"]


def test_predict_pads_the_last_batch():
    x, y = toy_data(64)
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy") as m:
        whole = m.predict(x)
        assert whole.shape == (64, 5)
        # Any number of samples: the last batch is padded, its padding
        # dropped. (Equal to rounding: a row's position in the batch can
        # change the matmul's summation order.)
        assert np.allclose(m.predict(x[:5]), whole[:5], rtol=1e-5, atol=1e-6)
        assert np.allclose(m.predict(x[3:40]), whole[3:40], rtol=1e-5, atol=1e-6)
        r = m.evaluate(x[:37], y[:37])
        assert r["samples"] == 37
        assert abs(r["accuracy"] - np.mean(whole[:37].argmax(1) == y[:37])) < 1e-12


def test_early_stopping_and_steps():
    x, y = toy_data(64)
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy",
                          optimizer=trainopt.optim.SGD(lr=0.01)) as m:
        stop = trainopt.callbacks.EarlyStopping(monitor="loss", patience=1, min_delta=10.0)
        m.fit(x, y, epochs=10, callbacks=[stop], verbose=0)
        # No epoch improves by 10: epoch 0 sets the best, 1 and 2 wait.
        assert stop.stopped_epoch == 2 and len(m.history["loss"]) == 3
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy") as m:
        m.fit(x, y, steps=6, epochs=5, verbose=0)
        assert m.step == 6 and m.epoch == 1 and m.batch_in_epoch == 2


def test_iterable_of_batches_and_dict_inputs():
    x, y = toy_data(64)
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy",
                          optimizer=trainopt.optim.Adam(lr=1e-2)) as m:
        batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)] + [(x[:3], y[:3])]
        m.fit(batches, epochs=3, verbose=0)
        assert m.step == 12  # the 3-sample batch is left out
        m.fit({"x": x, "y": y}, epochs=1, verbose=0)
        assert m.step == 16
        # A generator is one pass: the second epoch finds it exhausted.
        m.history.clear()
        m.fit(((x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)), epochs=3, verbose=0)
        assert m.step == 20 and len(m.history["loss"]) == 1


def test_progress_bar_and_two_models_in_one_process(capsys):
    """The text progress bar (tqdm, when installed, draws its own), and two
    different programs loaded at once each run their own kernels."""
    x, y = toy_data(64)
    a = trainopt.compile(small_mlp("a", hidden=32), batch_size=16, loss="cross_entropy")
    b = trainopt.compile(small_mlp("b", hidden=48), batch_size=16, loss="cross_entropy")
    a.fit(x, y, epochs=1)
    b.fit(x, y, epochs=1)
    assert "epoch 1" in capsys.readouterr().err
    pa, pb = a.parameters(), b.parameters()
    assert pa["0.weight"].shape == (32, 20) and pb["0.weight"].shape == (48, 20)
    a.close()
    c = trainopt.compile(small_mlp("c", hidden=24), batch_size=16, loss="cross_entropy")
    c.fit(x, y, epochs=1, verbose=0)
    for m in (b, c):
        p = m.parameters()
        h = np.maximum(x @ p["0.weight"].T + p["0.bias"], 0)
        want = h @ p["2.weight"].T + p["2.bias"]
        assert np.allclose(m.predict(x), want, atol=1e-5)
