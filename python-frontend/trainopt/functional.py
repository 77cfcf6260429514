"""Ops on graph Tensors, one dialect op each (docs/generated/TrainoptOps.md),
with the shape checks the compiler would make, raised while building."""
import math

from .graph import Tensor


def _dim_ok(a, b):
    return a == b or a == -1 or b == -1


def _broadcast(op, a, b):
    return _broadcast_dims(op, a, b, a.shape, b.shape)


def _broadcast_dims(op, a, b, sa, sb):
    g = a.graph
    ra, rb = list(sa), list(sb)
    n = max(len(ra), len(rb))
    ra, rb = [1] * (n - len(ra)) + ra, [1] * (n - len(rb)) + rb
    out = []
    for x, y in zip(ra, rb):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise g.shape_error(op, "the shapes do not broadcast", a, b)
    return out


def add(a, b):
    return a.graph.node("add", [a, b], [_broadcast("add", a, b)])[0]


def mul(a, b):
    return a.graph.node("mul", [a, b], [_broadcast("mul", a, b)])[0]


def sub(a, b):
    return a.graph.node("sub", [a, b], [_broadcast("sub", a, b)])[0]


def div(a, b):
    return a.graph.node("div", [a, b], [_broadcast("div", a, b)])[0]


def _unary(op):
    def f(x):
        return x.graph.node(op, [x], [x.shape])[0]
    f.__name__ = op
    f.__doc__ = f"Elementwise trainopt.{op}."
    return f


relu, tanh, sigmoid, exp, log, sqrt, neg = (
    _unary(op) for op in ("relu", "tanh", "sigmoid", "exp", "log", "sqrt", "neg"))


