"""Ops on graph Tensors, one dialect op each (docs/generated/TrainoptOps.md),
with the shape checks the compiler would make, raised while building."""
import math

from .graph import Tensor


def _dim_ok(a, b):
    return a == b or a == -1 or b == -1


def _broadcast(op, a, b):
    g = a.graph
    ra, rb = list(a.shape), list(b.shape)
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


def relu(x):
    return x.graph.node("relu", [x], [x.shape])[0]


def matmul(a, b, transpose_rhs=False):
    """a [..., M, K] times b [K, N] (or b [N, K] with transpose_rhs)."""
    g = a.graph
    if len(a.shape) < 2 or len(b.shape) != 2:
        raise g.shape_error("matmul", "expects a [..., M, K] and a 2-d right operand", a, b)
    k, n = (b.shape[1], b.shape[0]) if transpose_rhs else b.shape
    if not _dim_ok(a.shape[-1], k):
        raise g.shape_error("matmul", f"the inner dims differ ({a.shape[-1]} against {k})",
                            a, b)
    attrs = {"transpose_rhs": True} if transpose_rhs else {}
    return g.node("matmul", [a, b], [list(a.shape[:-1]) + [n]], attrs)[0]


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
    g = x.graph
    k = _pair(kernel_size)
    s = _pair(stride if stride is not None else kernel_size)
    p = _pair(padding)
    if len(x.shape) != 4:
        raise g.shape_error("max_pool", "expects an NCHW input", x)
    hw = [_window(x.shape[2 + i], k[i], s[i], p[i], 1) for i in range(2)]
    if min(hw) < 1:
        raise g.shape_error("max_pool", f"the output would be {hw[0]}x{hw[1]}", x)
    attrs = {"kernel_shape": list(k), "strides": list(s), "padding": [p[0], p[1]] * 2,
             "dilations": [1, 1]}
    return g.node("max_pool", [x], [list(x.shape[:2]) + hw], attrs)[0]


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


__all__ = ["Tensor", "add", "mul", "relu", "matmul", "linear", "conv2d", "max_pool2d",
           "flatten", "reshape"]
