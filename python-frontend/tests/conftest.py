"""Fixtures of the Python package's tests (run by scripts/run_tests.sh:
`.venv/bin/python -m pytest python-frontend/tests`, and the PyTorch tests
with .venv-torch). The package under test is the installed one."""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.environ.get("TRAINOPT_BUILD_DIR", os.path.join(ROOT, "build"))
FASHION = "/usr/share/datasets/fashion-mnist/"


@pytest.fixture(scope="session")
def bin_dir():
    return os.path.join(BUILD, "bin")


@pytest.fixture(scope="session")
def onnx_models(tmp_path_factory):
    """The MLP and CNN of scripts/gen_models.py (needs the onnx package)."""
    pytest.importorskip("onnx")
    d = tmp_path_factory.mktemp("models")
    for name in ("mlp", "cnn"):
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen_models.py"), str(d),
                        "--only", name], check=True, capture_output=True)
    return d


@pytest.fixture(scope="session")
def fashion():
    """Fashion-MNIST as (train, test) Datasets; a test that needs it fails
    rather than skips when TRAINOPT_REQUIRE_DATASETS=1 (CI)."""
    import trainopt
    if not os.path.exists(FASHION + "train-images-idx3-ubyte.gz"):
        if os.environ.get("TRAINOPT_REQUIRE_DATASETS") == "1":
            pytest.fail(f"{FASHION} is missing (apt install dataset-fashion-mnist)")
        pytest.skip(f"{FASHION} is missing (apt install dataset-fashion-mnist); "
                    f"CI sets TRAINOPT_REQUIRE_DATASETS=1, which fails instead")
    train = trainopt.load_idx(FASHION + "train-images-idx3-ubyte.gz",
                              FASHION + "train-labels-idx1-ubyte.gz")
    test = trainopt.load_idx(FASHION + "t10k-images-idx3-ubyte.gz",
                             FASHION + "t10k-labels-idx1-ubyte.gz")
    return train, test


def small_mlp(name="mlp", seed=0, hidden=32):
    import trainopt
    from trainopt import nn
    g = trainopt.Graph(name, seed=seed)
    net = nn.Sequential(nn.Linear(20, hidden), nn.ReLU(), nn.Linear(hidden, 5))
    g.output("logits", net(g.input("x", [-1, 20])))
    return g


def toy_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 20)).astype(np.float32)
    y = (x[:, :5].argmax(axis=1)).astype(np.int64)
    return x, y
