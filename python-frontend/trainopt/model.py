"""A compiled training program in Python: `Model` wraps a `.trainopt`
artifact loaded by the runtime (libtrainopt.so's C API) and drives its
entry points, `train_step` and `eval_step`, from NumPy data.

Arrays cross without copies where the runtime allows: inputs are written
straight into the program's input storage (one gather of the batch's rows,
with the dtype conversion and normalization), and `parameters(copy=False)`
returns views of the parameters' storage.
"""
import ctypes
import math
import os
import shutil
import sys
import time

import numpy as np

from . import _native as N
from .callbacks import Callback
from .data import Batches, DataError, Dataset, as_dataset


class Value:
    """A value of the program's signature."""

    def __init__(self, info):
        self.name = info.name.decode()
        self.role = N.ROLES[info.role]
        self.dtype = N.DTYPES[info.dtype]
        self.shape = tuple(info.shape[i] for i in range(info.rank))
        self.bytes = info.bytes

    @property
    def numpy_dtype(self):
        # bfloat16 has no NumPy dtype: its bits, as uint16.
        return np.dtype(np.uint16 if self.dtype == "bfloat16" else self.dtype)

    def __repr__(self):
        return f"Value('{self.name}', {self.role}, {self.dtype}, {list(self.shape)})"


def _bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _f32_to_bf16(x):
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    # Round to nearest even, as the runtime's conversions (NaN stays NaN).
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return np.where(np.isnan(x), 0x7FC0, rounded).astype(np.uint16)


def _is_float(dtype):
    return dtype in ("float64", "float32", "float16", "bfloat16")


class _Progress:
    """tqdm when installed, else a line on stderr redrawn twice a second."""

    def __init__(self, total, desc, enabled):
        self.bar, self.enabled, self.total, self.desc = None, enabled, total, desc
        self.n, self.last, self.postfix = 0, 0.0, ""
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="step", leave=True,
                            dynamic_ncols=True)
        except ImportError:
            self.bar = None

    def update(self, loss):
        self.n += 1
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            return
        now = time.monotonic()
        if now - self.last > 0.5 or self.n == self.total:
            self.last = now
            total = self.total or 0
            done = int(30 * self.n / total) if total else 0
            sys.stderr.write(f"\r{self.desc} [{'=' * done}{' ' * (30 - done)}] "
                             f"{self.n}/{total or '?'} loss {loss:.4f}")
            sys.stderr.flush()

    def close(self, summary=""):
        if not self.enabled:
            return
        if self.bar is not None:
            if summary:
                self.bar.set_postfix_str(summary)
            self.bar.close()
        else:
            sys.stderr.write(f"  {summary}\n")
            sys.stderr.flush()


