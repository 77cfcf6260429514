"""feed-dtypes.test: writes float64 data that float32 cannot hold, then
checks what trainopt-run fed and computed against NumPy float64."""
import os
import sys

import numpy as np

W = np.array([[0.1, -0.2, 0.3], [0.25, 0.5, -0.125]])
B = np.array([0.01, -0.02])


def make(d):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)) * (1 + 1e-9)
    y = rng.integers(0, 2, 8).astype(np.int64)
    np.savez(os.path.join(d, "data.npz"), x=x, y=y)
    np.save(os.path.join(d, "x.npy"), x)
    np.save(os.path.join(d, "y.npy"), y)


def step(x, y):
    """Loss and SGD (lr=1) update of w and b for mean cross-entropy."""
    z = x @ W.T + B
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(len(y)), y]))
    g = p.copy()
    g[np.arange(len(y)), y] -= 1
    g /= len(y)
    return loss, {"w": -(g.T @ x), "b": -g.sum(0)}


def check(d):
    data = np.load(os.path.join(d, "data.npz"))
    x, y = data["x"][:4], data["y"][:4]
    ev = np.load(os.path.join(d, "eval.npz"))
    print("eval input exact:", bool(np.array_equal(ev["x"], np.load(os.path.join(d, "x.npy"))[:4])))
    loss, upd = step(x, y)
    for kind in ("npz", "npy"):
        p = np.load(os.path.join(d, f"{kind}-params.npz"))
        err = max(float(np.max(np.abs((p[n] - init) - upd[n])) / np.max(np.abs(upd[n])))
                  for n, init in (("w", W), ("b", B)))
        print(f"{kind} update vs numpy: {err:.1e}")
    s = np.load(os.path.join(d, "step.npz"))
    print(f"step loss vs numpy: {abs(float(s['loss']) - loss) / loss:.1e}")


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](sys.argv[2])
