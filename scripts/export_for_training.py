#!/usr/bin/env python3
"""Exports a torch.nn.Module to ONNX the way trainopt trains it.

torch.onnx.export's defaults produce an inference graph: eval mode folds
BatchNorm into the convolutions (the weights get names like onnx::Conv_123)
and removes Dropout, and constant folding renames parameters. trainopt would
train that graph without complaint (it warns), but it is not the model you
defined. This exports in training mode, without constant folding, with the
TorchScript exporter (torch 2.x's default dynamo exporter needs onnxscript
and does not keep training mode), opset 17 and a symbolic batch dimension.

As a library (any Python with torch):
    from export_for_training import export_for_training
    export_for_training(model, (example_batch,), "model.onnx")

From the command line, a factory named module:function with keyword
arguments as JSON:
    export_for_training.py torchvision.models:resnet18 --kwargs '{"num_classes": 10}' \\
        --input-shape 2,3,64,64 -o resnet18.onnx
    export_for_training.py mymodels:make_lm --tokens 1000,32 -o lm.onnx
"""
import argparse
import copy
import importlib
import inspect
import json
import sys
import warnings

import torch


def legacy_exporter():
    """The torch.onnx.export arguments that select the TorchScript exporter
    (torch 2.x defaults to the dynamo one; torch 1.x has only this one)."""
    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def export_for_training(module, example_inputs, path, *, opset=17, input_names=None,
                        output_names=None, dynamic_batch=True):
    """Exports `module` for training to `path`.

    The module is deep-copied first: tracing in training mode runs a forward
    pass, which would otherwise update BatchNorm's running statistics of the
    module you keep. `example_inputs` is a tuple of tensors; its first
    dimension is the batch (symbolic in the file when `dynamic_batch`).
    Float buffers other than BatchNorm's running statistics (attention
    masks, fixed tables) are recorded as not trainable (mark_frozen).
    Returns the input and output names used."""
    example_inputs = tuple(example_inputs)
    input_names = input_names or (["x"] if len(example_inputs) == 1 else
                                  [f"x{i}" for i in range(len(example_inputs))])
    output_names = output_names or ["logits"]
    model = copy.deepcopy(module).train()
    axes = {name: {0: "batch"} for name in input_names + output_names} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example_inputs, path, opset_version=opset,
                          do_constant_folding=False,
                          training=torch.onnx.TrainingMode.TRAINING,
                          input_names=input_names, output_names=output_names,
                          dynamic_axes=axes, **legacy_exporter())
    buffers = [name for name, b in module.named_buffers()
               if b.is_floating_point() and not name.endswith(("running_mean", "running_var"))]
    if buffers:
        mark_frozen(path, buffers)
    return input_names, output_names


def mark_frozen(path, names):
    """Records `names` (the module's buffers: masks, fixed tables) in the
    model's metadata_props under "trainopt.frozen", so trainopt-compile
    keeps them out of training as PyTorch does; ONNX exports buffers and
    parameters alike as initializers. Appends the field to the serialized
    ModelProto (repeated fields may come in any order), so neither the onnx
    package nor a rewrite of the file is needed."""
    def varint(n):
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(number, payload):  # a length-delimited field
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    entry = field(1, b"trainopt.frozen") + field(2, ",".join(names).encode())
    with open(path, "ab") as f:
        f.write(field(14, entry))  # ModelProto.metadata_props


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("factory", help="module:function returning the nn.Module")
    ap.add_argument("--kwargs", default="{}", help="keyword arguments of the factory, as JSON")
    ap.add_argument("--input-shape", help="shape of a float example batch, e.g. 2,3,64,64")
    ap.add_argument("--tokens", help="VOCAB,LEN: an int64 token batch of shape [2, LEN] instead")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    module_name, _, function = args.factory.partition(":")
    if not function:
        ap.error("factory must be module:function")
    model = getattr(importlib.import_module(module_name), function)(**json.loads(args.kwargs))
    if args.tokens:
        vocab, length = map(int, args.tokens.split(","))
        example = torch.randint(0, vocab, (2, length))
    elif args.input_shape:
        example = torch.randn(*map(int, args.input_shape.split(",")))
    else:
        ap.error("give --input-shape or --tokens")
    inputs, outputs = export_for_training(model, (example,), args.output, opset=args.opset)
    print(f"wrote {args.output}: inputs {inputs}, outputs {outputs}, training mode, opset {args.opset}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
