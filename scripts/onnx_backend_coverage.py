#!/usr/bin/env python3
"""Runs the ONNX backend node tests shipped in the `onnx` wheel
(onnx/backend/test/data/node) through `trainopt-compile --emit=mlir` and
reports, per supported op type, how many models imported and verified.

A model counts for an op type when its graph contains that op (expanded
function tests count for every op they use). Models whose default-domain
opset is outside 13..21 are listed separately: the importer rejects them by
design. Models with non-static shapes get --batch-size 1 when only the batch
dim is symbolic.

Usage: onnx_backend_coverage.py --compiler build/bin/trainopt-compile
           [--markdown docs/importer-coverage.md] [--require-all]
--require-all exits non-zero if a model whose every op is supported fails,
unless its failure matches KNOWN_LIMITS, which gives the reason.
"""
import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

import onnx
import onnx.version_converter

# Failures of models whose every op is supported, by cause (a regular
# expression on the importer's message) and the reason a user would read.
# Anything else is an unexpected failure. Keep this list short and true.
KNOWN_LIMITS = [
    (r"unsupported element type|cast to unsupported element type",
     "element type outside the dialect's f64/f32/f16/bf16/i64/i32/i8/i1 (DESIGN 3.1)"),
    (r"not a tensor", "optional and sequence values are not tensors"),
    (r"select_last_index = 1", "ArgMax/ArgMin select_last_index = 1"),
    (r"pad mode '(edge|reflect|wrap)'", "Pad modes other than constant"),
    (r"Indices output of MaxPool", "MaxPool's Indices output (argmax positions)"),
    (r"AveragePool with ceil_mode and count_include_pad",
     "AveragePool with both ceil_mode and count_include_pad"),
    (r"batch_dims other than 0", "GatherND with batch_dims > 0"),
    (r"antialias = 1 when downsampling", "Resize antialias when downsampling"),
    (r"'tf_crop_and_resize' is not supported", "Resize tf_crop_and_resize (TensorFlow's crop boxes)"),
    (r"reduction '(max|min|mul)' is not supported",
     "ScatterElements/ScatterND reductions max, min and mul (none and add are)"),
]


def known_limit(reason):
    for pattern, why in KNOWN_LIMITS:
        if re.search(pattern, reason):
            return why
    return None


