"""export_onnx: the trained model as ONNX, run by ONNX Runtime, gives
predict's outputs."""
import numpy as np
import pytest

import trainopt


def test_export_matches_predict(onnx_models, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(0)
    x = rng.random((64, 784), dtype=np.float32)
    y = rng.integers(0, 10, 64)
    with trainopt.compile(trainopt.from_onnx(onnx_models / "mlp.onnx"), batch_size=16,
                          loss="cross_entropy", optimizer=trainopt.optim.Adam(lr=1e-3)) as m:
        m.fit(x, y, epochs=2, verbose=0)
        path = m.export_onnx(tmp_path / "trained.onnx")
        ours = m.predict(x[:16])
        with pytest.raises(trainopt.TrainoptError, match="--export-dtype: expected fp32, bf16 "
                           "or fp16, got 'int3'"):
            m.export_onnx(tmp_path / "other.onnx", dtype="int3")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = session.run(None, {session.get_inputs()[0].name: x[:16]})[0]
    assert np.allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert not (tmp_path / "other.onnx").exists()
