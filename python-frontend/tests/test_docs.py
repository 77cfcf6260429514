"""docs/python.md describes every public name, and the README's quick
start runs."""
import inspect
import os
import re
import subprocess
import sys

import trainopt
from conftest import ROOT


def public_names():
    names = set(trainopt.__all__)
    for module in (trainopt.nn, trainopt.functional, trainopt.optim, trainopt.callbacks,
                   trainopt.data):
        names |= {n for n in getattr(module, "__all__", dir(module)) if not n.startswith("_")
                  and inspect.getmodule(getattr(module, n)) is module}
    for cls in (trainopt.Model, trainopt.Graph):
        names |= {n for n, _ in inspect.getmembers(cls, inspect.isfunction)
                  if not n.startswith("_")}
    return names


def test_every_public_name_is_documented():
    doc = open(os.path.join(ROOT, "docs", "python.md")).read()
    missing = sorted(n for n in public_names() if not re.search(rf"\b{re.escape(n)}\b", doc))
    assert not missing, f"docs/python.md does not mention: {', '.join(missing)}"


def test_quick_start_runs(tmp_path, fashion):
    # `fashion` skips without Fashion-MNIST (the quick start reads it), and
    # fails instead when TRAINOPT_REQUIRE_DATASETS=1, as in CI.
    readme = open(os.path.join(ROOT, "python-frontend", "README.md")).read()
    block = re.search(r"<!-- quickstart -->\n```python\n(.*?)```\n<!-- /quickstart -->", readme,
                      re.S).group(1)
    assert len(block.strip().splitlines()) <= 10
    script = tmp_path / "quickstart.py"
    script.write_text(block)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "epoch 1" in run.stderr
    assert float(run.stdout.strip().strip("[]")) > 0.8
