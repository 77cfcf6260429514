"""A graph built in Python equals the same model from ONNX: the same MLIR
from the importer and the same losses and parameters, bit for bit, after
training."""
import subprocess

import numpy as np
import pytest

import trainopt
from check_builder import CNN, MLP, build, weights


def mlir(bin_dir, path):
    return subprocess.run([f"{bin_dir}/trainopt-compile", str(path), "--batch-size", "8",
                           "--emit=mlir", "--elide-weights", "-o", "-"],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("name,module,shape", [("mlp", MLP, [-1, 784]),
                                               ("cnn", CNN, [-1, 1, 28, 28])])
def test_same_mlir_and_losses(onnx_models, bin_dir, tmp_path, name, module, shape):
    onnx_path = onnx_models / f"{name}.onnx"
    g = build(module(), name, shape, weights(str(onnx_path)))
    graph_path = g.save(tmp_path / f"{name}.tgraph")
    assert mlir(bin_dir, graph_path) == mlir(bin_dir, onnx_path)

    rng = np.random.default_rng(1)
    x = rng.random((40,) + tuple(shape[1:]), dtype=np.float32)
    y = rng.integers(0, 10, 40)
    runs = []
    for source in (g, trainopt.from_onnx(onnx_path)):
        with trainopt.compile(source, batch_size=8, loss="cross_entropy",
                              optimizer=trainopt.optim.SGD(lr=0.05, momentum=0.9)) as m:
            losses = []
            m.fit(x, y, epochs=1, shuffle=False, verbose=0,
                  callbacks=[trainopt.callbacks.LambdaCallback(
                      on_step_end=lambda step, logs: losses.append(logs["loss"]))])
            runs.append((losses, m.parameters()))
    (la, pa), (lb, pb) = runs
    assert len(la) == 5 and la == lb
    assert pa.keys() == pb.keys()
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), k
