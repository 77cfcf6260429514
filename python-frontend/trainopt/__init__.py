"""trainopt's Python package: build models in Python (`trainopt.nn`,
`trainopt.functional`, `trainopt.Graph`) or bring them from ONNX and
PyTorch (`from_onnx`, `from_torch`), compile them for training
(`trainopt.compile`), and train, evaluate and export them (`Model`).
docs/python.md is the reference."""
from . import callbacks, data, functional, nn, optim  # noqa: F401
from ._native import TrainoptError  # noqa: F401
from .compiler import Source, compile, from_onnx, from_torch  # noqa: F401
from .data import DataError, Dataset, load_idx, load_npz, load_tokens  # noqa: F401
from .graph import GRAPH_VERSION, Graph, ShapeError, Tensor  # noqa: F401
from .model import Model, load_checkpoint  # noqa: F401

__version__ = "0.1.0"

__all__ = ["GRAPH_VERSION", "DataError", "Dataset", "Graph", "Model", "ShapeError", "Source",
           "Tensor", "TrainoptError", "callbacks", "compile", "data", "from_onnx",
           "from_torch", "functional", "load_checkpoint", "load_idx", "load_npz",
           "load_tokens", "nn", "optim"]
