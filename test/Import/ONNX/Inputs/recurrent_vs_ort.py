"""RNN, GRU and LSTM with every optional operand (B, initial_h, initial_c,
P), in both layouts and all directions: trainopt-eval on the imported
module against onnxruntime (float32, tolerance 1e-5). onnxruntime has no
layout = 1, so a batch-major case is checked against the time-major model
on the transposed inputs, its outputs transposed back.
Usage: recurrent_vs_ort.py BINDIR WORKDIR"""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

bindir, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(0)
T, B, I, H = 4, 3, 2, 5
worst = 0.0
for op, gates in (("RNN", 1), ("GRU", 3), ("LSTM", 4)):
    for layout in (0, 1):
        for direction, dirs in (("forward", 1), ("reverse", 1), ("bidirectional", 2)):
            state = [B, dirs, H] if layout else [dirs, B, H]
            feeds = {
                "X": rng.standard_normal([B, T, I] if layout else [T, B, I]),
                "W": rng.standard_normal([dirs, gates * H, I]) * 0.5,
                "R": rng.standard_normal([dirs, gates * H, H]) * 0.5,
                "B": rng.standard_normal([dirs, 2 * gates * H]) * 0.5,
                "initial_h": rng.standard_normal(state),
            }
            names = ["X", "W", "R", "B", "", "initial_h"]
            outputs = ["Y", "Y_h"]
            if op == "LSTM":
                feeds["initial_c"] = rng.standard_normal(state)
                feeds["P"] = rng.standard_normal([dirs, 3 * H]) * 0.5
                names += ["initial_c", "P"]
                outputs.append("Y_c")
            feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
            def save(layout, feeds, path):
                node = helper.make_node(op, names, outputs, hidden_size=H, layout=layout,
                                        direction=direction)
                graph = helper.make_graph(
                    [node], "recurrent",
                    [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape)
                     for k, v in feeds.items()],
                    [helper.make_tensor_value_info(o, TensorProto.FLOAT, None)
                     for o in outputs])
                model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
                model.ir_version = 8
                onnx.save(model, path)
            path = os.path.join(work, "m.onnx")
            save(layout, feeds, path)
            if layout:
                # The time-major twin: X [T, B, I], states [dirs, B, H].
                major = {k: (v.transpose(1, 0, 2) if k in ("X", "initial_h", "initial_c")
                             else v) for k, v in feeds.items()}
                save(0, major, os.path.join(work, "major.onnx"))
                want = ort.InferenceSession(os.path.join(work, "major.onnx"),
                                            providers=["CPUExecutionProvider"]).run(None, major)
                # Y [T, dirs, B, H] -> [B, T, dirs, H]; states -> [B, dirs, H].
                want = [want[0].transpose(2, 0, 1, 3)] + [w.transpose(1, 0, 2) for w in want[1:]]
            else:
                want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(
                    None, feeds)
            mlir = os.path.join(work, "m.mlir")
            subprocess.run([os.path.join(bindir, "trainopt-compile"), path, "--emit=mlir",
                            "-o", mlir], check=True)
            np.savez(os.path.join(work, "in.npz"), **feeds)
            subprocess.run([os.path.join(bindir, "trainopt-eval"), mlir, "--inputs",
                            os.path.join(work, "in.npz"), "-o", os.path.join(work, "out.npz")],
                           check=True)
            got = np.load(os.path.join(work, "out.npz"))
            for j, (o, w) in enumerate(zip(outputs, want)):
                have = got[o] if o in got else got[f"result{j}"]
                err = float(np.max(np.abs(have - w)))
                worst = max(worst, err)
                if have.shape != w.shape or err > 1e-5:
                    print(f"MISMATCH {op} layout={layout} {direction} {o}: "
                          f"shape {have.shape} vs {w.shape}, error {err:.3g}")
                    sys.exit(1)
print(f"recurrent: 18 cases match onnxruntime, worst error {worst:.2e}")
