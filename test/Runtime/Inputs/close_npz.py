"""Compares every array of the first .npz file with the array of the same
name in the second (which may hold more, such as --grad-accum slots).
Prints 'identical' when they match byte for byte; otherwise 'close' or
'FAR' (against the tolerance argv[3]) with the worst relative difference,
||a - b|| / ||b||, over the floating-point arrays and its array's name.
Integer arrays must be equal. Names after the tolerance are skipped (the
step counter of a --grad-accum run counts micro-batches)."""
import sys

import numpy as np

a, b, tol = np.load(sys.argv[1]), np.load(sys.argv[2]), float(sys.argv[3])
names = [k for k in a.files if k not in sys.argv[4:]]
missing = [k for k in names if k not in b.files]
if missing or not names:
    print("MISSING", missing or "everything")
    sys.exit(0)
worst, name, same = 0.0, None, True
for k in names:
    x, y = a[k], b[k]
    if x.dtype != y.dtype or x.shape != y.shape:
        print("DIFFER", k, x.dtype, x.shape, y.dtype, y.shape)
        sys.exit(0)
    same = same and x.tobytes() == y.tobytes()
    if x.dtype.kind != "f":
        if not np.array_equal(x, y):
            print("DIFFER", k, x, y)
            sys.exit(0)
        continue
    x, y = x.astype(np.float64), y.astype(np.float64)
    r = np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30)
    if not np.isfinite(r) or r > worst:
        worst, name = r, k
if same:
    print("identical")
else:
    print("close" if worst <= tol else "FAR", "%.2e" % worst, name)