def gelu(x, approximate="none"):
    """GELU, exact (erf) or with approximate="tanh", as PyTorch."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got '{approximate}'")
    return x.graph.node("gelu", [x], [x.shape], {
        "approximation": f"#trainopt<gelu_approximation {approximate}>"})[0]


def _axis(op, x, axis):
    r = len(x.shape)
    if not -r <= axis < r:
        raise x.graph.shape_error(op, f"axis {axis} is outside a rank-{r} tensor", x)
    return axis % r


def softmax(x, axis=-1):
    return x.graph.node("softmax", [x], [x.shape], {"axis": _axis("softmax", x, axis)})[0]


def log_softmax(x, axis=-1):
    return x.graph.node("log_softmax", [x], [x.shape],
                        {"axis": _axis("log_softmax", x, axis)})[0]


def constant(graph, value, dtype="f32"):
    """A constant tensor (NumPy data) in `graph`."""
    import numpy as np
    value = np.asarray(value)
    return graph.node("constant", [], [list(value.shape)], {"value": (value, dtype)},
                      dtype=dtype)[0]


def transpose(x, permutation):
    g = x.graph
    if sorted(permutation) != list(range(len(x.shape))):
        raise g.shape_error("transpose", f"{list(permutation)} is not a permutation of the "
                            f"{len(x.shape)} dims", x)
    if x.shape and x.shape[0] == -1 and permutation[0] != 0:
        raise g.shape_error("transpose", "the batch dim (-1) must stay first", x)
    return g.node("transpose", [x], [[x.shape[p] for p in permutation]],
                  {"permutation": list(permutation)})[0]


def slice(x, axis, start, stop):
    """x[..., start:stop, ...] along `axis` (stride 1)."""
    g = x.graph
    axis = _axis("slice", x, axis)
    if x.shape and x.shape[0] == -1:
        raise g.shape_error("slice", "a tensor with a -1 batch dim cannot be sliced in a "
                            "graph (its limits must be sizes); slice the parameters instead",
                            x)
    size = x.shape[axis]
    if not 0 <= start < stop <= size:
        raise g.shape_error("slice", f"[{start}:{stop}] is not inside dim {axis} of size "
                            f"{size}", x)
    begin = [0] * len(x.shape)
    limit = list(x.shape)
    begin[axis], limit[axis] = start, stop
    shape = list(x.shape)
    shape[axis] = stop - start
    return g.node("slice", [x], [shape], {"start": begin, "limit": limit,
                                          "stride": [1] * len(x.shape)})[0]


def concat(tensors, axis):
    g = tensors[0].graph
    axis = _axis("concat", tensors[0], axis)
    first = tensors[0].shape
    for t in tensors[1:]:
        if len(t.shape) != len(first) or any(
                a != b for i, (a, b) in enumerate(zip(t.shape, first)) if i != axis):
            raise g.shape_error("concat", f"the shapes differ outside axis {axis}", *tensors)
    shape = list(first)
    shape[axis] = sum(t.shape[axis] for t in tensors)
    return g.node("concat", list(tensors), [shape], {"axis": axis})[0]


def reduce_mean(x, axes, keepdims=False):
    axes = sorted(_axis("reduce_mean", x, a) for a in axes)
    shape = [1 if i in axes else d for i, d in enumerate(x.shape)
             if keepdims or i not in axes]
    return x.graph.node("reduce_mean", [x], [shape],
                        {"axes": axes, "keepdims": bool(keepdims)})[0]


def avg_pool2d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    return _pool("avg_pool", x, kernel_size, stride, padding,
                 {"count_include_pad": bool(count_include_pad)})


def batch_norm(x, weight, bias, running_mean, running_var, momentum=0.1, eps=1e-5):
    """Training-mode BatchNorm over dim 1 (PyTorch's momentum convention:
    running = (1 - momentum) running + momentum batch, with the unbiased
    batch variance); the running statistics are updated by the step and
    used by eval_step."""
    g = x.graph
    c = x.shape[1] if len(x.shape) >= 2 else None
    for t in (weight, bias, running_mean, running_var):
        if tuple(t.shape) != (c,):
            raise g.shape_error("batch_norm_train", f"expects [{c}] statistics and affine "
                                f"parameters for {c} channels", x, t)
    y, _, _ = g.node("batch_norm_train", [x, weight, bias, running_mean, running_var],
                     [x.shape, [c], [c]], {"epsilon": float(eps),
                                           "momentum": 1.0 - float(momentum),
                                           "unbiased_running_var": True})
    return y


def layer_norm(x, normalized_shape, weight, bias=None, eps=1e-5):
    g = x.graph
    n = len(normalized_shape)
    if tuple(x.shape[len(x.shape) - n:]) != tuple(normalized_shape):
        raise g.shape_error("layer_norm", f"the last dims are not {list(normalized_shape)}", x)
    ins = [x, weight] + ([bias] if bias is not None else [])
    return g.node("layer_norm", ins, [x.shape], {"axis": len(x.shape) - n,
                                                 "epsilon": float(eps)})[0]


def dropout(x, p, seed):
    """Zeroes elements with probability `p` and scales the rest by
    1/(1-p) in training; eval_step passes x through. `seed` picks this
    node's random stream (the step advances it)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if p == 0.0:
        return x
    g = x.graph
    s = constant(g, seed, dtype="i64")
    return g.node("dropout", [x, s], [x.shape, x.shape], {"ratio": float(p)},
                  out_dtypes=[x.dtype, "bool"])[0]


def embedding(indices, weight):
    """Rows of `weight` [num, dim] at integer `indices`: indices.shape +
    [dim]."""
    g = indices.graph
    if indices.dtype not in ("i64", "i32"):
        raise g.shape_error("gather", f"the indices must be integers, not {indices.dtype}",
                            indices)
    if len(weight.shape) != 2:
        raise g.shape_error("gather", "the table must be [num_embeddings, dim]", weight)
    return g.node("gather", [weight, indices], [list(indices.shape) + [weight.shape[1]]],
                  {"axis": 0}, dtype=weight.dtype)[0]


