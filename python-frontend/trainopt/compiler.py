"""`trainopt.compile`: a graph, an ONNX model or a PyTorch module to a
trained-ready `Model`, through the compiler library (libtrainopt.so's
trainopt_compile, the same code and flags as `trainopt-compile`)."""
import os
import shutil
import tempfile
import warnings

from . import _native as N
from .graph import Graph
from .model import Model
from .optim import Optimizer, Schedule


class Source:
    """A model file to compile: what `from_onnx` and `from_torch` return.
    `compile` reads it; `path` is the file."""

    def __init__(self, path, kind, note="", values=None, _owned_dir=None):
        """`values`: initial values by name that replace the file's once
        compiled (from_torch: the module's buffers as they were before the
        export's trace ran)."""
        self.path, self.kind, self.note, self._owned_dir = os.fspath(path), kind, note, _owned_dir
        self.values = dict(values or {})

    def __repr__(self):
        return f"Source('{self.path}', {self.kind})"

    def __del__(self):
        if getattr(self, "_owned_dir", None):
            shutil.rmtree(self._owned_dir, ignore_errors=True)


def from_onnx(path):
    """An ONNX model file, checked to exist and be readable (the compiler
    checks the rest when compiling)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"'{path}': no such ONNX model file")
    with open(path, "rb"):
        pass
    return Source(path, "onnx")


def from_torch(module, example_inputs, input_names=None, output_names=("logits",),
               dynamic_batch=True, opset=None, path=None):
    """Exports a `torch.nn.Module` to ONNX for training: in training mode
    (torch.onnx.TrainingMode.TRAINING: BatchNorm normalizes by the batch's
    statistics and Dropout stays), without constant folding (so parameters
    stay initializers, trained, rather than folded into constants), and
    with the state_dict names kept. `example_inputs`: a tensor or tuple of
    tensors with the batch first. The batch dim is made symbolic unless
    `dynamic_batch=False`; compile binds it with `batch_size`."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module, got {type(module).__name__}")
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise TypeError("from_torch: example_inputs must be a tensor or a tuple of tensors")
    names = list(input_names or (["x"] if len(inputs) == 1 else
                                 [f"input{i}" for i in range(len(inputs))]))
    owned = None
    if path is None:
        owned = tempfile.mkdtemp(prefix="trainopt-torch-")
        path = os.path.join(owned, f"{type(module).__name__}.onnx")
    axes = {n: {0: "batch"} for n in list(names) + list(output_names)} if dynamic_batch else None
    was_training = module.training
    # The export traces the module in training mode, which updates
    # BatchNorm's running statistics (and writes the updated ones into the
    # file): the module gets its state back, and the compiled model the
    # buffers as they were.
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    buffers = {k for k, _ in module.named_buffers()}
    module.train()
    try:
        kwargs = {"opset_version": opset} if opset else {}
        torch.onnx.export(module, inputs, path, training=torch.onnx.TrainingMode.TRAINING,
                          do_constant_folding=False, input_names=names,
                          output_names=list(output_names), dynamic_axes=axes,
                          export_params=True, keep_initializers_as_inputs=False, **kwargs)
    finally:
        module.load_state_dict(state)
        module.train(was_training)
    values = {k: v.cpu().numpy() for k, v in state.items()
              if k in buffers and v.is_floating_point()}
    return Source(path, "onnx", note="exported from PyTorch for training: training mode, "
                  "no constant folding", values=values, _owned_dir=owned)


def _flag(name, value):
    name = name.replace("_", "-")
    if value is True:
        return f"--{name}"
    if value is False:
        return f"--{name}=false"
    if isinstance(value, (list, tuple)):
        return f"--{name}={','.join(str(v) for v in value)}"
    return f"--{name}={value}"


