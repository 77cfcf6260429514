# -*- Python -*-
"""lit configuration of the trainopt test suite (check-trainopt)."""

import os
import shutil
import subprocess

import lit.formats
from lit.llvm import llvm_config

config.name = "TRAINOPT"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["Inputs", "CMakeLists.txt", "lit.cfg.py", "lit.site.cfg.py"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.trainopt_obj_root, "test")

llvm_config.use_default_substitutions()
llvm_config.with_system_environment(["TRAINOPT_REQUIRE_DATASETS"])
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
llvm_config.with_environment("PATH", config.trainopt_tools_dir, append_path=True)

scripts = os.path.join(config.trainopt_src_root, "scripts")
config.substitutions.append(("%pyonnx", config.python_executable))
config.substitutions.append(
    ("%onnx_from_text", f"{config.python_executable} {scripts}/onnx_from_text.py"))
config.substitutions.append(
    ("%gen_models", f"{config.python_executable} {scripts}/gen_models.py"))
config.substitutions.append(
    ("%torch_python", config.torch_python))
config.substitutions.append(("%scripts", scripts))
config.substitutions.append(("%trainopt_src_root", config.trainopt_src_root))
config.substitutions.append(("%trainopt_obj_root", config.trainopt_obj_root))

llvm_config.add_tool_substitutions(
    ["trainopt-opt", "trainopt-compile", "trainopt-eval", "trainopt-run"],
    [config.trainopt_tools_dir])

# Features: the onnx package (PyPI) and torch (Debian python3-torch) are
# installed by the README's test command; a missing one is reported, not
# silently skipped, unless the suite runs outside that command.
def python_can_import(python, module):
    try:
        return subprocess.run([python, "-c", f"import {module}"],
                              capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False

if python_can_import(config.python_executable, "onnx"):
    config.available_features.add("onnx")
else:
    lit_config.warning(f"{config.python_executable} cannot import onnx: "
                       "ONNX importer tests are UNSUPPORTED")
if os.path.exists(config.torch_python) and python_can_import(config.torch_python, "torch"):
    config.available_features.add("torch")
else:
    lit_config.warning(f"{config.torch_python} cannot import torch: "
                       "PyTorch-export tests are UNSUPPORTED")
# Fashion-MNIST from Debian's dataset-fashion-mnist, for end-to-end training.
fashion = "/usr/share/datasets/fashion-mnist"
config.substitutions.append(("%fashion_mnist", fashion))
if os.path.exists(os.path.join(fashion, "train-images-idx3-ubyte.gz")):
    config.available_features.add("fashion-mnist")
elif os.environ.get("TRAINOPT_REQUIRE_DATASETS"):
    lit_config.fatal(f"{fashion} is missing; the test command installs dataset-fashion-mnist")
else:
    lit_config.warning(f"{fashion} is missing: end-to-end training tests are UNSUPPORTED")
# The CUDA toolkit (no GPU needed): PTX generation links libdevice, and
# ptxas, when present, checks that the PTX assembles.
cuda_root = os.environ.get("CUDA_PATH", "/usr/local/cuda")
config.substitutions.append(("%cuda_path", cuda_root))
if os.path.exists(os.path.join(cuda_root, "nvvm/libdevice/libdevice.10.bc")):
    config.available_features.add("cuda-toolkit")
else:
    lit_config.warning(f"no libdevice under {cuda_root}: PTX tests are UNSUPPORTED")
ptxas = shutil.which("ptxas") or os.path.join(cuda_root, "bin/ptxas")
if os.access(ptxas, os.X_OK):
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))
# Open MPI's launcher, for the collectives of sharded jobs: those tests
# carry `REQUIRES: mpi`. mpirun refuses to run as root without
# --allow-run-as-root (harmless otherwise), and --oversubscribe lets a job
# have more ranks than the machine has cores.
mpirun = shutil.which("mpirun")
if mpirun:
    config.available_features.add("mpi")
    config.substitutions.append(
        ("%mpirun", f"{mpirun} --allow-run-as-root --oversubscribe"))
else:
    lit_config.warning("mpirun is not on PATH (Debian: openmpi-bin): "
                       "collective tests are UNSUPPORTED")
# A usable GPU (driver, device): GPU tests carry `REQUIRES: cuda`.
if config.enable_cuda:
    try:
        probe = subprocess.run(
            [os.path.join(config.trainopt_tools_dir, "trainopt-run"), "--cuda-info"],
            capture_output=True, text=True, timeout=120)
        if probe.returncode == 0:
            config.available_features.add("cuda")
            lit_config.note(f"GPU tests run on {probe.stdout.strip()}")
        else:
            lit_config.note(f"GPU tests are UNSUPPORTED: {probe.stdout.strip()}")
    except (OSError, subprocess.TimeoutExpired) as e:
        lit_config.note(f"GPU tests are UNSUPPORTED: {e}")
