"""Training data for `Model.fit`, `evaluate` and `predict`.

Whatever the source, a model reads samples by name: each array's first axis
is the sample axis, and arrays are matched to the program's inputs by name,
with `x` standing for the only data input and `y` for the labels (as
`trainopt-run --data` does, docs/cli.md). Sources:

- NumPy arrays: `fit(x, y)`, or a dict of arrays by input name;
- `.npz` files: `load_npz(path)` (or a path given to `fit`);
- IDX files (MNIST, Fashion-MNIST; gzip allowed): `load_idx(images, labels)`;
- token files (llm.c's `.bin`, or headerless ids): `load_tokens(path)`,
  cut into windows of the model's sequence length when bound;
- any Python iterable of `(x, y)` batches (`Batches`): read as they come,
  one pass per epoch, not shuffled.

Normalization follows `trainopt-run`: uint8 data (images) are scaled by
1/255 unless `scale` is given; then `(x * scale - mean) / std`.
"""
import gzip
import os

import numpy as np

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
              0x0E: ">f8"}


class DataError(ValueError):
    """Data that cannot feed the model: a bad file, a wrong shape or
    dtype, a label out of range. The message names the file or array."""


class Dataset:
    """Named arrays with the sample axis first, and how float inputs are
    normalized: `(x * scale - mean) / std` (scale None: 1/255 for uint8
    data, 1 otherwise)."""

    def __init__(self, arrays, scale=None, mean=0.0, std=1.0, source="arrays"):
        if not isinstance(arrays, dict) or not arrays:
            raise DataError(f"{source}: expected a dict of arrays by name")
        self.arrays, self.source = {}, source
        n, first = None, None
        for name, a in arrays.items():
            a = np.asarray(a)
            if a.ndim == 0:
                raise DataError(f"{source}: '{name}' is a scalar; the first axis is the "
                                f"sample axis")
            if a.dtype.kind not in "biuf":
                raise DataError(f"{source}: '{name}' has dtype {a.dtype}; expected numbers")
            if n is not None and a.shape[0] != n:
                raise DataError(f"{source}: '{name}' has {a.shape[0]} samples, '{first}' "
                                f"has {n}")
            if first is None:
                n, first = a.shape[0], name
            self.arrays[name] = a
        if std == 0:
            raise DataError(f"{source}: std must not be 0")
        self.samples = n
        self.scale, self.mean, self.std = scale, mean, std

    def __len__(self):
        return self.samples

    def names(self):
        return ", ".join(sorted(self.arrays))

    def find(self, name, alias):
        if name in self.arrays:
            return name
        if alias and alias in self.arrays:
            return alias
        return None

    def window(self, length):
        """This dataset for a model whose token input is [B, `length`]."""
        return self


class TokenFile(Dataset):
    """A token file, cut into `(count - 1) // T` non-overlapping windows of
    the model's sequence length T when bound: `x` a window, `y` the same
    window shifted by one token."""

    def __init__(self, tokens, source):
        self.tokens, self.source = tokens, source
        self.scale, self.mean, self.std = None, 0.0, 1.0

    def window(self, length):
        n = (len(self.tokens) - 1) // length
        if n < 1:
            raise DataError(f"{self.source}: {len(self.tokens)} tokens hold no window of "
                            f"{length + 1}")
        t = self.tokens[: n * length + 1].astype(np.int64)
        x = t[:-1].reshape(n, length)
        y = t[1:].reshape(n, length)
        return Dataset({"x": x, "y": y}, source=self.source)


class Batches:
    """An iterable of batches, each `(x, y)`, `x`, or a dict by input name,
    with the batch axis first. Read in order, one pass per epoch (an
    iterator that is exhausted ends training); a last batch smaller than
    the model's batch size is skipped by `fit`."""

    def __init__(self, iterable, scale=None, mean=0.0, std=1.0):
        self.iterable = iterable
        self.scale, self.mean, self.std = scale, mean, std
        self.source = f"batches from {type(iterable).__name__}"


def _open(path):
    with open(path, "rb") as f:
        head = f.read(2)
    return gzip.open(path, "rb") if head == b"\x1f\x8b" else open(path, "rb")


