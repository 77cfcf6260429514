"""Modules in PyTorch's style that write nodes into a Graph: calling one on
a graph Tensor adds its ops under its module path (the attribute names from
the root, as in a PyTorch state_dict), and its parameters named
`PATH.weight`, `PATH.bias`. Parameters are made on the first call in a
graph; a module called again in the same graph shares them."""
import math

from . import functional as F
from .graph import Tensor


class Module:
    def __init__(self):
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_made", {})

    def __setattr__(self, name, value):
        if isinstance(value, Module):
            self._children[name] = value
        object.__setattr__(self, name, value)

    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def __call__(self, x, *args):
        if not isinstance(x, Tensor):
            raise TypeError(f"{type(self).__name__}: expects a graph Tensor (Graph.input), "
                            f"got {type(x).__name__}")
        return self.forward(x, *args)

    def child(self, name, x, *args):
        """Calls child `name` inside its scope."""
        with x.graph.scope(name):
            return self._children[name](x, *args)

    def param(self, graph, name, shape, **init):
        """This module's parameter `name` in `graph` (made once)."""
        key = (id(graph), name)
        if key not in self._made:
            self._made[key] = graph.parameter(name, shape, **init)
        return self._made[key]


class Linear(Module):
    """y = x W^T + b, W [out, in]; PyTorch's default initialization
    (uniform in +-1/sqrt(in) for both)."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features, self.bias = in_features, out_features, bias

    def forward(self, x):
        g, bound = x.graph, 1.0 / math.sqrt(self.in_features)
        w = self.param(g, "weight", [self.out_features, self.in_features], init="kaiming",
                       gain=math.sqrt(1.0 / 3.0))
        b = self.param(g, "bias", [self.out_features], init="uniform", low=-bound,
                       high=bound) if self.bias else None
        return F.linear(x, w, b)


class Conv2d(Module):
    """NCHW convolution, PyTorch's default initialization."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, bias=True):
        super().__init__()
        self.cin, self.cout = in_channels, out_channels
        self.k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.stride, self.padding, self.dilation, self.bias = stride, padding, dilation, bias

    def forward(self, x):
        g = x.graph
        fan_in = self.cin * self.k[0] * self.k[1]
        bound = 1.0 / math.sqrt(fan_in)
        w = self.param(g, "weight", [self.cout, self.cin, *self.k], init="kaiming",
                       gain=math.sqrt(1.0 / 3.0))
        b = self.param(g, "bias", [self.cout], init="uniform", low=-bound,
                       high=bound) if self.bias else None
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation)


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)


class Flatten(Module):
    def forward(self, x):
        return F.flatten(x)


class Sequential(Module):
    """Children applied in order, named "0", "1", ... as in PyTorch."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            setattr(self, str(i), m)

    def forward(self, x):
        for name in list(self._children):
            x = self.child(name, x)
        return x
