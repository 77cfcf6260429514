#!/usr/bin/env python3
"""Writes a binary ONNX model from ONNX's textual syntax (onnx.parser).

Lit tests keep their models inline: the text between `// ONNX-BEGIN` and
`// ONNX-END` (each line optionally prefixed with `//`) or the whole file.
Initializers given as `<float[2] w = {...}>` become real initializers.
Usage: onnx_from_text.py INPUT -o OUT.onnx [--large-random NAME=SHAPE ...]
"""
import argparse
import re
import sys

import numpy as np
import onnx
import onnx.checker
import onnx.numpy_helper
import onnx.parser


def extract(text):
    m = re.search(r"ONNX-BEGIN\n(.*?)\n[^\n]*ONNX-END", text, re.S)
    body = m.group(1) if m else text
    return "\n".join(re.sub(r"^\s*//\s?", "", line) for line in body.splitlines())


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("input")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--no-check", action="store_true",
                    help="skip onnx.checker (for deliberately invalid models)")
    ap.add_argument("--random-init", action="append", default=[],
                    help="NAME=D0xD1x... adds a float32 initializer of that shape")
    args = ap.parse_args()
    model = onnx.parser.parse_model(extract(open(args.input).read()))
    rng = np.random.default_rng(0)
    for spec in args.random_init:
        name, shape = spec.split("=")
        dims = [int(d) for d in shape.split("x")]
        arr = rng.standard_normal(dims).astype(np.float32)
        model.graph.initializer.append(onnx.numpy_helper.from_array(arr, name))
    if not args.no_check:
        onnx.checker.check_model(model)
    onnx.save(model, args.output)


if __name__ == "__main__":
    sys.exit(main())