class Model:
    """A compiled model: `trainopt.compile(...)` or `Model(path)` for a
    `.trainopt` artifact. `close()` (or a `with` block) frees the program
    and the temporary files of a model compiled without `output=`."""

    def __init__(self, path, threads=None, _owned_dir=None, _flags=None):
        self.path = os.path.abspath(os.fspath(path))
        self._owned_dir = _owned_dir
        self.compile_flags = dict(_flags or {})
        self._program = None
        L = N.lib()
        handle, buf = ctypes.c_void_p(), N.error_buffer()
        N.check(L.trainopt_program_load(N.encode(self.path), ctypes.byref(handle), buf,
                                        len(buf)), buf)
        self._program = handle
        if threads is not None:
            if threads < 0:
                raise ValueError(f"threads must be >= 0 (0: all cores), got {threads}")
            L.trainopt_program_set_threads(handle, int(threads))
        self.batch_size = int(L.trainopt_program_batch_size(handle))
        self.persistent_values = self._values(b"", N.PERSISTENT)
        self.inputs, self.outputs = {}, {}
        for entry in ("train_step", "eval_step"):
            if L.trainopt_program_num_values(handle, entry.encode(), N.INPUTS) >= 0:
                self.inputs[entry] = self._values(entry.encode(), N.INPUTS)
                self.outputs[entry] = self._values(entry.encode(), N.OUTPUTS)
        if "train_step" not in self.inputs:
            raise N.TrainoptError(f"'{self.path}' has no train_step")
        self.history = {}
        self.stop_training = False
        self.step, self.epoch, self.batch_in_epoch = self._read_step(), 0, 0
        self.seed, self.shuffle = 0, True

    # -- lifetime -----------------------------------------------------------
    def close(self):
        """Frees the program (and a temporary artifact); the model is
        unusable after."""
        if self._program is not None:
            N.lib().trainopt_program_free(self._program)
            self._program = None
        if self._owned_dir:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self):
        params = sum(math.prod(v.shape) for v in self.persistent_values
                     if v.role == "parameter")
        return (f"Model('{self.path}', batch_size={self.batch_size}, parameters={params}, "
                f"step={self.step})")

    # -- the C API ------------------------------------------------------------
    def _handle(self):
        if self._program is None:
            raise N.TrainoptError("the model is closed")
        return self._program

    def _values(self, entry, which):
        L, out = N.lib(), []
        buf = N.error_buffer()
        for i in range(L.trainopt_program_num_values(self._program, entry, which)):
            info = N.ValueInfo()
            N.check(L.trainopt_program_value(self._program, entry, which, i,
                                             ctypes.byref(info), buf, len(buf)), buf)
            out.append(Value(info))
        return out

    @staticmethod
    def _view(pointer, value, writable):
        if not pointer:
            raise N.TrainoptError(f"no storage for '{value.name}'")
        raw = (ctypes.c_uint8 * value.bytes).from_address(pointer)
        a = np.frombuffer(raw, dtype=value.numpy_dtype).reshape(value.shape)
        a.flags.writeable = writable
        return a

    def _persistent(self, value, writable=False):
        size = ctypes.c_size_t()
        p = N.lib().trainopt_program_persistent(self._handle(), value.name.encode(),
                                                ctypes.byref(size))
        return self._view(p, value, writable)

    def _input(self, entry, value):
        size = ctypes.c_size_t()
        p = N.lib().trainopt_program_input(self._handle(), entry.encode(),
                                           value.name.encode(), ctypes.byref(size))
        return self._view(p, value, True)

    def _output(self, entry, value):
        size = ctypes.c_size_t()
        p = N.lib().trainopt_program_output(self._handle(), entry.encode(),
                                            value.name.encode(), ctypes.byref(size))
        return self._view(p, value, False)

    def _run(self, entry):
        buf = N.error_buffer()
        N.check(N.lib().trainopt_program_run(self._handle(), entry.encode(), buf, len(buf)),
                buf)

    def _read_step(self):
        for v in self.persistent_values:
            if v.role == "step":
                return int(self._persistent(v).reshape(-1)[0])
        return 0

    # -- parameters -----------------------------------------------------------
    def parameters(self, copy=True):
        """The parameters by name (as in the model: ONNX initializers, graph
        parameters). `copy=False`: read-only views of the runtime's storage,
        which change as the model trains and die with it. bfloat16 values
        come as float32 copies."""
        return self._gather(("parameter",), copy)

    def state(self, copy=True):
        """Every persistent value by name: parameters, optimizer state,
        model state (BatchNorm statistics), the step counter."""
        return self._gather(("parameter", "optimizer_state", "model_state", "step"), copy)

    def _gather(self, roles, copy):
        out = {}
        for v in self.persistent_values:
            if v.role not in roles:
                continue
            a = self._persistent(v)
            if v.dtype == "bfloat16":
                a = _bf16_to_f32(a)
            elif copy:
                a = a.copy()
            out[v.name] = a
        return out

    def load_parameters(self, values, strict=True):
        """Writes `values` (name -> array, e.g. from `parameters()` or a
        PyTorch state_dict as NumPy) into the program. Every name must be a
        persistent value of the same shape; with `strict`, every parameter
        must be given. Nothing is written unless all of them fit."""
        by_name = {v.name: v for v in self.persistent_values}
        staged = []
        for name, array in values.items():
            v = by_name.get(name)
            if v is None:
                raise KeyError(f"load_parameters: the model has no value '{name}' (its "
                               f"parameters: {', '.join(self.parameters(copy=False))})")
            a = np.asarray(array)
            if a.shape != v.shape:
                raise DataError(f"load_parameters: '{name}' has shape {list(a.shape)}, the "
                                f"model's {list(v.shape)}")
            if a.dtype.kind not in "biuf":
                raise DataError(f"load_parameters: '{name}' has dtype {a.dtype}")
            if not _is_float(v.dtype) and a.dtype.kind == "f":
                raise DataError(f"load_parameters: '{name}' is {v.dtype}; got {a.dtype}")
            staged.append((v, a))
        if strict:
            missing = [v.name for v in self.persistent_values
                       if v.role == "parameter" and v.name not in values]
            if missing:
                raise KeyError(f"load_parameters: no value for {', '.join(missing)} "
                               f"(strict=False loads a subset)")
        for v, a in staged:
            dst = self._persistent(v, writable=True)
            dst[...] = _f32_to_bf16(a) if v.dtype == "bfloat16" else a.astype(v.numpy_dtype)

    # -- data -----------------------------------------------------------------
    def _classes(self, labels):
        """The number of classes the scores give integer `labels`: the
        class axis is the scores' dim the labels lack (last, or 1); 0 when
        no output fits."""
        outs = [v for v in self.outputs.get("eval_step", self.outputs["train_step"])
                if v.role == "output"]
        for v in [v for v in outs if v.name == "logits"] or outs:
            s, shape = tuple(v.shape), tuple(labels.shape)
            if len(s) == len(shape) + 1 and s[:-1] == shape:
                return s[-1]
            if len(s) == len(shape) + 1 and s[:1] + s[2:] == shape:
                return s[1]
        return 0

    def _logits(self, entry):
        """The [B, C] scores of `entry`: `logits`, or its only [B, C] output."""
        fits = [v for v in self.outputs.get(entry, [])
                if v.role == "output" and len(v.shape) == 2 and v.shape[0] == self.batch_size
                and v.shape[1] > 0]
        named = [v for v in fits if v.name == "logits"]
        return named[0] if named else fits[0] if len(fits) == 1 else None

    def _bind(self, entry, data, labels_needed=True):
        """`data` for `entry` (a token file cut into the model's windows),
        and the array of each input of `entry`, checked: shape per sample,
        dtype, label range."""
        values = [v for v in self.inputs[entry] if v.role in ("input", "labels")]
        data_inputs = [v for v in values if v.role == "input"]
        token = next((v for v in data_inputs if not _is_float(v.dtype) and len(v.shape) == 2),
                     None)
        data = data.window(token.shape[1]) if token is not None else data
        bound = []
        for v in values:
            alias = "y" if v.role == "labels" else "x" if len(data_inputs) == 1 else None
            key = data.find(v.name, alias)
            if key is None:
                if v.role == "labels" and not labels_needed:
                    bound.append((v, None))
                    continue
                what = "the labels" if v.role == "labels" else "input"
                raise DataError(f"{data.source} has no array for {what} '{v.name}' of the "
                                f"model (it has {data.names()}); name it '{v.name}'"
                                + (f" or '{alias}'" if alias else ""))
            a = data.arrays[key]
            per_sample = math.prod(v.shape[1:])
            if math.prod(a.shape[1:]) != per_sample:
                raise DataError(f"{data.source}: '{key}' has samples of shape "
                                f"{list(a.shape[1:])}, which do not fit the model's "
                                f"{v.role} '{v.name}' of shape {list(v.shape)} "
                                f"({per_sample} elements per sample)")
            if not _is_float(v.dtype) and a.dtype.kind == "f":
                if not np.all(np.isfinite(a)) or not np.all(a == np.floor(a)):
                    what = "class indices" if v.role == "labels" else "integer ids"
                    raise DataError(f"{data.source}: '{key}' is {a.dtype} with non-integer "
                                    f"values; the model's '{v.name}' takes {what} "
                                    f"({v.dtype})")
            classes = self._classes(v) if v.role == "labels" else 0
            if classes and not _is_float(v.dtype) and a.size:
                ignore = self.compile_flags.get("ignore-index")
                bad = np.flatnonzero(((a < 0) | (a >= classes)) &
                                     (a != (int(ignore) if ignore is not None else -1)))
                if bad.size:
                    raise DataError(f"{data.source}: label {a.reshape(-1)[bad[0]]} at index "
                                    f"{bad[0]} is outside [0, {classes}): the model's "
                                    f"logits have {classes} classes")
            bound.append((v, a))
        return data, bound

    @staticmethod
    def _normalized(data, v, rows):
        if not _is_float(v.dtype):
            return rows
        scale = data.scale if data.scale is not None else (
            1.0 / 255.0 if rows.dtype == np.uint8 else 1.0)
        out = rows.astype(np.float32 if v.dtype != "float64" else np.float64)
        if scale != 1.0:
            out *= scale
        if data.mean != 0.0 or data.std != 1.0:
            out = (out - data.mean) / data.std
        return out

    def _feed(self, entry, data, bound, index):
        for v, a in bound:
            dst = self._input(entry, v)
            if a is None:
                dst[...] = 0
                continue
            rows = self._normalized(data, v, a[index])
            if v.dtype == "bfloat16":
                rows = _f32_to_bf16(rows)
            dst[...] = rows.reshape(v.shape)

    def _feed_batch(self, entry, batch, data_like):
        """A batch from an iterable: (x, y), x, or a dict by name."""
        if isinstance(batch, dict):
            arrays = batch
        elif isinstance(batch, (tuple, list)) and len(batch) == 2:
            arrays = {"x": batch[0], "y": batch[1]}
        else:
            arrays = {"x": batch}
        d = Dataset(arrays, scale=data_like.scale, mean=data_like.mean, std=data_like.std,
                    source=data_like.source)
        if d.samples != self.batch_size:
            return False
        self._feed(entry, d, self._bind(entry, d)[1], np.arange(self.batch_size))
        return True

    # -- training -------------------------------------------------------------
    def _order(self, n, epoch):
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def _step_logs(self):
        logs = {}
        for v in self.outputs["train_step"]:
            if v.role in ("loss", "metric") and math.prod(v.shape) == 1:
                x = self._output("train_step", v).reshape(-1)[0]
                logs[v.name] = float(_bf16_to_f32(np.array([x]))[0]
                                     if v.dtype == "bfloat16" else x)
        return logs

    def _loss_name(self):
        names = [v.name for v in self.outputs["train_step"] if v.role == "loss"]
        return names[0] if names else None

    def fit(self, x=None, y=None, *, epochs=1, steps=None, validation_data=None,
            callbacks=(), shuffle=True, seed=0, verbose=1, allow_nan=False):
        """Trains for `epochs` epochs (or `steps` steps) from where the model
        stands (after `load_checkpoint`, mid-epoch if it was saved there).

        `x`, `y`: arrays, a dict of arrays by input name, a Dataset, an
        `.npz` path, or an iterable of batches (data.py). Each step takes
        `batch_size` samples; a last partial batch of an epoch is left out.
        Shuffled per epoch from `seed` unless `shuffle=False`.
        `validation_data`: what `evaluate` takes ((x, y), a Dataset, ...),
        evaluated after each epoch as val_loss and val_accuracy.
        A non-finite loss stops training with an error unless `allow_nan`
        (or the program skips such steps itself: loss scaling).
        Returns the history: metric name -> a value per epoch."""
        data = as_dataset(x, y)
        callbacks = list(callbacks)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: {cb!r} is not a trainopt.callbacks.Callback")
            cb.model = self
        if steps is not None and steps < 1:
            raise ValueError(f"steps must be positive, got {steps}")
        if epochs < 1:
            raise ValueError(f"epochs must be positive, got {epochs}")
        streaming = isinstance(data, Batches)
        if not streaming:
            data, bound = self._bind("train_step", data)
            per_epoch = len(data) // self.batch_size
            if per_epoch < 1:
                raise DataError(f"{data.source}: {len(data)} samples make no batch of "
                                f"{self.batch_size}")
        self.shuffle, self.seed = shuffle and not streaming, seed
        skips = any(v.name == "skipped" for v in self.outputs["train_step"])
        loss_name = self._loss_name()
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin({})
        done = 0
        logs = {}
        for _ in range(epochs):
            epoch = self.epoch
            for cb in callbacks:
                cb.on_epoch_begin(epoch, {})
            total = None if streaming else per_epoch - self.batch_in_epoch
            if steps is not None:
                total = min(total, steps - done) if total is not None else steps - done
            bar = _Progress(total, f"epoch {epoch + 1}", verbose > 0)
            loss_sum, loss_count, step_logs = 0.0, 0, {}
            if streaming:
                source = iter(data.iterable)
            else:
                order = self._order(len(data), epoch)
            ran = 0
            try:
                while steps is None or done < steps:
                    if streaming:
                        batch = next(source, None)
                        if batch is None:
                            break
                        if not self._feed_batch("train_step", batch, data):
                            continue
                    else:
                        if self.batch_in_epoch >= per_epoch:
                            break
                        b = self.batch_in_epoch
                        self._feed("train_step", data, bound,
                                   order[b * self.batch_size:(b + 1) * self.batch_size])
                    self._run("train_step")
                    self.step += 1
                    self.batch_in_epoch += 1
                    done += 1
                    ran += 1
                    step_logs = self._step_logs()
                    loss = step_logs.get(loss_name, float("nan"))
                    if not math.isfinite(loss) and not allow_nan and not (
                            skips and step_logs.get("skipped")):
                        raise N.TrainoptError(
                            f"training diverged: the loss is {loss} at step {self.step} (epoch "
                            f"{epoch + 1}); lower the learning rate, or pass allow_nan=True")
                    if math.isfinite(loss):
                        loss_sum, loss_count = loss_sum + loss, loss_count + 1
                    bar.update(loss)
                    for cb in callbacks:
                        cb.on_step_end(self.step, step_logs)
                    if self.stop_training:
                        break
            except BaseException:
                bar.close()
                raise
            if streaming and not ran:
                bar.close()
                break  # the iterable is exhausted
            finished = streaming or self.batch_in_epoch >= per_epoch
            logs = {k: v for k, v in step_logs.items() if k != loss_name}
            logs["loss"] = loss_sum / loss_count if loss_count else float("nan")
            if validation_data is not None and (finished or self.stop_training
                                                or (steps is not None and done >= steps)):
                vx, vy = (validation_data if isinstance(validation_data, tuple)
                          else (validation_data, None))
                for k, v in self.evaluate(vx, vy).items():
                    if k != "samples":
                        logs["val_" + k] = v
            bar.close(" ".join(f"{k} {v:.4g}" for k, v in logs.items()
                               if isinstance(v, float)))
            for k, v in logs.items():
                self.history.setdefault(k, []).append(v)
            if finished:
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training or (steps is not None and done >= steps):
                break
        for cb in callbacks:
            cb.on_train_end(logs)
        return self.history

    # -- evaluation -----------------------------------------------------------
    def _batches(self, data, entry, bound):
        """Runs `entry` over every sample of `data` in order; the last
        partial batch is padded with copies of its rows. Yields the rows
        that are real."""
        n = len(data)
        for start in range(0, n, self.batch_size):
            rows = min(self.batch_size, n - start)
            index = start + np.arange(self.batch_size) % rows
            self._feed(entry, data, bound, index)
            self._run(entry)
            yield start, rows

    def evaluate(self, x=None, y=None):
        """Runs `eval_step` (inference mode: BatchNorm's running statistics,
        no dropout) over every sample. With integer labels and [B, C]
        scores, the loss is the exact mean per-sample cross-entropy and the
        accuracy is given (as trainopt-run); otherwise the loss is the mean
        of eval_step's loss over full batches. Returns a dict: loss,
        accuracy (when there are class scores), samples."""
        if "eval_step" not in self.inputs:
            raise N.TrainoptError(f"'{self.path}' has no eval_step")
        data = as_dataset(x, y)
        if isinstance(data, Batches):
            raise DataError("evaluate takes arrays, a Dataset or an .npz path, not an "
                            "iterable of batches")
        data, bound = self._bind("eval_step", data)
        labels = next((a for v, a in bound if v.role == "labels"), None)
        label_value = next((v for v, _ in bound if v.role == "labels"), None)
        logits = self._logits("eval_step")
        loss = next((v for v in self.outputs["eval_step"] if v.role == "loss"), None)
        per_sample = (logits is not None and labels is not None and
                      not _is_float(label_value.dtype) and labels.size == len(data))
        loss_sum, correct, full = 0.0, 0, 0
        for start, rows in self._batches(data, "eval_step", bound):
            if per_sample:
                z = self._output("eval_step", logits)
                z = (_bf16_to_f32(z) if logits.dtype == "bfloat16" else z)[:rows]
                z = z.astype(np.float64)
                t = labels.reshape(-1)[start:start + rows].astype(np.int64)
                m = z.max(axis=1)
                lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
                loss_sum += float((lse - z[np.arange(rows), t]).sum())
                correct += int((z.argmax(axis=1) == t).sum())
            elif loss is not None and rows == self.batch_size:
                loss_sum += float(self._output("eval_step", loss).reshape(-1)[0])
                full += 1
        n = len(data)
        if per_sample:
            return {"loss": loss_sum / n, "accuracy": correct / n, "samples": n}
        return {"loss": loss_sum / full if full else float("nan"), "samples": n}

    def predict(self, x):
        """The model's outputs on every sample of `x` (arrays, a dict by
        input name, a Dataset or an .npz path; labels are not needed), by
        `eval_step` in inference mode: one array, or a dict by output name
        when the model has several."""
        if "eval_step" not in self.inputs:
            raise N.TrainoptError(f"'{self.path}' has no eval_step")
        data = as_dataset(x)
        if isinstance(data, Batches):
            raise DataError("predict takes arrays, a Dataset or an .npz path")
        data, bound = self._bind("eval_step", data, labels_needed=False)
        outs = [v for v in self.outputs["eval_step"] if v.role == "output"
                and v.shape and v.shape[0] == self.batch_size]
        if not outs:
            raise N.TrainoptError(f"'{self.path}': eval_step returns no per-sample output")
        result = {v.name: np.empty((len(data),) + v.shape[1:],
                                   np.float32 if v.dtype == "bfloat16" else v.numpy_dtype)
                  for v in outs}
        for start, rows in self._batches(data, "eval_step", bound):
            for v in outs:
                z = self._output("eval_step", v)
                result[v.name][start:start + rows] = (
                    _bf16_to_f32(z) if v.dtype == "bfloat16" else z)[:rows]
        return result[outs[0].name] if len(outs) == 1 else result

    # -- files ----------------------------------------------------------------
    def save_checkpoint(self, directory, keep=0):
        """Saves every persistent value and where training stands (step,
        epoch, position in it, shuffle seed) as `directory/ckpt-<step>.ckpt`,
        written atomically, with a copy of the artifact as
        `directory/model.trainopt` so `trainopt.load_checkpoint(directory)`
        needs nothing else. Keeps the newest `keep` checkpoints (0: all).
        Returns the checkpoint's path."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        artifact = os.path.join(directory, "model.trainopt")
        if not (os.path.exists(artifact) and os.path.samefile(artifact, self.path)):
            tmp = artifact + ".tmp"
            shutil.copyfile(self.path, tmp)
            os.replace(tmp, artifact)
        pos = N.CheckpointPosition(step=self.step, epoch=self.epoch,
                                   batch=self.batch_in_epoch, seed=self.seed,
                                   shuffle=int(self.shuffle), samples=0,
                                   batch_size=self.batch_size)
        path, buf = ctypes.create_string_buffer(4096), N.error_buffer()
        N.check(N.lib().trainopt_program_save_checkpoint(
            self._handle(), N.encode(directory), ctypes.byref(pos), path, len(path), buf,
            len(buf)), buf)
        if keep:
            names = sorted(f for f in os.listdir(directory)
                           if f.startswith("ckpt-") and f.endswith(".ckpt"))
            for old in names[:-keep]:
                os.remove(os.path.join(directory, old))
        return os.fsdecode(path.value)

    def load_checkpoint(self, path):
        """Loads a checkpoint (a file, or the newest in a directory) of
        this model: its values and where training stood."""
        pos, buf = N.CheckpointPosition(), N.error_buffer()
        N.check(N.lib().trainopt_program_load_checkpoint(
            self._handle(), N.encode(os.fspath(path)), ctypes.byref(pos), buf, len(buf)),
            buf)
        self.step, self.epoch, self.batch_in_epoch = pos.step, pos.epoch, pos.batch
        self.seed, self.shuffle = pos.seed, bool(pos.shuffle)
        return self

    def export_onnx(self, path, dtype="fp32", compact=False):
        """Writes the trained model as ONNX (as `trainopt-run --export-onnx`):
        the ONNX model it was compiled from with the current values;
        `dtype` fp32, bf16 or fp16; `compact` removes channel-pruned
        channels. Models built in Python have no ONNX form yet."""
        buf = N.error_buffer()
        N.check(N.lib().trainopt_program_export_onnx(
            self._handle(), N.encode(os.fspath(path)), dtype.encode(), int(compact), buf,
            len(buf)), buf)
        return os.fspath(path)


def load_checkpoint(path, artifact=None, threads=None):
    """A Model restored from a checkpoint saved by `Model.save_checkpoint`
    or `trainopt-run --checkpoint-dir`: `path` is the directory (its newest
    checkpoint) or a checkpoint file; `artifact` defaults to the
    directory's `model.trainopt`."""
    path = os.fspath(path)
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    artifact = artifact or os.path.join(directory, "model.trainopt")
    if not os.path.exists(artifact):
        raise N.TrainoptError(f"'{artifact}' does not exist: pass the compiled model as "
                              f"artifact=")
    return Model(artifact, threads=threads).load_checkpoint(path)


__all__ = ["Model", "Value", "load_checkpoint"]
