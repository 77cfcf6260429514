"""libtrainopt.so through ctypes: the compiler's C API (trainopt_compiler.h)
and the runtime's (trainopt_runtime.h).

ctypes rather than a compiled extension: the C API exists already and is
plain C, ctypes ships with every CPython (no build step, no compiler or
Python headers at install time, one package for every Python version), and
the calls are coarse (a compile, a step), so its per-call cost (about a
microsecond) does not show. Arrays cross without copies: NumPy views of the
runtime's storage (numpy.ctypeslib).

The library is found, in order: $TRAINOPT_LIBRARY; the copy installed with
the package (trainopt/_lib/); the build tree of the source checkout this
package sits in (build/lib/).
"""
import ctypes
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


class TrainoptError(RuntimeError):
    """A compile, load, step, checkpoint or export failed; the message says
    what and names the file, flag or value."""


def library_path():
    env = os.environ.get("TRAINOPT_LIBRARY")
    if env:
        return env
    for candidate in (os.path.join(_HERE, "_lib", "libtrainopt.so"),
                      os.path.join(_HERE, "..", "..", "build", "lib", "libtrainopt.so")):
        if os.path.exists(candidate):
            return os.path.normpath(candidate)
    raise TrainoptError(
        "cannot find libtrainopt.so: build trainopt (scripts/setup.sh) and install this "
        "package with `pip install ./python-frontend`, or set TRAINOPT_LIBRARY to the "
        "library's path")


class ValueInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("role", ctypes.c_int), ("dtype", ctypes.c_int),
                ("rank", ctypes.c_int32), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("bytes", ctypes.c_size_t)]


class CheckpointPosition(ctypes.Structure):
    _fields_ = [("step", ctypes.c_uint64), ("epoch", ctypes.c_uint64),
                ("batch", ctypes.c_int64), ("seed", ctypes.c_uint64),
                ("shuffle", ctypes.c_int), ("samples", ctypes.c_uint64),
                ("batch_size", ctypes.c_uint64)]


# trainopt_role and trainopt_dtype, value for value.
ROLES = ["parameter", "optimizer_state", "model_state", "step", "input", "labels",
         "metric", "output", "loss"]
DTYPES = ["float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8",
          "bool", "bfloat16"]
PERSISTENT, INPUTS, OUTPUTS = 0, 1, 2

_lib = None
_ERR = 1 << 16


def lib():
    """The loaded library, with its functions' prototypes."""
    global _lib
    if _lib is not None:
        return _lib
    path = library_path()
    try:
        L = ctypes.CDLL(path)
    except OSError as e:
        raise TrainoptError(f"cannot load {path}: {e}") from None
    P, S, I, C = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_char_p
    argv = ctypes.POINTER(ctypes.c_char_p)
    for name, res, args in [
        ("trainopt_compile", I, [I, argv, C, S]),
        ("trainopt_program_load", I, [C, ctypes.POINTER(P), C, S]),
        ("trainopt_program_free", None, [P]),
        ("trainopt_program_run", I, [P, C, C, S]),
        ("trainopt_program_persistent", P, [P, C, ctypes.POINTER(S)]),
        ("trainopt_program_input", P, [P, C, C, ctypes.POINTER(S)]),
        ("trainopt_program_output", P, [P, C, C, ctypes.POINTER(S)]),
        ("trainopt_program_num_values", ctypes.c_int64, [P, C, I]),
        ("trainopt_program_value", I, [P, C, I, ctypes.c_int64, ctypes.POINTER(ValueInfo),
                                       C, S]),
        ("trainopt_program_batch_size", ctypes.c_int64, [P]),
        ("trainopt_program_set_threads", None, [P, I]),
        ("trainopt_program_export_onnx", I, [P, C, C, I, C, S]),
        ("trainopt_program_save_checkpoint", I, [P, C, ctypes.POINTER(CheckpointPosition),
                                                 C, S, C, S]),
        ("trainopt_program_load_checkpoint", I, [P, C, ctypes.POINTER(CheckpointPosition),
                                                 C, S]),
    ]:
        f = getattr(L, name)
        f.restype, f.argtypes = res, args
    _lib = L
    return L


def error_buffer():
    return ctypes.create_string_buffer(_ERR)


def check(status, buf):
    """Raises TrainoptError with the C API's message unless `status` is OK."""
    if status != 0:
        raise TrainoptError(buf.value.decode("utf-8", "replace").strip() or "failed")


def encode(text):
    return os.fsencode(text) if isinstance(text, (str, os.PathLike)) else text


def compile_args(args):
    """Runs trainopt_compile(args); returns its diagnostics (warnings) or
    raises TrainoptError with them."""
    L = lib()
    arr = (ctypes.c_char_p * len(args))(*[encode(a) for a in args])
    buf = error_buffer()
    status = L.trainopt_compile(len(args), arr, buf, _ERR)
    text = buf.value.decode("utf-8", "replace").strip()
    if status != 0:
        raise TrainoptError(text or "trainopt-compile failed")
    return text