def read_idx(path):
    """An IDX file (gzip allowed) as an array."""
    try:
        with _open(path) as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"'{path}': cannot read: {e.strerror or e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise DataError(f"'{path}': not an IDX file (bad magic number)")
    ndim = data[3]
    if ndim < 1 or len(data) < 4 + 4 * ndim:
        raise DataError(f"'{path}': not an IDX file (truncated header)")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(_IDX_TYPES[data[2]])
    count = int(np.prod(dims, dtype=np.int64))
    body = data[4 + 4 * ndim:]
    if len(body) != count * dtype.itemsize:
        raise DataError(f"'{path}': IDX header says {dims} ({count * dtype.itemsize} "
                        f"bytes), the file holds {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def load_idx(images, labels=None, limit=None, **normalization):
    """IDX images (and labels) as a Dataset with `x` (and `y`); `limit`
    keeps the first samples."""
    arrays = {"x": read_idx(images)}
    if labels is not None:
        arrays["y"] = read_idx(labels)
    if limit is not None:
        arrays = {k: v[:limit] for k, v in arrays.items()}
    return Dataset(arrays, source=f"'{images}'", **normalization)


def load_npz(path, **normalization):
    """An `.npz` file's arrays as a Dataset, by their names."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise DataError(f"'{path}': a single .npy array, not an .npz archive")
            arrays = {k: z[k] for k in z.files}
    except DataError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"'{path}': not a readable .npz file ({e})") from None
    if not arrays:
        raise DataError(f"'{path}': the .npz archive holds no arrays")
    return Dataset(arrays, source=f"'{path}'", **normalization)


def load_tokens(path, token_bytes=2):
    """A token file: llm.c's format (1024-byte header, magic 20240520,
    version 1 uint16 or version 2 uint32 ids) or headerless ids of
    `token_bytes` (2 or 4) bytes."""
    if token_bytes not in (2, 4):
        raise DataError(f"token_bytes must be 2 or 4, got {token_bytes}")
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise DataError(f"'{path}': cannot read: {e.strerror or e}") from None
    header = raw[:1024].view("<i4") if raw.size >= 1024 else None
    if header is not None and header[0] == 20240520:
        if header[1] not in (1, 2):
            raise DataError(f"'{path}': llm.c token file version {header[1]}; expected 1 or 2")
        width = 2 if header[1] == 1 else 4
        count = int(header[2])
        body = raw[1024:]
        if body.size != count * width:
            raise DataError(f"'{path}': the header says {count} tokens, the file holds "
                            f"{body.size // width}")
    else:
        width, body = token_bytes, raw
        if body.size % width:
            raise DataError(f"'{path}': {body.size} bytes is not a whole number of "
                            f"{width}-byte tokens")
    return TokenFile(body.view("<u2" if width == 2 else "<u4"), f"'{path}'")


def as_dataset(x, y=None, source="the arrays"):
    """What `fit`, `evaluate` and `predict` accept, as a Dataset or
    Batches."""
    if isinstance(x, (Dataset, Batches)):
        if y is not None:
            raise DataError("give the labels inside the dataset, not as y")
        return x
    if isinstance(x, (str, os.PathLike)):
        if y is not None:
            raise DataError("give the labels inside the file, not as y")
        path = os.fspath(x)
        if path.endswith(".npz"):
            return load_npz(path)
        raise DataError(f"'{path}': expected an .npz file (use load_idx or load_tokens "
                        f"for IDX and token files)")
    if isinstance(x, dict):
        arrays = dict(x)
    elif isinstance(x, np.ndarray):
        arrays = {"x": x}
    elif (hasattr(x, "__iter__") and not isinstance(x, (list, tuple))) or (
            isinstance(x, list) and x and isinstance(x[0], (tuple, dict))):
        if y is not None:
            raise DataError("an iterable of batches carries its own labels")
        return Batches(x)
    else:
        arrays = {"x": np.asarray(x)}
    if y is not None:
        arrays["y"] = np.asarray(y)
    return Dataset(arrays, source=source)


__all__ = ["Batches", "DataError", "Dataset", "TokenFile", "as_dataset", "load_idx",
           "load_npz", "load_tokens", "read_idx"]