def matmul(a, b, transpose_rhs=False):
    """a [..., M, K] times b [..., K, N] (or b [..., N, K] with
    transpose_rhs); the batch dims broadcast."""
    g = a.graph
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise g.shape_error("matmul", "expects operands of rank 2 or more", a, b)
    k, n = (b.shape[-1], b.shape[-2]) if transpose_rhs else b.shape[-2:]
    if not _dim_ok(a.shape[-1], k):
        raise g.shape_error("matmul", f"the inner dims differ ({a.shape[-1]} against {k})",
                            a, b)
    batch = _broadcast_dims("matmul", a, b, a.shape[:-2], b.shape[:-2])
    attrs = {"transpose_rhs": True} if transpose_rhs else {}
    return g.node("matmul", [a, b], [batch + [a.shape[-2], n]], attrs)[0]


def linear(x, weight, bias=None):
    """x W^T + b, as torch.nn.functional.linear (W [out, in])."""
    y = matmul(x, weight, transpose_rhs=True)
    return add(y, bias) if bias is not None else y


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _window(size, k, stride, pad, dilation):
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1):
    """NCHW convolution, as torch.nn.functional.conv2d (groups 1)."""
    g = x.graph
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    if len(x.shape) != 4 or len(weight.shape) != 4:
        raise g.shape_error("conv", "expects an NCHW input and an [F, C, kh, kw] filter",
                            x, weight)
    if x.shape[1] != weight.shape[1]:
        raise g.shape_error("conv", f"the input has {x.shape[1]} channels, the filter "
                            f"reads {weight.shape[1]}", x, weight)
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        raise g.shape_error("conv", "the bias is not one value per filter", weight, bias)
    hw = [_window(x.shape[2 + i], weight.shape[2 + i], stride[i], padding[i], dilation[i])
          for i in range(2)]
    if min(hw) < 1:
        raise g.shape_error("conv", f"the output would be {hw[0]}x{hw[1]}", x, weight)
    attrs = {"strides": list(stride), "padding": [padding[0], padding[1]] * 2,
             "dilations": list(dilation)}
    ins = [x, weight] + ([bias] if bias is not None else [])
    return g.node("conv", ins, [[x.shape[0], weight.shape[0]] + hw], attrs)[0]


def max_pool2d(x, kernel_size, stride=None, padding=0):
    return _pool("max_pool", x, kernel_size, stride, padding, {"dilations": [1, 1]})


def _pool(op, x, kernel_size, stride, padding, extra):
    g = x.graph
    k = _pair(kernel_size)
    s = _pair(stride if stride is not None else kernel_size)
    p = _pair(padding)
    if len(x.shape) != 4:
        raise g.shape_error(op, "expects an NCHW input", x)
    hw = [_window(x.shape[2 + i], k[i], s[i], p[i], 1) for i in range(2)]
    if min(hw) < 1:
        raise g.shape_error(op, f"the output would be {hw[0]}x{hw[1]}", x)
    attrs = {"kernel_shape": list(k), "strides": list(s), "padding": [p[0], p[1]] * 2,
             **extra}
    return g.node(op, [x], [list(x.shape[:2]) + hw], attrs)[0]


def flatten(x):
    """[B, ...] to [B, prod(...)]."""
    size = 1
    for d in x.shape[1:]:
        size *= d
    return reshape(x, [x.shape[0], size])


def reshape(x, shape):
    """To `shape`; a -1 batch dim stays the first dim."""
    g = x.graph
    a, b = list(x.shape), list(shape)
    if a and a[0] == -1:
        same = bool(b) and b[0] == -1 and math.prod(a[1:]) == math.prod(b[1:])
    else:
        same = -1 not in b and math.prod(a) == math.prod(b)
    if not same:
        raise g.shape_error("reshape", f"{a} does not reshape to {b}", x)
    return g.node("reshape", [x], [b])[0]


__all__ = ["Tensor", "add", "sub", "mul", "div", "relu", "tanh", "sigmoid", "exp", "log",
           "sqrt", "neg", "gelu", "softmax", "log_softmax", "constant", "transpose", "slice",
           "concat", "reduce_mean", "matmul", "linear", "conv2d", "max_pool2d", "avg_pool2d",
           "batch_norm", "layer_norm", "dropout", "embedding", "flatten", "reshape"]
