"""Callbacks for `Model.fit`: hooks called around epochs and steps with the
metrics so far. A callback stops training by setting
`model.stop_training = True`."""
import math
import os


class Callback:
    """Override any of the hooks; `self.model` is set by `fit`."""
    model = None

    def on_train_begin(self, logs):
        pass

    def on_epoch_begin(self, epoch, logs):
        pass

    def on_step_end(self, step, logs):
        """After each training step: `logs` holds the step's metrics
        (loss, and the program's others: lr, grad_norm, ...)."""

    def on_epoch_end(self, epoch, logs):
        """`logs`: the epoch's mean loss, its other metrics' last values
        and, with validation data, val_loss and val_accuracy."""

    def on_train_end(self, logs):
        pass


def _better(mode, monitor):
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min', 'max' or 'auto', got '{mode}'")
    return (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)


def _monitored(logs, monitor, who):
    if monitor not in logs:
        raise KeyError(f"{who}: the metric '{monitor}' is not logged (logged: "
                       f"{', '.join(sorted(logs))}); pass validation_data for val_ metrics")
    return logs[monitor]


class EarlyStopping(Callback):
    """Stops when `monitor` has not improved by more than `min_delta` for
    `patience` epochs; with `restore_best`, the parameters of the best
    epoch are put back at the end."""

    def __init__(self, monitor="val_loss", patience=0, min_delta=0.0, mode="auto",
                 restore_best=False):
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(min_delta)
        self.better = _better(mode, monitor)
        self.sign = -1.0 if self.better(0.0, 1.0) else 1.0
        self.restore_best = restore_best
        self.best, self.wait, self.best_state, self.stopped_epoch = None, 0, None, None

    def on_train_begin(self, logs):
        self.best, self.wait, self.best_state, self.stopped_epoch = None, 0, None, None

    def on_epoch_end(self, epoch, logs):
        value = _monitored(logs, self.monitor, "EarlyStopping")
        if math.isfinite(value) and (self.best is None or
                                     self.better(value - self.sign * self.min_delta, self.best)):
            self.best, self.wait = value, 0
            if self.restore_best:
                self.best_state = self.model.state(copy=True)
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs):
        if self.restore_best and self.best_state is not None:
            self.model.load_parameters(self.best_state)


class ModelCheckpoint(Callback):
    """Saves a checkpoint into `directory` every `every` epochs (or, with
    `monitor` and `save_best_only`, when the metric improves), keeping the
    newest `keep` (0: all). `trainopt.load_checkpoint(directory)` resumes
    from the newest; `trainopt-run --resume` reads them too."""

    def __init__(self, directory, every=1, monitor=None, save_best_only=False, mode="auto",
                 keep=3):
        if save_best_only and not monitor:
            raise ValueError("ModelCheckpoint: save_best_only needs monitor")
        self.directory, self.every, self.keep = os.fspath(directory), every, keep
        self.monitor, self.save_best_only = monitor, save_best_only
        self.better = _better(mode, monitor or "loss")
        self.best, self.saved = None, []

    def on_epoch_end(self, epoch, logs):
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if self.best is not None and not self.better(value, self.best):
                return
            self.best = value
        elif (epoch + 1) % self.every:
            return
        self.saved.append(self.model.save_checkpoint(self.directory, keep=self.keep))


class LambdaCallback(Callback):
    """A callback from functions: on_epoch_end=lambda epoch, logs: ..."""

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if not hasattr(Callback, name):
                raise TypeError(f"LambdaCallback: no hook named '{name}'")
            setattr(self, name, fn)


__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint", "LambdaCallback"]
