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


class _Elementwise(Module):
    fn = None

    def forward(self, x):
        return type(self).fn(x)


class Tanh(_Elementwise):
    fn = F.tanh


class Sigmoid(_Elementwise):
    fn = F.sigmoid


class GELU(Module):
    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)


class Softmax(Module):
    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__()
        self.args = (kernel_size, stride, padding, count_include_pad)

    def forward(self, x):
        return F.avg_pool2d(x, *self.args)


class BatchNorm2d(Module):
    """BatchNorm over the channels of an NCHW input, as PyTorch's: weight
    1, bias 0, running_mean 0 and running_var 1 (model state, updated by
    each training step with `momentum`, used by eval_step)."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.c, self.eps, self.momentum = num_features, eps, momentum

    def forward(self, x):
        g = x.graph
        if len(x.shape) != 4 or x.shape[1] != self.c:
            raise g.shape_error("batch_norm_train", f"BatchNorm2d({self.c}) expects an NCHW "
                                f"input with {self.c} channels", x)
        w = self.param(g, "weight", [self.c], init="ones")
        b = self.param(g, "bias", [self.c], init="zeros")
        mean = self.param(g, "running_mean", [self.c], init="zeros", trainable=False)
        var = self.param(g, "running_var", [self.c], init="ones", trainable=False)
        return F.batch_norm(x, w, b, mean, var, self.momentum, self.eps)


class LayerNorm(Module):
    """LayerNorm over the last dims, as PyTorch's (weight 1, bias 0)."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        self.shape = ([normalized_shape] if isinstance(normalized_shape, int)
                      else list(normalized_shape))
        self.eps, self.affine, self.bias = eps, elementwise_affine, bias

    def forward(self, x):
        g = x.graph
        if self.affine:
            w = self.param(g, "weight", self.shape, init="ones")
            b = self.param(g, "bias", self.shape, init="zeros") if self.bias else None
        else:
            import numpy as np
            w = F.constant(g, np.ones(self.shape, np.float32))
            b = None
        return F.layer_norm(x, self.shape, w, b, self.eps)


class Embedding(Module):
    """A lookup table [num_embeddings, embedding_dim] read at integer
    indices; PyTorch's N(0, 1) initialization."""

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        self.num, self.dim = num_embeddings, embedding_dim

    def forward(self, indices):
        w = self.param(indices.graph, "weight", [self.num, self.dim], init="normal", std=1.0)
        return F.embedding(indices, w)


class Dropout(Module):
    """Dropout with probability p in training; identity in eval_step. Each
    Dropout in a graph draws its own stream, from the graph's seed."""

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x):
        g = x.graph
        g._count += 1
        return F.dropout(x, self.p, (g.seed * 7919 + g._count) % (1 << 62))


class MultiheadAttention(Module):
    """Multi-head attention as PyTorch's `nn.MultiheadAttention` with
    `batch_first=True`: the same parameters (in_proj_weight [3E, E],
    in_proj_bias, out_proj.weight, out_proj.bias) and initialization
    (xavier-uniform in_proj, zero biases). `forward(query, key=None,
    value=None, causal=False)` takes [B, T, E] tensors (key and value
    default to the query: self-attention) and returns the [B, T, E]
    output; `causal` masks later positions."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim {embed_dim} is not divisible by "
                             f"num_heads {num_heads}")
        self.e, self.h, self.p, self.bias = embed_dim, num_heads, dropout, bias
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)

    def __call__(self, query, key=None, value=None, causal=False):
        return super().__call__(query, key, value, causal)

    def forward(self, query, key, value, causal):
        import numpy as np
        g, e, h = query.graph, self.e, self.h
        key = query if key is None else key
        value = key if value is None else value
        for t in (query, key, value):
            if len(t.shape) != 3 or t.shape[2] != e:
                raise g.shape_error("matmul", f"MultiheadAttention({e}, {h}) expects [B, T, "
                                    f"{e}] query, key and value", t)
        w = self.param(g, "in_proj_weight", [3 * e, e], init="xavier")
        b = self.param(g, "in_proj_bias", [3 * e], init="zeros") if self.bias else None
        d = e // h

        def heads(x, i):
            wi = F.slice(w, 0, i * e, (i + 1) * e)
            y = F.linear(x, wi, F.slice(b, 0, i * e, (i + 1) * e) if b is not None else None)
            y = F.reshape(y, [y.shape[0], y.shape[1], h, d])
            return F.transpose(y, [0, 2, 1, 3])  # [B, H, T, D]

        q, k, v = heads(query, 0), heads(key, 1), heads(value, 2)
        scores = F.matmul(q, k, transpose_rhs=True)  # [B, H, Tq, Tk]
        scores = F.mul(scores, F.constant(g, np.float32(1.0 / math.sqrt(d))))
        if causal:
            tq, tk = query.shape[1], key.shape[1]
            mask = np.triu(np.full((tq, tk), -1e9, np.float32), k=1)
            scores = F.add(scores, F.constant(g, mask))
        attn = F.softmax(scores, -1)
        if self.p:
            g._count += 1
            attn = F.dropout(attn, self.p, (g.seed * 7919 + g._count) % (1 << 62))
        y = F.transpose(F.matmul(attn, v), [0, 2, 1, 3])  # [B, T, H, D]
        y = F.reshape(y, [y.shape[0], y.shape[1], e])
        return self.child("out_proj", y)