def load_pb(path, declared=None):
    """A test tensor as a NumPy array; bfloat16 widens to float32 exactly.
    Some test files store bfloat16 bits as UINT16: `declared` (the graph's
    element type) says how to read them."""
    import numpy as np
    from onnx import numpy_helper
    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    arr = numpy_helper.to_array(t)
    if onnx.TensorProto.BFLOAT16 in (t.data_type, declared):
        arr = (np.asarray(arr).view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return arr


# Ops whose outputs depend on a random generator: the reference draws with
# NumPy, trainopt.dropout and trainopt.random with their own counter-based
# generator (see include/trainopt/Support/Random.h), so outputs cannot agree
# elementwise.
RANDOM_OPS = {"Dropout", "Bernoulli", "RandomUniform", "RandomUniformLike", "RandomNormal",
              "RandomNormalLike"}

# Tests whose expected outputs follow a different, documented convention.
KNOWN_NUMERIC = [
    (r"_to_BFLOAT16", "the test data truncates float32 to bfloat16; trainopt rounds "
                      "to nearest even, as PyTorch does"),
]


def evaluate(evaluator, mlir, model, data, names, n_bound, tmp):
    """Runs trainopt-eval on the test inputs; True or a mismatch message."""
    import numpy as np
    arrays = {}
    for i, name in enumerate(names):
        pb = os.path.join(data, f"input_{i}.pb")
        if n_bound and i >= len(names) - n_bound:
            continue  # bound with --const-input at import
        if not os.path.exists(pb):
            return f"missing {pb}"
        declared = next(vi.type.tensor_type.elem_type for vi in model.graph.input
                        if vi.name == name)
        arrays[name] = load_pb(pb, declared)
    inputs = os.path.join(tmp, "in.npz")
    np.savez(inputs, **arrays)
    out = os.path.join(tmp, "out.npz")
    r = subprocess.run([evaluator, mlir, "--inputs", inputs, "-o", out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return "evaluator: " + (r.stderr.strip().splitlines() or ["?"])[0]
    got = np.load(out)
    for j, vi in enumerate(model.graph.output):
        pb = os.path.join(data, f"output_{j}.pb")
        if not os.path.exists(pb):
            continue
        want = load_pb(pb, vi.type.tensor_type.elem_type)
        have = got[vi.name] if vi.name in got else got[f"result{j}"]
        if want.dtype.kind == "f":
            tol = {2: 1e-2, 4: 1e-4, 8: 1e-7}.get(want.dtype.itemsize, 1e-4)
            ok = have.shape == want.shape and np.allclose(
                have.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol,
                equal_nan=True)
        else:
            ok = have.shape == want.shape and np.array_equal(have.astype(want.dtype), want)
        if not ok:
            err = (np.max(np.abs(have.astype(np.float64) - want.astype(np.float64)))
                   if have.shape == want.shape else f"shape {have.shape} vs {want.shape}")
            return f"output {vi.name}: max abs error {err}"
    return True


def supported_ops(compiler):
    out = subprocess.run([compiler, "--list-onnx-ops"], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--compiler", required=True)
    ap.add_argument("--markdown")
    ap.add_argument("--require-all", action="store_true")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--evaluator",
                    help="trainopt-eval: also run each imported model on the test's "
                         "inputs and compare with its expected outputs")
    args = ap.parse_args()

    root = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
    ops = supported_ops(args.compiler)
    attempted = collections.Counter()
    imported = collections.Counter()
    failures = collections.defaultdict(list)
    blocked = collections.Counter()
    numeric = collections.Counter()
    mismatches = []
    documented = []
    out_of_range = 0
    converted = 0
    bound = {}
    unexpected = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in sorted(os.listdir(root)):
            path = os.path.join(root, case, "model.onnx")
            if not os.path.exists(path):
                continue
            model = onnx.load(path, load_external_data=False)
            types = {n.op_type for n in model.graph.node if n.domain in ("", "ai.onnx")}
            if any(n.domain not in ("", "ai.onnx") for n in model.graph.node):
                continue
            mine = types & ops
            if not mine:
                continue
            opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
            if opset < 13:
                # Most single-op tests (Conv, MaxPool, ...) predate opset 13;
                # ONNX's version converter lifts them to 13.
                try:
                    model = onnx.version_converter.convert_version(model, 13)
                    path = os.path.join(tmp, f"{case}.onnx")
                    onnx.save(model, path)
                    converted += 1
                except Exception:
                    out_of_range += 1
                    continue
            elif opset > 21:
                out_of_range += 1
                continue
            cmd = [args.compiler, path, "--emit=mlir", "-o", os.path.join(tmp, "out.mlir")]
            needs_batch = any(
                d.HasField("dim_param") or not d.HasField("dim_value")
                for vi in model.graph.input for d in vi.type.tensor_type.shape.dim[:1])
            if needs_batch:
                cmd.append("--batch-size=1")
            result = subprocess.run(cmd, capture_output=True, text=True)
            # Backend tests pass shapes, pads and bounds as graph inputs; a
            # static-shape compiler needs them bound to the test's values.
            # Retry binding the inputs after the first, then all of them.
            data = os.path.join(root, case, "test_data_set_0")
            names = [vi.name for vi in model.graph.input
                     if vi.name not in {i.name for i in model.graph.initializer}]
            for first in (1, 0):
                if result.returncode == 0 or "must be a constant" not in result.stderr:
                    break
                binds = [f"--const-input={n}={data}/input_{i}.pb"
                         for i, n in enumerate(names)
                         if i >= first and os.path.exists(f"{data}/input_{i}.pb")]
                result = subprocess.run(cmd + binds, capture_output=True, text=True)
                bound[case] = len(binds)
            ok = result.returncode == 0
            if ok and args.evaluator and types <= ops and not types & RANDOM_OPS:
                matched = evaluate(args.evaluator, os.path.join(tmp, "out.mlir"),
                                   model, data, names, bound.get(case, 0), tmp)
                for op in mine:
                    numeric[op] += matched is True
                why = next((w for p, w in KNOWN_NUMERIC if re.search(p, case)), None)
                if matched is not True and why:
                    documented.append((case, why))
                elif matched is not True:
                    mismatches.append((case, matched))
                    if args.verbose:
                        print(f"MISMATCH {case}: {matched}")
            if not types <= ops:
                # Another op of the model is unsupported: not a test of ours.
                for op in mine:
                    blocked[op] += 1
                continue
            for op in mine:
                attempted[op] += 1
                imported[op] += ok
            if not ok:
                reason = result.stderr.strip().splitlines()
                reason = reason[1].strip(" -") if len(reason) > 1 else (reason[0] if reason else "?")
                for op in mine:
                    failures[op].append((case, reason))
                if not known_limit(reason):
                    unexpected.append((case, reason))
                if args.verbose:
                    print(f"FAIL {case}: {reason}")

    total_a, total_i = sum(attempted.values()), sum(imported.values())
    ev = bool(args.evaluator)
    lines = ["| op type | imported / attempted |" + (" forward matches |" if ev else "")
             + " with other unsupported ops | not imported (test: reason) |",
             "| --- | --- |" + (" --- |" if ev else "") + " --- | --- |"]
    for op in sorted(ops):
        notes = "; ".join(
            f"`{c}`: {known_limit(r) or r}" for c, r in failures[op][:6])
        if len(failures[op]) > 6:
            notes += f"; and {len(failures[op]) - 6} more"
        num = f" {numeric[op]} / {imported[op]} |" if ev else ""
        lines.append(f"| {op} | {imported[op]} / {attempted[op]} |{num} {blocked[op]} | {notes} |")
    table = "\n".join(lines)
    print(table)
    print(f"\n{total_i} / {total_a} (op, model) pairs imported; {converted} models lifted "
          f"to opset 13; {out_of_range} models not convertible; "
          f"{len(unexpected)} unexpected failures")
    eval_text = ""
    if ev:
        eval_text = (
            "\nWith `--evaluator`, each imported model also runs in the reference\n"
            "evaluator (`trainopt-eval`) on the test inputs and its outputs are\n"
            "compared with the expected ones (relative and absolute tolerance 1e-4\n"
            "for float32, 1e-2 for 16-bit floats, exact for integers). Tests of\n"
            "random ops (Dropout, Bernoulli, RandomUniform/Normal(Like)) are not\n"
            "compared: the reference draws with NumPy's generator, trainopt with its\n"
            "own (include/trainopt/Support/Random.h); test/Runtime/random-ops.test\n"
            "checks that the compiled program and the evaluator draw alike. "
            f"{len(documented)} bfloat16 cast tests differ by design: "
            f"{KNOWN_NUMERIC[0][1]}. {len(mismatches)} other models differ.\n")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"""# ONNX importer coverage

Generated by `scripts/onnx_backend_coverage.py` from the ONNX backend node
tests of the `onnx` {onnx.__version__} wheel (`onnx/backend/test/data/node`).
Each model whose ops are all supported is imported with
`trainopt-compile --emit=mlir` and counts once for every op type it contains
("attempted"); models that also use an unsupported op (mostly the
`*_expanded` function bodies with GatherElements, If, Softplus, ...) are only
counted in the third column.

The importer accepts opsets 13 to 21; {converted} older test models are lifted
to opset 13 with `onnx.version_converter` first, and {out_of_range} that the
converter cannot lift are not attempted.

Totals: {total_i} of {total_a} (op type, model) pairs import and verify.
{eval_text}
{sum(1 for c, n in bound.items() if n)} models pass shapes, pads or bounds as graph inputs; trainopt
compiles static shapes, so those inputs are bound to the test's values with
`--const-input NAME=input_N.pb` before import.

{table}
""")
    if ev:
        for case, why in documented:
            print(f"  documented difference: {case}: {why}")
        print(f"{len(mismatches)} imported models whose evaluated outputs differ")
        for case, why in mismatches:
            print(f"  mismatch: {case}: {why}")
    if args.require_all and mismatches:
        return 1
    if args.require_all and unexpected:
        for case, reason in unexpected:
            print(f"unexpected failure: {case}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
