"""trainopt's Python frontend (in progress, docs/graph-format.md): build
graphs with `trainopt.nn` modules or `trainopt.functional` ops and save them
as `.tgraph` files that `trainopt-compile` reads. Compiling and training
from Python (compile, fit, evaluate) come next."""
from . import functional, nn  # noqa: F401
from .graph import GRAPH_VERSION, Graph, ShapeError, Tensor  # noqa: F401

__all__ = ["GRAPH_VERSION", "Graph", "ShapeError", "Tensor", "functional", "nn"]
