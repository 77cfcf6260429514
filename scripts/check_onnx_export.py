#!/usr/bin/env python3
"""Checks a model written by `trainopt-run --export-onnx` against trainopt's
own eval step: ONNX Runtime runs the exported model on the inputs that
`trainopt-run --dump-eval=EVAL.npz` saved, and its outputs must match the
eval outputs saved next to them.

The npz holds the inputs under their graph-input names (e.g. `x`) and the
eval outputs under their graph-output names (e.g. `logits`). Each graph
output with a same-named array is compared; when no name matches, the first
graph output is compared against `logits`. A model with a fixed batch
dimension is run batch by batch over the saved rows.

With --top1 F (a quantized model, whose QDQ form ONNX Runtime computes in
integers and rounds its own way), an output with classes on its last axis
matches when the argmax agrees on at least the fraction F of its rows; the
value errors are printed all the same.

With --ort-ops, the operators of the graph ONNX Runtime actually runs (after
its optimizations, e.g. QDQ fused into QLinearConv and QGemm) are printed,
counted, one line.

Usage (the repo's .venv, with onnxruntime from scripts/requirements-test.txt):
    check_onnx_export.py MODEL.onnx EVAL.npz [--rtol 1e-4] [--atol 1e-5] [--top1 F]
        [--outputs NAME,...] [--ort-ops]

Exits 0 when every compared output matches (|a - e| <= atol + rtol * |e|),
1 on a mismatch, 2 when the files cannot be checked.
"""
import argparse
import collections
import os
import sys
import tempfile

import numpy as np
import onnxruntime as ort

ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def fail(message):
    print(f"check_onnx_export: {message}", file=sys.stderr)
    sys.exit(2)


def batch_size(inputs, feeds):
    """The fixed batch size to run with, or None to run everything at once."""
    sizes = set()
    for info in inputs:
        dim0 = info.shape[0] if info.shape else None
        rows = feeds[info.name].shape[0] if feeds[info.name].ndim else None
        if isinstance(dim0, int) and rows is not None and rows != dim0:
            sizes.add(dim0)
    if not sizes:
        return None
    if len(sizes) > 1:
        fail(f"the graph inputs have different fixed batch sizes {sorted(sizes)}")
    size = sizes.pop()
    rows = {feeds[i.name].shape[0] for i in inputs}
    if len(rows) != 1 or next(iter(rows)) % size:
        fail(f"the saved inputs have {sorted(rows)} rows, not a multiple of "
             f"the model's batch size {size}")
    return size


def run(session, feeds):
    inputs = session.get_inputs()
    size = batch_size(inputs, feeds)
    if size is None:
        return session.run(None, feeds)
    rows = feeds[inputs[0].name].shape[0]
    parts = [session.run(None, {k: v[i:i + size] for k, v in feeds.items()})
             for i in range(0, rows, size)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def compare(name, actual, expected, rtol, atol, top1=None):
    """Prints the errors of one output; returns whether it matches."""
    if actual.shape != expected.shape:
        # Only size-1 dimensions may differ (a scalar saved as [1], say).
        if np.squeeze(actual).shape != np.squeeze(expected).shape:
            print(f"{name}: MISMATCH shape {list(actual.shape)} vs saved "
                  f"{list(expected.shape)}")
            return False
        actual = actual.reshape(expected.shape)
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    if a.size == 0:
        print(f"{name}: OK (empty)")
        return True
    diff = np.abs(a - e)
    max_abs = float(np.nanmax(diff)) if diff.size else 0.0
    max_rel = float(np.nanmax(diff / np.maximum(np.abs(e), np.finfo(np.float64).tiny)))
    ok = bool(np.all(diff <= atol + rtol * np.abs(e))) and \
        np.array_equal(np.isnan(a), np.isnan(e))
    criterion = f"rtol {rtol:g}, atol {atol:g}"
    if top1 is not None and e.ndim >= 2:
        agree = float(np.mean(a.argmax(-1) == e.argmax(-1)))
        ok = agree >= top1
        criterion = f"top-1 agreement {agree:.4f} of {e.shape[0]} rows, at least {top1:g}"
    print(f"{name}: {'OK' if ok else 'MISMATCH'} shape {list(e.shape)} "
          f"max abs err {max_abs:.3e} max rel err {max_rel:.3e} ({criterion})")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="the exported ONNX model")
    parser.add_argument("eval", help="the .npz written by trainopt-run --dump-eval")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--atol", type=float, default=1e-5)
    parser.add_argument("--top1", type=float,
                        help="match on the argmax of the last axis on this fraction of rows")
    parser.add_argument("--outputs",
                        help="compare only these graph outputs (comma-separated; e.g. "
                             "logits, leaving out the BatchNorm statistics a training-mode "
                             "export returns)")
    parser.add_argument("--ort-ops", action="store_true",
                        help="print the operators of ONNX Runtime's optimized graph")
    args = parser.parse_args()

    try:
        saved = dict(np.load(args.eval, allow_pickle=False))
    except Exception as e:  # noqa: BLE001 - any unreadable file is a usage error
        fail(f"cannot read '{args.eval}': {e}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if args.ort_ops:
        optimized = tempfile.NamedTemporaryFile(suffix=".onnx", delete=False)
        optimized.close()
        options.optimized_model_filepath = optimized.name
    try:
        session = ort.InferenceSession(args.model, options,
                                       providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001
        fail(f"ONNX Runtime cannot load '{args.model}': {e}")
    if args.ort_ops:
        import onnx
        ops = collections.Counter(n.op_type for n in onnx.load(optimized.name).graph.node)
        os.unlink(optimized.name)
        print("ONNX Runtime runs: " + " ".join(f"{op}={n}" for op, n in sorted(ops.items())))

    feeds = {}
    for info in session.get_inputs():
        if info.name not in saved:
            fail(f"'{args.eval}' has no array for graph input '{info.name}' "
                 f"(it has {sorted(saved)})")
        dtype = ORT_TYPES.get(info.type)
        if dtype is None:
            fail(f"graph input '{info.name}' has unsupported type {info.type}")
        feeds[info.name] = saved[info.name].astype(dtype, copy=False)

    outputs = [o.name for o in session.get_outputs()]
    pairs = [(k, n) for k, n in enumerate(outputs)
             if n in saved and n not in feeds
             and (not args.outputs or n in args.outputs.split(","))]
    if not pairs:
        if "logits" not in saved:
            fail(f"no graph output {outputs} has an array in '{args.eval}', "
                 f"and it has no 'logits'")
        pairs = [(0, "logits")]

    results = run(session, feeds)
    ok = True
    for k, name in pairs:
        label = name if outputs[k] == name else f"{outputs[k]} vs {name}"
        ok = compare(label, np.asarray(results[k]), saved[name],
                     args.rtol, args.atol, args.top1) and ok
    print("export matches the eval step" if ok else "export does NOT match the eval step")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
