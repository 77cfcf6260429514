"""Generates the graph schema's Python classes with protoc (stdlib only:
setup.py and scripts/gen_graph_models.py load this file on its own).

The schema is compiled under its path from include/
("trainopt/Graph/graph.proto"), as the C++ build compiles it: protobuf
registers every schema by that name once per process, and a bare
"graph.proto" would clash with other libraries' schemas.
"""
import os
import shutil
import subprocess
import tempfile

INCLUDE = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                        "include"))
PROTO = os.path.join(INCLUDE, "trainopt", "Graph", "graph.proto")


def generate(out_dir, include=INCLUDE):
    """Writes `out_dir`/graph_pb2.py; returns its path. Raises OSError or
    subprocess.CalledProcessError when protoc is missing or fails."""
    proto = os.path.join(include, "trainopt", "Graph", "graph.proto")
    work = tempfile.mkdtemp(prefix="trainopt-protoc-")
    try:
        subprocess.run(["protoc", f"--proto_path={include}", f"--python_out={work}", proto],
                       check=True, capture_output=True, text=True)
        target = os.path.join(out_dir, "graph_pb2.py")
        shutil.move(os.path.join(work, "trainopt", "Graph", "graph_pb2.py"), target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)
