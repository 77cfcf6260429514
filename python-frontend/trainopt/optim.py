"""Optimizers and learning-rate schedules for `trainopt.compile`, named and
defaulted as in PyTorch. Each is a description the compiler turns into the
training step (the same `trainopt-compile` flags, docs/cli.md), not an
object that steps: the compiled program updates its parameters itself.
"""


class _Flags:
    _name = None

    def __init__(self, **flags):
        self._flags = {k: v for k, v in flags.items() if v is not None}

    def flags(self):
        """The trainopt-compile flags, by name."""
        out = dict(self._flags)
        if self._name:
            out[self._flag] = self._name
        return out

    def __repr__(self):
        args = ", ".join(f"{k.replace('-', '_')}={v!r}" for k, v in self._flags.items())
        return f"{type(self).__name__}({args})"


class Optimizer(_Flags):
    _flag = "optimizer"

    def __init__(self, lr, weight_decay=None, no_weight_decay=None, **flags):
        super().__init__(lr=lr, **{"weight-decay": weight_decay,
                                   "no-weight-decay": no_weight_decay}, **flags)
        if lr is not None and not lr > 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}")


def _betas(name, betas):
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas}")
    return {"beta1": betas[0], "beta2": betas[1]}


class SGD(Optimizer):
    _name = "sgd"

    def __init__(self, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, no_weight_decay=None):
        super().__init__(lr, weight_decay, no_weight_decay, momentum=momentum,
                         dampening=dampening, nesterov=nesterov or None)


class Adam(Optimizer):
    _name = "adam"

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 no_weight_decay=None):
        super().__init__(lr, weight_decay, no_weight_decay, eps=eps, **_betas("Adam", betas))


class AdamW(Optimizer):
    _name = "adamw"

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 no_weight_decay=None):
        super().__init__(lr, weight_decay, no_weight_decay, eps=eps, **_betas("AdamW", betas))


class Adagrad(Optimizer):
    _name = "adagrad"

    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                 no_weight_decay=None):
        super().__init__(lr, weight_decay, no_weight_decay, eps=eps,
                         **{"lr-decay": lr_decay})


class RMSprop(Optimizer):
    _name = "rmsprop"

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 no_weight_decay=None):
        super().__init__(lr, weight_decay, no_weight_decay, alpha=alpha, eps=eps,
                         momentum=momentum)


class Lamb(Optimizer):
    _name = "lamb"

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0,
                 no_weight_decay=None):
        super().__init__(lr, weight_decay, no_weight_decay, eps=eps, **_betas("Lamb", betas))


class Lion(Optimizer):
    _name = "lion"

    def __init__(self, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, no_weight_decay=None):
        super().__init__(lr, weight_decay, no_weight_decay, **_betas("Lion", betas))


class Schedule(_Flags):
    _flag = "lr-schedule"


class Constant(Schedule):
    _name = "constant"


class StepLR(Schedule):
    _name = "step"

    def __init__(self, step_size, gamma=0.1):
        super().__init__(**{"step-size": step_size, "gamma": gamma})


class MultiStepLR(Schedule):
    _name = "multistep"

    def __init__(self, milestones, gamma=0.1):
        super().__init__(milestones=list(milestones), gamma=gamma)


class ExponentialLR(Schedule):
    _name = "exponential"

    def __init__(self, gamma):
        super().__init__(gamma=gamma)


class CosineAnnealing(Schedule):
    """Cosine decay to `min_lr` over `total_steps`, after `warmup_steps` of
    linear warmup."""
    _name = "cosine"

    def __init__(self, total_steps, min_lr=0.0, warmup_steps=0):
        super().__init__(**{"total-steps": total_steps, "min-lr": min_lr,
                            "warmup-steps": warmup_steps})


class LinearWarmup(Schedule):
    _name = "linear-warmup"

    def __init__(self, warmup_steps):
        super().__init__(**{"warmup-steps": warmup_steps})


class OneCycle(Schedule):
    _name = "one-cycle"

    def __init__(self, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
        super().__init__(**{"total-steps": total_steps, "pct-start": pct_start,
                            "div-factor": div_factor, "final-div-factor": final_div_factor})


__all__ = ["SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "Lamb", "Lion", "Optimizer",
           "Schedule", "Constant", "StepLR", "MultiStepLR", "ExponentialLR",
           "CosineAnnealing", "LinearWarmup", "OneCycle"]