def compile(model, batch_size=None, loss=None, optimizer=None, schedule=None, target="cpu",
            amp=None, output=None, example_inputs=None, threads=None, **options):
    """Compiles `model` for training and loads it.

    `model`: a `trainopt.Graph`, a path (ONNX, `.tgraph` or MLIR), what
    `from_onnx`/`from_torch` return, or a `torch.nn.Module` (with
    `example_inputs`, through `from_torch`).
    `batch_size`: binds the batch dim (needed when it is symbolic).
    `loss`: cross_entropy, nll or mse (None: the model's own).
    `optimizer`: a `trainopt.optim` optimizer (e.g. `AdamW(lr=1e-3)`) or a
    name; `schedule`: a `trainopt.optim` schedule or a name.
    `target`: "cpu" or "cuda"; `amp`: None, "bf16" or "fp16".
    `options`: any other trainopt-compile flag by its name with `_` for
    `-` (docs/cli.md): `clip_grad_norm=1.0`, `quantize="int8"`,
    `prune="magnitude:0.9"`; True gives a bare flag, lists are
    comma-joined.
    `output`: where to write the `.trainopt` (default: a temporary file,
    removed when the model is closed). `threads`: CPU threads (0: all).

    Returns a `Model`. Raises `TrainoptError` with the compiler's messages
    when compilation fails; its warnings become Python warnings."""
    owned = tempfile.mkdtemp(prefix="trainopt-")
    try:
        source = _source(model, example_inputs, owned)
        flags = {}
        if batch_size is not None:
            if not isinstance(batch_size, int) or batch_size < 1:
                raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
            flags["batch-size"] = batch_size
        if loss is not None:
            flags["loss"] = loss
        for what, value, kind in (("optimizer", optimizer, Optimizer),
                                  ("lr-schedule", schedule, Schedule)):
            if value is None:
                continue
            if isinstance(value, kind):
                flags.update(value.flags())
            elif isinstance(value, str):
                flags[what] = value
            else:
                raise TypeError(f"{what}: expected a trainopt.optim.{kind.__name__} or a "
                                f"name, got {type(value).__name__}")
        if target not in ("cpu", "cuda"):
            raise ValueError(f"target must be 'cpu' or 'cuda', got '{target}'")
        flags["target"] = target
        if amp is not None:
            flags["amp"] = amp
        for name, value in options.items():
            if name in ("emit", "o"):
                raise ValueError(f"compile: '{name}' is compile's own (it writes an artifact "
                                 f"to `output`); trainopt-compile writes the other --emit "
                                 f"forms")
            if value is not None:
                flags[name.replace("_", "-")] = value
        out = os.fspath(output) if output is not None else os.path.join(
            owned, "model.trainopt")
        args = [source.path, "-o", out, "--emit=artifact"] + [_flag(k, v) for k, v in flags.items()]
        notes = N.compile_args(args)
        if notes:
            warnings.warn(notes, stacklevel=2)
        model = Model(out, threads=threads, _owned_dir=owned if output is None else None,
                      _flags=flags)
        names = {v.name for v in model.persistent_values}
        model.load_parameters({k: v for k, v in source.values.items() if k in names},
                              strict=False)
        return model
    except BaseException:
        shutil.rmtree(owned, ignore_errors=True)
        raise
    finally:
        if output is not None:
            shutil.rmtree(owned, ignore_errors=True)


def _source(model, example_inputs, directory):
    """`model` as a Source (a file to compile)."""
    if isinstance(model, Graph):
        return Source(model.save(os.path.join(directory,
                                              f"{model.proto.name or 'model'}.tgraph")), "graph")
    if isinstance(model, Source):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise FileNotFoundError(f"'{path}': no such model file")
        return Source(path, "file")
    try:
        import torch
        if isinstance(model, torch.nn.Module):
            if example_inputs is None:
                raise ValueError("compile: a torch.nn.Module needs example_inputs (a batch "
                                 "of inputs) to be exported")
            return from_torch(model, example_inputs,
                              path=os.path.join(directory, "model.onnx"))
    except ImportError:
        pass
    raise TypeError(f"compile: expected a trainopt.Graph, a model path, from_onnx/from_torch, "
                    f"or a torch.nn.Module; got {type(model).__name__}")


__all__ = ["Source", "compile", "from_onnx", "from_torch"]
