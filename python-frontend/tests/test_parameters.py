"""parameters() and load_parameters(): round trips, views, errors."""
import numpy as np
import pytest

import trainopt
from conftest import small_mlp, toy_data


def test_round_trip_and_views():
    x, y = toy_data(64)
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy",
                          optimizer=trainopt.optim.Adam(lr=1e-2)) as m:
        before = m.parameters()
        assert list(before) == ["0.weight", "0.bias", "2.weight", "2.bias"]
        view = m.parameters(copy=False)["0.weight"]
        assert not view.flags.writeable
        m.fit(x, y, epochs=1, verbose=0)
        after = m.parameters()
        assert not np.array_equal(before["0.weight"], after["0.weight"])
        assert np.array_equal(view, after["0.weight"])  # the view follows training
        m.load_parameters(before)
        assert all(np.array_equal(v, m.parameters()[k]) for k, v in before.items())
        # A subset, with strict=False; dtype converted from float64.
        m.load_parameters({"2.bias": np.arange(5.0)}, strict=False)
        assert np.array_equal(m.parameters()["2.bias"], np.arange(5, dtype=np.float32))
        state = m.state()
        assert "step" in state and "0.weight.exp_avg" in state


def test_same_parameters_same_predictions():
    """Weights moved from one model into another give the same outputs."""
    x, _ = toy_data(32)
    with trainopt.compile(small_mlp(seed=1), batch_size=16, loss="cross_entropy") as a, \
            trainopt.compile(small_mlp(seed=2), batch_size=16, loss="cross_entropy") as b:
        assert not np.array_equal(a.predict(x), b.predict(x))
        b.load_parameters(a.parameters())
        assert np.array_equal(a.predict(x), b.predict(x))


def test_errors():
    with trainopt.compile(small_mlp(), batch_size=16, loss="cross_entropy") as m:
        p = m.parameters()
        with pytest.raises(trainopt.DataError, match=r"'0.weight' has shape \[20, 32\], the "
                           r"model's \[32, 20\]"):
            m.load_parameters({**p, "0.weight": p["0.weight"].T})
        with pytest.raises(KeyError, match="no value 'fc9.weight'"):
            m.load_parameters({"fc9.weight": p["0.weight"]})
        with pytest.raises(KeyError, match="no value for 2.weight, 2.bias"):
            m.load_parameters({"0.weight": p["0.weight"], "0.bias": p["0.bias"]})
        # Nothing was written by the failed calls.
        assert all(np.array_equal(v, m.parameters()[k]) for k, v in p.items())
